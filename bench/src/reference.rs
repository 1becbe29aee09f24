//! The reference design: attune-ai's `ApprovalGate` (Python, Redis polling),
//! driven by bench/reference/gate_driver.py on the bench's own Redis.
//! Its Python lives in a venv under the target directory, made on first use
//! from bench/reference/requirements.txt.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::stats::{Latencies, Summary};
use crate::{Bench, BenchResult};

pub struct Reference {
    python: PathBuf,
    driver: PathBuf,
    pub version: String,
}

/// When the reference's console answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answering {
    /// Right after every request has appeared: each waiter then sleeps
    /// whatever remains of its 1 s poll interval (the worst case).
    AtOnce,
    /// At a uniformly random moment within one poll interval, as a human
    /// answers: half an interval on average.
    Random,
}

impl Answering {
    fn flag(self) -> &'static str {
        match self {
            Answering::AtOnce => "at-once",
            Answering::Random => "random",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Answering::AtOnce => "answered at once (worst case)",
            Answering::Random => "answered at random times",
        }
    }
}

#[derive(Clone)]
pub struct ReferenceDecisionRow {
    pub waiters: usize,
    pub answering: Answering,
    pub latencies: Latencies,
    /// Redis commands per second while the waiters wait and nothing happens.
    pub idle_commands_per_second: Option<f64>,
}

const IMPORT_CHECK: &str = "import attune.telemetry.approval_gates, importlib.metadata as m; print(m.version('attune-ai'))";

impl Reference {
    /// Finds (or makes) a Python with attune-ai; `Err` says why the reference
    /// cannot run, which the report then states.
    pub async fn prepare(
        python: Option<PathBuf>,
        target: &Path,
        root: &Path,
    ) -> Result<Self, String> {
        let driver = root.join("bench").join("reference").join("gate_driver.py");
        let python = match python {
            Some(p) => p,
            None => {
                let venv = target.join("bench-reference-venv");
                let python = venv.join("bin").join("python");
                if version(&python).await.is_err() {
                    make_venv(
                        &venv,
                        &root
                            .join("bench")
                            .join("reference")
                            .join("requirements.txt"),
                    )
                    .await?;
                }
                python
            }
        };
        let version = version(&python).await?;
        Ok(Self {
            python,
            driver,
            version,
        })
    }

    async fn drive(&self, args: &[String], limit: Duration) -> BenchResult<serde_json::Value> {
        let mut command = Command::new(&self.python);
        command
            .arg(&self.driver)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(limit, command.output())
            .await
            .map_err(|_| format!("reference driver {args:?}: no answer within {limit:?}"))??;
        if !output.status.success() {
            return Err(format!(
                "reference driver {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into());
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    pub async fn decision(&self, b: &Bench) -> BenchResult<Vec<ReferenceDecisionRow>> {
        let mut rows = Vec::new();
        let runs = b
            .sizes
            .reference_decision
            .iter()
            .flat_map(|&size| [(size, Answering::Random), (size, Answering::AtOnce)]);
        for ((waiters, rounds), answering) in runs {
            eprintln!(
                "\n== reference decision latency: {waiters} ApprovalGate waiters, {rounds} round(s), {}",
                answering.describe()
            );
            b.redis.flush().await?;
            // Idle Redis traffic is measured once per size, in the first run.
            let idle = match answering {
                Answering::Random => b.sizes.reference_idle_window.as_secs_f64(),
                Answering::AtOnce => 0.0,
            };
            let args = [
                "decision".to_string(),
                "--redis-url".into(),
                b.redis.url(),
                "--waiters".into(),
                waiters.to_string(),
                "--rounds".into(),
                rounds.to_string(),
                "--idle-seconds".into(),
                idle.to_string(),
                "--answer".into(),
                answering.flag().into(),
            ];
            let limit = Duration::from_secs(120 + (rounds * 3) as u64 + waiters as u64 / 20);
            let out = self.drive(&args, limit).await?;
            let latencies = latencies(&out)?;
            let idle_commands_per_second = out["idle_commands_per_s"].as_f64();
            eprintln!("{}", latencies.summary());
            if let Some(c) = idle_commands_per_second {
                eprintln!("Redis commands/s while {waiters} waiters idle: {c:.0}");
            }
            rows.push(ReferenceDecisionRow {
                waiters,
                answering,
                latencies,
                idle_commands_per_second,
            });
        }
        Ok(rows)
    }

    /// Stores `n` pending requests as `request_approval` does.
    pub async fn seed_pending(&self, redis_url: &str, n: usize) -> BenchResult<()> {
        let args = [
            "seed".to_string(),
            "--redis-url".into(),
            redis_url.into(),
            "--pending".into(),
            n.to_string(),
        ];
        self.drive(&args, Duration::from_secs(60)).await?;
        Ok(())
    }

    pub async fn list_pending(
        &self,
        redis_url: &str,
        calls: usize,
        expect: usize,
    ) -> BenchResult<Summary> {
        let args = [
            "list".to_string(),
            "--redis-url".into(),
            redis_url.into(),
            "--calls".into(),
            calls.to_string(),
            "--expect".into(),
            expect.to_string(),
        ];
        let out = self.drive(&args, Duration::from_secs(120)).await?;
        Ok(latencies(&out)?.summary())
    }
}

fn latencies(out: &serde_json::Value) -> BenchResult<Latencies> {
    let values = out["latencies_ms"]
        .as_array()
        .ok_or("reference driver printed no latencies_ms")?;
    let mut lat = Latencies::default();
    for v in values {
        lat.record_ms(v.as_f64().ok_or("latency is not a number")?);
    }
    Ok(lat)
}

async fn version(python: &Path) -> Result<String, String> {
    let output = Command::new(python)
        .args(["-c", IMPORT_CHECK])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} cannot import attune-ai: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

async fn make_venv(venv: &Path, requirements: &Path) -> Result<(), String> {
    eprintln!(
        "reference: creating {} and installing {} (once)...",
        venv.display(),
        requirements.display()
    );
    let run = |program: PathBuf, args: Vec<String>| async move {
        let out = tokio::time::timeout(
            Duration::from_secs(900),
            Command::new(&program)
                .args(&args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("{} {args:?} took over 15 minutes", program.display()))?
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {args:?} failed: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(
        PathBuf::from("python3"),
        vec!["-m".into(), "venv".into(), venv.display().to_string()],
    )
    .await?;
    run(
        venv.join("bin").join("pip"),
        vec![
            "install".into(),
            "--quiet".into(),
            "--disable-pip-version-check".into(),
            "-r".into(),
            requirements.display().to_string(),
        ],
    )
    .await
}
