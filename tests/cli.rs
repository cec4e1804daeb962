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
    assert!(text.contains("tenant demo → pms demo"), "{text}");
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

/// The binary, without any `CHARGEBRIDGE*` variable the test run may carry.
fn bin() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("CHARGEBRIDGE") {
            cmd.env_remove(name);
        }
    }
    cmd
}

#[test]
fn three_mistakes_are_refused_together_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[server]\nrequest_deadline = \"soon\"\n\
         [idempotency]\nstore = \"rediss\"\n\
         [[tenants]]\nid = \"h1\"\napi_key = \"k\"\npms = \"m\"\n\
         [pms.m]\nadapter = \"memory\"\n",
    );
    let out = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "chargebridge: 3 problems in the configuration:",
            "  server.request_deadline: \"soon\" is not a duration; write e.g. \"10s\" or \"500ms\"",
            "  idempotency.store: \"rediss\" is not a store; use \"memory\" or \"redis\"",
            "  tenants[0].currency is missing: add currency = \"EUR\" (an ISO 4217 code)",
        ],
        "{err}"
    );
    for jargon in ["variant", "invalid type", "expected", "missing field"] {
        assert!(!err.contains(jargon), "{jargon}: {err}");
    }

    // check-config lists the same problems, one a line.
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "  FAIL  3 problems in the configuration:\n        server.request_deadline: "
        ),
        "{text}"
    );
    assert!(
        text.contains("\n        tenants[0].currency is missing"),
        "{text}"
    );
}

#[test]
fn check_config_says_where_each_setting_comes_from() {
    const FILE_KEY: &str = "api-key-written-in-the-file";
    const ENV_TOKEN: &str = "pms-token-from-the-environment";
    const REDIS_PASSWORD: &str = "redis-password-from-the-environment";
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("h2-key");
    std::fs::write(&key_file, "api-key-in-a-secret-file\n").unwrap();
    let path = write_config(
        &dir,
        &format!(
            "[idempotency]\nstore = \"memory\"\n\
             [[tenants]]\nid = \"h1\"\napi_key = \"{FILE_KEY}\"\ncurrency = \"EUR\"\npms = \"m\"\n\
             [[tenants]]\nid = \"h2\"\napi_key_file = \"{}\"\ncurrency = \"EUR\"\npms = \"m\"\n\
             [pms.m]\nadapter = \"http\"\nurl = \"http://127.0.0.1:{}\"\ntimeout = \"300ms\"\n",
            key_file.display(),
            free_port()
        ),
    );
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .env("CHARGEBRIDGE__SERVER__LISTEN", "127.0.0.1:0")
        .env("CHARGEBRIDGE__PMS__M__TOKEN", ENV_TOKEN)
        .env(
            "CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL",
            format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |what: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  from  {what}")))
            .unwrap_or_else(|| panic!("no line for {what}:\n{text}"))
            .to_string()
    };
    assert!(
        line("server.listen = \"127.0.0.1:0\"")
            .ends_with("  environment CHARGEBRIDGE__SERVER__LISTEN"),
        "{text}"
    );
    assert!(
        line("server.request_deadline = 10s").ends_with("  default"),
        "{text}"
    );
    assert!(
        line("idempotency.store = memory").ends_with("  file"),
        "{text}"
    );
    assert!(
        line("idempotency.redis_url")
            .ends_with("  environment CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL (value not shown)"),
        "{text}"
    );
    assert!(
        line("tenant h1 api key").ends_with("  file (value not shown)"),
        "{text}"
    );
    assert!(
        line("tenant h2 api key").ends_with(&format!(
            "  secret file {} (api_key_file from file)",
            key_file.display()
        )),
        "{text}"
    );
    assert!(
        line("pms m token")
            .ends_with("  environment CHARGEBRIDGE__PMS__M__TOKEN (value not shown)"),
        "{text}"
    );
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    for secret in [
        FILE_KEY,
        ENV_TOKEN,
        REDIS_PASSWORD,
        "api-key-in-a-secret-file",
    ] {
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_charge_finish() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"10s\"\ndrain_delay = \"1s\"\n[log]\nlevel = \"warn\"\n\
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
        let base = base.clone();
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
    // During drain_delay the listener stays open and /readyz says 503, so a
    // load balancer sees the instance leave before connections are refused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client.get(format!("{base}/readyz")).send().await;
    assert_eq!(ready.expect("still listening").status().as_u16(), 503);
    let head = client.head(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 503);
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

#[test]
fn check_config_notes_an_opera_section_without_enterprise_id() {
    let dir = tempfile::tempdir().unwrap();
    let section = "[pms.opera]\nadapter = \"opera\"\nurl = \"http://127.0.0.1:9\"\nclient_id = \"C\"\n\
                   client_secret = \"s\"\napp_key = \"a\"\nhotel_id = \"H1\"\ntimeout = \"1s\"\n";
    let tenant = "[[tenants]]\nid = \"h1\"\napi_key = \"k-123456789\"\ncurrency = \"EUR\"\npms = \"opera\"\n";
    let check = |extra: &str| {
        let path = write_config(&dir, &format!("{tenant}{section}{extra}"));
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let without = check("");
    assert!(
        without.contains("note  pms opera (opera): no enterprise_id"),
        "{without}"
    );
    let with = check("enterprise_id = \"ENT123\"\n");
    assert!(!with.contains("no enterprise_id"), "{with}");
}
