//! The `chargebridge` binary as an operator runs it: configuration errors, the
//! configuration check, and graceful shutdown under SIGTERM.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");
const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("chargebridge.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_bad_config_file_stops_serve_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[idempotency]\nin_flight_wait = \"a while\"\n");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in_flight_wait"), "{err}");
}

#[test]
fn check_config_reports_each_part() {
    let out = Command::new(BIN).arg("check-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tenant quickbooks-123"), "{text}");
    assert!(
        !text.contains("quickbooks-key-345"),
        "secrets never printed"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "[idempotency]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\ncommand_timeout = \"300ms\"\n\
             [[tenants]]\nid = \"h1\"\napi_key_env = \"CB_TEST_UNSET_KEY_VAR\"\ncurrency = \"EUR\"\npms = \"m\"\n\
             [pms.m]\nadapter = \"memory\"\n",
            free_port()
        ),
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CB_TEST_UNSET_KEY_VAR"), "{text}");
    assert!(text.contains("FAIL  redis"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_charge_finish() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"10s\"\n[log]\nlevel = \"warn\"\n\
             [[tenants]]\nid = \"quickbooks-123\"\napi_key = \"quickbooks-key-345\"\ncurrency = \"EUR\"\npms = \"slow\"\n\
             [pms.slow]\nadapter = \"memory\"\nfault = \"slow\"\nslow_delay = \"1500ms\"\n"
        ),
    );
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let charge = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/lightspeed/charge"))
                .header("content-type", "application/json")
                .header("x-lightspeed-idempotency-key", "LS1_sigterm-test")
                .body(SEED)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    assert_eq!(charge.await.unwrap().expect("answered, not dropped"), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit after draining: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after draining");
        std::thread::sleep(Duration::from_millis(50));
    }
    // New connections are refused once it has stopped.
    assert!(
        client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
}
