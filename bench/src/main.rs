//! approvald-bench: measures approvald (Redis store, release build) on this
//! machine, beside the floor (Redis PING, a bare gRPC round trip) and the
//! Redis-polling reference design (attune-ai's `ApprovalGate`), and writes
//! BENCHMARKS.md with a latency plot.
//!
//! Everything runs on 127.0.0.1: the bench starts its own `redis-server` and
//! `approvald` processes on free ports and stops them when it ends. Every
//! scenario is bounded in count and in time.
//!
//!     cargo run --release -p approvald-bench -- --report   # full run, writes the report
//!     cargo run --release -p approvald-bench -- --quick    # seconds: checks every scenario runs

mod machine;
mod plot;
mod procs;
mod reference;
mod report;
mod scenarios;
mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;

use crate::procs::{Auth, RedisServer, Replica};
use crate::reference::Reference;
use crate::report::Results;

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser, Debug)]
#[command(name = "approvald-bench", about, long_about = None)]
struct Args {
    /// Tiny counts, a few seconds per scenario: checks that every scenario
    /// runs end to end, not how fast (CI runs this).
    #[arg(long)]
    quick: bool,
    /// Write BENCHMARKS.md and bench/decision-latency.svg at the workspace root.
    #[arg(long)]
    report: bool,
    /// The approvald binary to run. Default: build it with
    /// `cargo build --release --locked -p approvald` and use target/release/approvald.
    #[arg(long)]
    approvald: Option<PathBuf>,
    /// Python with attune-ai installed, for the reference. Default: a venv
    /// under the target directory, created on first use from
    /// bench/reference/requirements.txt.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip the reference design.
    #[arg(long)]
    no_reference: bool,
    /// Run only these scenarios (comma-separated): floor, decision,
    /// lifecycle, idle, herd, fanout, snapshot, listing.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Override the idle scenario's waiter counts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    idle_waiters: Vec<usize>,
    /// Override the herd scenario's crowd sizes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    herd_waiters: Vec<usize>,
    /// Override the decision scenario's sizes: WAITERSxROUNDS, comma-separated
    /// (e.g. 1x200,1000x1).
    #[arg(long, value_delimiter = ',', value_parser = waiters_by_rounds)]
    decision: Vec<(usize, usize)>,
    /// Override the lifecycle scenario's agent counts (comma-separated; the
    /// run with authentication on keeps its own).
    #[arg(long, value_delimiter = ',')]
    lifecycle: Vec<usize>,
    /// Give the bench's Redis this many replicas (`replicaof`) and run
    /// approvald with --redis-wait-replicas so many: the cost of the
    /// durability knob.
    #[arg(long, default_value_t = 0)]
    redis_wait_replicas: u32,
}

fn waiters_by_rounds(s: &str) -> Result<(usize, usize), String> {
    let (w, r) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WAITERSxROUNDS"))?;
    match (w.parse(), r.parse()) {
        (Ok(w), Ok(r)) => Ok((w, r)),
        _ => Err(format!("{s:?}: expected WAITERSxROUNDS")),
    }
}

/// How big each scenario is: the full run, or `--quick`.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub floor_calls: usize,
    /// (waiters, rounds): every waiter gets one decision per round.
    pub decision: Vec<(usize, usize)>,
    /// The same with authentication on (a token per agent).
    pub decision_auth: Vec<(usize, usize)>,
    /// The same with `--redis-wait-replicas 1` (one Redis replica):
    /// what the durability knob costs.
    pub decision_durable: Vec<(usize, usize)>,
    pub lifecycle_concurrency: Vec<usize>,
    /// Agents in the lifecycle run with authentication on.
    pub lifecycle_auth: Vec<usize>,
    pub lifecycle_warmup: Duration,
    pub lifecycle_window: Duration,
    pub idle_waiters: Vec<usize>,
    pub idle_window: Duration,
    /// `AwaitApproval` calls started in one instant.
    pub herd_waiters: Vec<usize>,
    /// (watchers, approvals) for each fan-out run.
    pub fanout: Vec<(usize, usize)>,
    pub snapshot_pending: usize,
    pub snapshot_runs: usize,
    pub listing_page: usize,
    pub unrelated_keys: usize,
    pub listing_calls: usize,
    /// (waiters, rounds) for the reference.
    pub reference_decision: Vec<(usize, usize)>,
    pub reference_listing_calls: usize,
    pub reference_idle_window: Duration,
}

impl Sizes {
    fn full() -> Self {
        Self {
            floor_calls: 20_000,
            decision: vec![(1, 200), (1_000, 1), (10_000, 1)],
            decision_auth: vec![(1_000, 1)],
            decision_durable: vec![(1_000, 1)],
            lifecycle_concurrency: vec![16, 64, 256],
            lifecycle_auth: vec![64],
            lifecycle_warmup: Duration::from_secs(2),
            lifecycle_window: Duration::from_secs(10),
            idle_waiters: vec![10_000, 100_000],
            idle_window: Duration::from_secs(10),
            herd_waiters: vec![50_000],
            fanout: vec![(1_000, 200), (10_000, 50)],
            snapshot_pending: 100_000,
            snapshot_runs: 3,
            listing_page: 100,
            unrelated_keys: 100_000,
            listing_calls: 500,
            reference_decision: vec![(1, 20), (1_000, 1)],
            reference_listing_calls: 20,
            reference_idle_window: Duration::from_secs(5),
        }
    }

    fn quick() -> Self {
        Self {
            floor_calls: 200,
            decision: vec![(1, 5), (100, 1)],
            decision_auth: vec![(100, 1)],
            decision_durable: vec![(100, 1)],
            lifecycle_concurrency: vec![8],
            lifecycle_auth: vec![8],
            lifecycle_warmup: Duration::ZERO,
            lifecycle_window: Duration::from_secs(1),
            idle_waiters: vec![500],
            idle_window: Duration::from_secs(1),
            herd_waiters: vec![500],
            fanout: vec![(20, 10), (200, 3)],
            snapshot_pending: 500,
            snapshot_runs: 1,
            listing_page: 20,
            unrelated_keys: 1_000,
            listing_calls: 20,
            reference_decision: vec![(1, 1), (5, 1)],
            reference_listing_calls: 3,
            reference_idle_window: Duration::from_secs(1),
        }
    }
}

/// What every scenario shares: the Redis, the approvald binary, a scratch
/// folder for logs, and the sizes.
pub struct Bench {
    pub redis: RedisServer,
    /// Replicas of `redis` (with --redis-wait-replicas).
    pub redis_replicas: Vec<RedisServer>,
    /// Extra flags for every approvald.
    pub approvald_args: Vec<String>,
    pub approvald: PathBuf,
    pub work: PathBuf,
    pub sizes: Sizes,
    pub quick: bool,
    counter: std::sync::atomic::AtomicUsize,
}

impl Bench {
    /// A key prefix no earlier scenario used.
    pub fn prefix(&self, scenario: &str) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("bench-{scenario}-{n}")
    }

    /// Starts one approvald replica on the shared Redis under `prefix`.
    pub async fn replica(&self, prefix: &str, name: &str) -> BenchResult<Replica> {
        self.replica_with(prefix, name, None).await
    }

    /// Starts one replica, with authentication on when `auth` is given.
    pub async fn replica_with(
        &self,
        prefix: &str,
        name: &str,
        auth: Option<&Auth>,
    ) -> BenchResult<Replica> {
        self.replica_with_args(prefix, name, auth, &[]).await
    }

    /// Starts one replica with `extra` flags after the bench's own.
    pub async fn replica_with_args(
        &self,
        prefix: &str,
        name: &str,
        auth: Option<&Auth>,
        extra: &[String],
    ) -> BenchResult<Replica> {
        let log = self.work.join(format!("{prefix}-{name}.log"));
        let args: Vec<String> = self.approvald_args.iter().chain(extra).cloned().collect();
        Replica::start(
            &self.approvald,
            &self.redis.url(),
            prefix,
            &args,
            &log,
            auth,
        )
        .await
    }

    /// An auth file under the scratch folder for `principals` (name, role).
    pub fn auth(&self, prefix: &str, principals: &[(String, &str)]) -> BenchResult<Auth> {
        Auth::write(self.work.join(format!("{prefix}-auth.toml")), principals)
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds approvald in release mode (a no-op when it is up to date).
fn build_approvald() -> BenchResult<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building approvald (release)...");
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--locked",
            "-q",
            "-p",
            "approvald",
            "--bin",
            "approvald",
        ])
        .status()?;
    if !status.success() {
        return Err("cargo build --release -p approvald failed".into());
    }
    Ok(target_dir().join("release").join("approvald"))
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("approvald-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let outcome = runtime.block_on(run(args));
    // Waiter tasks still parked on dead connections must not hold us up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(e) = outcome {
        eprintln!("approvald-bench: FAILED: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> BenchResult<()> {
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if !args.herd_waiters.is_empty() {
        sizes.herd_waiters = args.herd_waiters.clone();
    }
    if !args.idle_waiters.is_empty() {
        sizes.idle_waiters = args.idle_waiters.clone();
    }
    if !args.decision.is_empty() {
        sizes.decision = args.decision.clone();
    }
    if !args.lifecycle.is_empty() {
        sizes.lifecycle_concurrency = args.lifecycle.clone();
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let approvald = match &args.approvald {
        Some(p) => p.clone(),
        None => build_approvald()?,
    };
    if !approvald.exists() {
        return Err(format!("no approvald binary at {}", approvald.display()).into());
    }
    let work = std::env::temp_dir().join(format!("approvald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    eprintln!("logs: {}", work.display());

    let reference = if args.no_reference {
        Err("skipped (--no-reference)".to_string())
    } else {
        Reference::prepare(args.python.clone(), &target_dir(), &workspace_root()).await
    };
    if let Err(why) = &reference {
        eprintln!("reference (attune-ai ApprovalGate): not run: {why}");
    }

    let redis = RedisServer::start(&work).await?;
    let mut redis_replicas = Vec::new();
    let mut approvald_args = Vec::new();
    if args.redis_wait_replicas > 0 {
        for _ in 0..args.redis_wait_replicas {
            redis_replicas.push(RedisServer::start_replica_of(&work, redis.port()).await?);
        }
        approvald_args = vec![
            "--redis-wait-replicas".to_string(),
            args.redis_wait_replicas.to_string(),
        ];
        eprintln!(
            "Redis with {} replica(s); approvald confirms writes once they have them",
            args.redis_wait_replicas
        );
    }
    let bench = Bench {
        redis,
        redis_replicas,
        approvald_args,
        approvald,
        work: work.clone(),
        sizes,
        quick: args.quick,
        counter: Default::default(),
    };
    let mut results = Results::new(&bench, &reference, args.quick).await;

    if wanted("floor") {
        results.floor = Some(scenarios::floor::run(&bench).await?);
    }
    if wanted("decision") {
        results.decision = scenarios::decision::run(&bench).await?;
        if let Ok(r) = &reference {
            results.reference_decision = Some(r.decision(&bench).await?);
        }
    }
    if wanted("lifecycle") {
        results.lifecycle = scenarios::lifecycle::run(&bench).await?;
    }
    if wanted("idle") {
        results.idle = scenarios::idle::run(&bench).await?;
    }
    if wanted("herd") {
        results.herd = scenarios::herd::run(&bench).await?;
    }
    if wanted("fanout") {
        results.fanout = scenarios::fanout::run(&bench).await?;
    }
    if wanted("snapshot") {
        results.snapshot = Some(scenarios::snapshot::run(&bench).await?);
    }
    if wanted("listing") {
        results.listing = Some(scenarios::listing::run(&bench, reference.as_ref().ok()).await?);
    }

    if args.report {
        let root = workspace_root();
        let svg = root.join("bench").join("decision-latency.svg");
        plot::decision_latency(&results, &svg)?;
        let md = report::markdown(&results, "bench/decision-latency.svg");
        std::fs::write(root.join("BENCHMARKS.md"), md)?;
        eprintln!(
            "wrote {} and {}",
            root.join("BENCHMARKS.md").display(),
            svg.display()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    println!("\nall scenarios ran");
    Ok(())
}
