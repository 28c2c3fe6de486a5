//! The real `incasso` binary as a child process, for the tests that need what an in-process
//! [`crate::TestApp`] cannot give: a process killed with SIGKILL in the middle of its work and
//! started again on the same database.
//!
//! The server listens on port 0 and logs (JSON) the addresses it got; [`ServerProcess::start`]
//! reads them from its log, so there is no race for a "free" port. The log is kept in memory
//! and shown when a test fails ([`ServerProcess::log_tail`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tonic::transport::Channel;

use incasso_grpc::pb::ledger_service_client::LedgerServiceClient;
use incasso_grpc::pb::notice_service_client::NoticeServiceClient;

/// How long a start may take (migrations on a loaded machine included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `incasso serve`.
pub struct ServerProcess {
    child: Child,
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where the paForNode SOAP endpoint listens.
    pub soap_addr: SocketAddr,
    /// Where the admin listener (`/livez`, `/readyz`, `/metrics`) listens.
    pub admin_addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `binary serve` on `database_url` (no configuration file: the sample Milan
    /// registry and the development keys, the same at every start, so a restarted server
    /// reads what the previous one wrote) and waits until both listeners are up.
    pub async fn start(binary: &Path, database_url: &str) -> anyhow::Result<Self> {
        Self::start_with_env(binary, database_url, &[]).await
    }

    /// [`ServerProcess::start`] with more environment variables (`OTEL_*`, say).
    pub async fn start_with_env(
        binary: &Path,
        database_url: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        // Nothing of the test's environment configures the server (a developer's
        // INCASSO_CONFIG, keys, log filter or OpenTelemetry collector).
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            if name_text.starts_with("INCASSO_")
                || name_text.starts_with("OTEL_")
                || name_text == "RUST_LOG"
            {
                command.env_remove(&name);
            }
        }
        command.envs(env.iter().map(|(name, value)| (*name, value.as_str())));
        let mut child = command
            .arg("serve")
            .env("INCASSO_DATABASE_URL", database_url)
            .env("INCASSO_GRPC_LISTEN", "127.0.0.1:0")
            .env("INCASSO_SOAP_LISTEN", "127.0.0.1:0")
            .env("INCASSO_ADMIN_LISTEN", "127.0.0.1:0")
            .env("INCASSO_LOG_FORMAT", "json")
            .env("INCASSO_LOG", "info")
            .env("INCASSO_SHUTDOWN_GRACE_SECONDS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        // Drains the log for the life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (grpc_addr, soap_addr, admin_addr) = loop {
            let found = {
                let lines = log.lock().map_err(|_| anyhow::anyhow!("log poisoned"))?;
                (
                    find_addr(&lines, "incasso gRPC listening", "addr"),
                    find_addr(&lines, "incasso paForNode SOAP listening", "soap_addr"),
                    find_addr(
                        &lines,
                        "incasso admin listening: /livez /readyz /metrics",
                        "admin_addr",
                    ),
                )
            };
            if let (Some(grpc), Some(soap), Some(admin)) = found {
                break (grpc, soap, admin);
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "incasso exited before listening ({status}):\n{}",
                    tail(&log, 40)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("incasso did not start listening:\n{}", tail(&log, 40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(Self {
            child,
            grpc_addr,
            soap_addr,
            admin_addr,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as the kernel's OOM killer or a node failure does: no shutdown, no flush.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, and waits (at most 30 s) for a graceful exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "incasso exited with {status}:\n{}",
                    self.log_tail(40)
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("incasso did not stop on SIGTERM:\n{}", self.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// How many log lines at WARN or ERROR there were of each message, as "LEVEL message".
    pub fn warnings(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        let Ok(lines) = self.log.lock() else {
            return counts;
        };
        for line in lines.iter() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let level = value.get("level").and_then(|l| l.as_str()).unwrap_or("");
            if level == "WARN" || level == "ERROR" {
                let message = value
                    .pointer("/fields/message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("");
                *counts.entry(format!("{level} {message}")).or_insert(0) += 1;
            }
        }
        counts
    }

    /// A channel to the gRPC listener.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.grpc_addr))?
            .connect()
            .await?)
    }

    /// A NoticeService client.
    pub async fn notices(&self) -> anyhow::Result<NoticeServiceClient<Channel>> {
        Ok(NoticeServiceClient::new(self.channel().await?))
    }

    /// A LedgerService client.
    pub async fn ledger(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        Ok(LedgerServiceClient::new(self.channel().await?))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(log: &Mutex<Vec<String>>, n: usize) -> String {
    log.lock()
        .map(|lines| lines[lines.len().saturating_sub(n)..].join("\n"))
        .unwrap_or_default()
}

/// The address in field `field` of the first JSON log line whose message is `message`.
fn find_addr(lines: &[String], message: &str, field: &str) -> Option<SocketAddr> {
    lines.iter().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = value.get("fields")?;
        if fields.get("message")?.as_str()? != message {
            return None;
        }
        fields.get(field)?.as_str()?.parse().ok()
    })
}
