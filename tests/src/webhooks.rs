//! Webhook fixtures: a real HTTP receiver on a free loopback port that
//! records what it gets and answers as told, and a configuration file with
//! endpoints pointing at receivers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::ScratchDir;

/// A Standard Webhooks secret for tests (the specification's example).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 204 to everything.
    Ok,
    /// 500 to the first `n` requests of each webhook id, then 204.
    FailFirst(usize),
    /// 503 to everything.
    Fail,
    /// Never answers (holds the request open).
    Never,
}

/// One request as the receiver got it.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The status answered; 0 when it never answered.
    pub status: u16,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }
}

pub struct Receiver {
    pub port: u16,
    answer: Arc<Mutex<Answer>>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let answer = Arc::new(Mutex::new(answer));
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (a, r) = (answer.clone(), received.clone());
        let task = tokio::spawn(async move {
            let tries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (a, r, tries) = (a.clone(), r.clone(), tries.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (a, r, tries) = (a.clone(), r.clone(), tries.clone());
                        async move { Ok::<_, Infallible>(handle(req, a, r, tries).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            port,
            answer,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The requests answered with a success.
    pub fn successes(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    answer: Arc<Mutex<Answer>>,
    received: Arc<Mutex<Vec<Received>>>,
    tries: Arc<Mutex<HashMap<String, usize>>>,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let answer = *answer.lock().unwrap();
    let status = match answer {
        Answer::Ok => 204,
        Answer::Fail => 503,
        Answer::Never => 0,
        Answer::FailFirst(n) => {
            let mut tries = tries.lock().unwrap();
            let seen = tries.entry(id.clone()).or_default();
            *seen += 1;
            if *seen <= n {
                500
            } else {
                204
            }
        }
    };
    received.lock().unwrap().push(Received {
        id,
        timestamp,
        signature,
        body,
        status,
        at: Instant::now(),
    });
    if status == 0 {
        std::future::pending::<()>().await;
    }
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

/// Tokens of the configuration file `config_file` writes: an agent that
/// requests, a human that approves `hook:*`, and an admin.
pub const AGENT: &str = "tok-hook-agent";
pub const HUMAN: &str = "tok-hook-human";
pub const ADMIN: &str = "tok-hook-admin";

/// A configuration file in a folder of its own, removed with the folder
/// when dropped: keep it for as long as a replica reads it. Derefs to the
/// file's path.
pub struct ConfigFile {
    _dir: ScratchDir,
    path: PathBuf,
}

impl std::ops::Deref for ConfigFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ConfigFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A folder with a configuration file (`approvald.toml`: the tokens above
/// and `webhooks`, TOML `[[webhooks]]` tables) and the secret file
/// `whsec` (holding `SECRET`), for `--auth-config`.
pub fn config_file(webhooks: &str) -> ConfigFile {
    let dir = ScratchDir::new("approvald-hooks");
    std::fs::write(dir.join("whsec"), format!("{SECRET}\n")).expect("secret file");
    let mut toml = String::new();
    for (token, principal, roles) in [
        (AGENT, "agent", r#"["requester"]"#),
        (HUMAN, "human", r#"["approver:hook:*"]"#),
        (ADMIN, "admin", r#"["admin"]"#),
    ] {
        toml += &format!(
            "[[tokens]]\nprincipal = {principal:?}\nroles = {roles}\nsha256 = {:?}\n\n",
            approvald::auth::hash_token(token)
        );
    }
    toml += webhooks;
    let path = dir.join("approvald.toml");
    std::fs::write(&path, toml).expect("config file");
    ConfigFile { _dir: dir, path }
}

/// A `[[webhooks]]` table for a receiver (standard format, signed with
/// `SECRET`), with extra lines (`retry_for = "2s"`...).
pub fn endpoint(name: &str, receiver: &Receiver, extra: &str) -> String {
    format!(
        "[[webhooks]]\nname = {name:?}\nurl = {:?}\nsecret_file = \"whsec\"\n{extra}\n\n",
        receiver.url()
    )
}

/// `message` with the bearer token.
pub fn as_<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    r
}

/// Waits (up to `limit`) until `check` holds of the receiver's requests.
pub async fn until_received(
    receiver: &Receiver,
    limit: Duration,
    check: impl Fn(&[Received]) -> bool,
) -> bool {
    crate::eventually(limit, || {
        let got = receiver.received();
        let ok = check(&got);
        async move { ok }
    })
    .await
}
