//! The admin listener of the `incasso` binary as Kubernetes sees it: where `--admin-listen`
//! and `INCASSO_ADMIN_LISTEN` put it, and what it answers while SIGTERM drains the replica.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use incasso_integration_tests::node_simulator::{HttpReply, request};

fn incasso(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incasso"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INCASSO_") {
            command.env_remove(&name);
        }
    }
    command
        .current_dir(dir)
        .env("INCASSO_GRPC_LISTEN", "127.0.0.1:0")
        .env("INCASSO_SOAP_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpReply> {
    request(addr, "GET", path, &[], b"").await
}

/// Waits until `/livez` answers at `addr`.
async fn wait_live(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(reply) = get(addr, "/livez").await {
            assert_eq!(reply.status, 200, "{}", reply.body);
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "incasso exited before listening"
        );
        assert!(Instant::now() < deadline, "no admin listener at {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(child: &Child) {
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "incasso did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_flag_moves_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_addr();
    let mut child = incasso(dir.path())
        .arg("serve")
        .arg("--admin-listen")
        .arg(admin.to_string())
        .spawn()
        .unwrap();
    wait_live(admin, &mut child).await;
    let ready = get(admin, "/readyz").await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
}

#[tokio::test]
async fn the_environment_moves_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_addr();
    let mut child = incasso(dir.path())
        .env("INCASSO_ADMIN_LISTEN", admin.to_string())
        .arg("serve")
        .spawn()
        .unwrap();
    wait_live(admin, &mut child).await;
    let metrics = get(admin, "/metrics").await.unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("incasso_receipts_parked 0"),
        "{}",
        metrics.body
    );
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
}

#[test]
fn an_admin_address_that_is_not_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = incasso(dir.path())
        .env("INCASSO_ADMIN_LISTEN", "localhost-nine-thousand")
        .arg("serve")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin_listen"), "{stderr}");
}

/// While the drain after SIGTERM waits for a call in flight, the replica says it
/// is not ready (so no new traffic comes) but stays live (so it is not killed), and it exits
/// once the grace period is over.
#[tokio::test]
async fn while_draining_the_replica_is_live_but_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_addr();
    let grpc = free_addr();
    let mut child = incasso(dir.path())
        .env("INCASSO_ADMIN_LISTEN", admin.to_string())
        .env("INCASSO_GRPC_LISTEN", grpc.to_string())
        .env("INCASSO_SHUTDOWN_GRACE_SECONDS", "4")
        .arg("serve")
        .spawn()
        .unwrap();
    wait_live(admin, &mut child).await;
    // A bulk load whose client never ends its stream: a call in flight, which the drain
    // waits for until the grace period is over.
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut notices = incasso_grpc::pb::notice_service_client::NoticeServiceClient::new(channel);
    let first = incasso_integration_tests::requests::school_fee("drain-1");
    let endless =
        tokio_stream::StreamExt::chain(tokio_stream::iter([first]), tokio_stream::pending());
    let mut answers = notices
        .bulk_create_debt_positions(endless)
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap();
    assert!(answer.is_some(), "the first position is answered");
    let terminated = Instant::now();
    sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(3);
    let draining = loop {
        let ready = get(admin, "/readyz").await.unwrap();
        if ready.status == 503 {
            break ready;
        }
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(draining.body.contains("shutting down"), "{}", draining.body);
    assert_eq!(get(admin, "/livez").await.unwrap().status, 200);
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "{status}");
    let drained = terminated.elapsed();
    assert!(
        drained >= Duration::from_secs(3) && drained < Duration::from_secs(15),
        "exited {drained:?} after SIGTERM with a 4 s grace period"
    );
    drop(answers);
}
