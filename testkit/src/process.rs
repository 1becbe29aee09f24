//! Server processes started the way a user starts them, and what only a
//! separate process shows: its log lines, its memory, its CPU time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_port;

/// The `approvald` binary next to this test's own (`target/<profile>/`), or
/// `APPROVALD_BIN`. `cargo test --workspace` builds it (the server package
/// has process tests); alone, build it first: `cargo build -p approvald`.
pub fn approvald_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("APPROVALD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>/approvald
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("approvald"))
        .expect("the test binary lies under target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p approvald` (or set APPROVALD_BIN)",
        bin.display()
    );
    bin
}

/// A pair of free loopback addresses for a server: its API and its metrics.
#[derive(Clone, Copy, Debug)]
pub struct Listen {
    pub port: u16,
    pub metrics_port: u16,
}

impl Listen {
    pub fn free() -> Self {
        Self {
            port: free_port(),
            metrics_port: free_port(),
        }
    }

    /// `127.0.0.1:<port>`, the API address.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<metrics_port>`.
    pub fn metrics_addr(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    /// `http://127.0.0.1:<port>`, for a client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `--listen <addr> --metrics-listen <metrics_addr>`, then `more`.
    pub fn args_with<S: AsRef<str>>(&self, more: &[S]) -> Vec<String> {
        let mut args = vec![
            "--listen".into(),
            self.addr(),
            "--metrics-listen".into(),
            self.metrics_addr(),
        ];
        args.extend(more.iter().map(|a| a.as_ref().to_string()));
        args
    }
}

/// A running server process whose log lines (stdout and stderr) arrive on
/// a channel. Killed on drop, so a failed test leaves nothing running.
pub struct ServerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// `bin` with `args`, without the caller's `APPROVALD_REDIS_URL` (a
    /// process test chooses its store itself).
    pub fn start<S: AsRef<std::ffi::OsStr>>(bin: &Path, args: &[S]) -> Self {
        let mut command = Command::new(bin);
        command.args(args);
        Self::spawn(command)
    }

    /// `bin` on free loopback ports (`--listen`, `--metrics-listen`) with
    /// `args` besides; the process and its addresses.
    pub fn on_loopback<S: AsRef<str>>(bin: &Path, args: &[S]) -> (Self, Listen) {
        let listen = Listen::free();
        (Self::start(bin, &listen.args_with(args)), listen)
    }

    /// `bin` with `args` under `ulimit <limit>` (as a shell does it).
    pub fn start_with_ulimit<S: AsRef<std::ffi::OsStr>>(
        limit: &str,
        bin: &Path,
        args: &[S],
    ) -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("ulimit {limit} && exec \"$0\" \"$@\"")])
            .arg(bin)
            .args(args);
        Self::spawn(command)
    }

    /// Starts `command` with its output piped into the line channel.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env_remove("APPROVALD_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server process starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log lines not read yet.
    pub fn lines(&self) -> &mpsc::Receiver<String> {
        &self.lines
    }

    /// The first log line containing `needle`, within a generous bound.
    pub fn line_with(&self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no log line containing {needle:?}");
    }

    /// SIGTERM, then its exit status (it must exit within 20 s).
    pub fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child, Duration::from_secs(20))
            .expect("the server exits within 20 s of SIGTERM")
    }

    /// Sends `signal` (`-HUP`, `-STOP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`-TERM`, `-STOP`, ...) to process `pid`, failing the
/// test if `kill` cannot.
pub fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {signal} {pid}");
}

/// SIGTERM to `child`, then waits up to `grace` for it to exit: its exit
/// status, or `None` if it still runs (the caller decides: kill or fail).
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + grace;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process, in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) a process has used so far, from
/// /proc/PID/stat; `None` once it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15, in clock ticks.
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / clock_ticks(),
    ))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 where it cannot say).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}
