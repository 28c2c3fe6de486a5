//! Shared pieces of the benchmark binaries: the real `incasso` binary as a child process, its
//! peak memory, and percentiles.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::bail;
use tonic::transport::Channel;

/// Peak resident set size of a process, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size of a process now, in KiB (Linux `VmRSS`): sampled during a phase, it
/// shows that phase's own memory, which the process-wide peak of an earlier phase would hide.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `incasso` binary next to the running benchmark (or `INCASSO_BIN`).
pub fn incasso_binary() -> anyhow::Result<std::path::PathBuf> {
    if let Ok(path) = std::env::var("INCASSO_BIN") {
        return Ok(path.into());
    }
    let path = std::env::current_exe()?.with_file_name("incasso");
    if !path.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p incasso-server) or set INCASSO_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// `incasso serve` on a database, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    /// Where gRPC listens.
    pub port: u16,
    /// Where paForNode listens.
    pub soap_port: u16,
}

impl Server {
    /// Starts the server and waits until it accepts connections.
    pub async fn start(database_url: &str) -> anyhow::Result<(Self, Channel)> {
        Self::start_with(database_url, &[]).await
    }

    /// Starts the server with extra environment variables (`INCASSO_FASCICOLO_URL`, ...).
    pub async fn start_with(
        database_url: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<(Self, Channel)> {
        let port = free_port()?;
        let soap_port = free_port()?;
        // INCASSO_BENCH_SERVER_LOG (a filter such as `incasso_store::receipts=debug,warn`)
        // shows the server's log, for finding out where a figure comes from.
        let log = std::env::var("INCASSO_BENCH_SERVER_LOG").ok();
        let child = Command::new(incasso_binary()?)
            .arg("serve")
            .env("INCASSO_DATABASE_URL", database_url)
            .env("INCASSO_GRPC_LISTEN", format!("127.0.0.1:{port}"))
            .env("INCASSO_SOAP_LISTEN", format!("127.0.0.1:{soap_port}"))
            .env("INCASSO_ADMIN_LISTEN", "127.0.0.1:0")
            .env("INCASSO_LOG", log.as_deref().unwrap_or("warn"))
            .env("INCASSO_SHUTDOWN_GRACE_SECONDS", "2")
            .envs(env.iter().copied())
            .stdout(if log.is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()?;
        let server = Self {
            child,
            port,
            soap_port,
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..600 {
            if let Ok(channel) = Channel::from_shared(endpoint.clone())?.connect().await {
                return Ok((server, channel));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("incasso did not start")
    }

    /// Where paForNode listens.
    pub fn soap_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.soap_port))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now, for a child process to bind.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `p`-th percentile (0..=100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let index = (samples.len() * p / 100).min(samples.len() - 1);
    samples[index]
}
