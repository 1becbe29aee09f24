//! Latency distributions (HdrHistogram, microsecond resolution, 3
//! significant digits) and the summary every scenario prints.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

#[derive(Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            // 1 µs .. 10 min, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("constant HdrHistogram bounds are valid"),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, self.hist.high());
        self.hist.saturating_record(micros);
    }

    pub fn record_ms(&mut self, ms: f64) {
        self.record(Duration::from_secs_f64((ms / 1000.0).max(0.0)));
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Latency at quantile `q` (0..=1), in milliseconds.
    pub fn ms_at(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count(),
            p50: self.ms_at(0.5),
            p90: self.ms_at(0.9),
            p99: self.ms_at(0.99),
            p999: self.ms_at(0.999),
            max: self.max_ms(),
        }
    }
}

/// The figures every latency row reports, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    /// The cells of a Markdown table row: n | p50 | p90 | p99 | p99.9 | max.
    pub fn cells(&self) -> String {
        format!(
            "{} | {} | {} | {} | {} | {}",
            self.count,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={} p90={} p99={} p99.9={} max={}",
            self.count,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// A latency in milliseconds, with precision that suits its size.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.3} ms")
    }
}

/// `a / b` as "12.3x", or "-" when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "-".into();
    }
    let r = a / b;
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}
