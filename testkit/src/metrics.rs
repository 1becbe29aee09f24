//! Reading a replica's Prometheus endpoint the way a scraper does: a plain
//! HTTP/1.1 GET on its metrics port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The whole HTTP response (status line, headers, body) to `GET /metrics`
/// on the loopback `metrics_port`. Blocking; bounded by a 10 s read timeout.
pub fn scrape_metrics(metrics_port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", metrics_port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// The Prometheus text a replica serves on its metrics port (the whole
/// response; empty when nothing answers).
pub async fn metrics_text(metrics_port: u16) -> String {
    tokio::task::spawn_blocking(move || scrape_metrics(metrics_port).unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// The value of the first sample of `name` in a Prometheus text: a line
/// `name value` or `name{labels} value`. `name` may carry its labels
/// (`m{outcome="approved"}`) to pick one series.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .find_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
}
