//! A process killed with SIGKILL in the middle of a posting: the retry, served by
//! a fresh process, must reconcile with the PMS instead of posting again.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::conformance::{FakeFault, FakePms};
use crate::fake_http_pms::{HttpFault, start_fake};
use crate::helpers::*;
use crate::redis_server::{RedisServer, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");

fn spawn_server(port: u16, redis: &str, pms: &str, dir: &tempfile::TempDir) -> std::process::Child {
    let config = dir.path().join("chargebridge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nrequest_deadline = \"2s\"\npms_safety_margin = \"200ms\"\n\
             [idempotency]\nstore = \"redis\"\nredis_url = \"{redis}\"\nlease = \"3s\"\nin_flight_wait = \"500ms\"\naccept_unsafe_redis = true\n\
             [log]\nlevel = \"warn\"\n\
             [[tenants]]\nid = \"{TENANT}\"\napi_key = \"{API_KEY}\"\ncurrency = \"EUR\"\npms = \"hotel\"\n\
             [pms.hotel]\nadapter = \"http\"\nurl = \"{pms}\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::redis_server::wait_for_port(port, true);
    child
}

async fn post(client: &reqwest::Client, port: u16, key: &str) -> Result<u16, reqwest::Error> {
    client
        .post(format!("http://127.0.0.1:{port}/lightspeed/charge"))
        .header("content-type", "application/json")
        .header("x-lightspeed-idempotency-key", key)
        .body(SEED)
        .send()
        .await
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_sigkill_mid_posting_reconciles_instead_of_posting_twice() {
    let redis = RedisServer::start(true);
    let pms = start_fake(None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = spawn_server(port, &redis.url(), &pms.url, &dir);
    let client = reqwest::Client::new();
    let key = fresh_key();

    // The PMS applies the charge, then holds its answer; the process dies meanwhile.
    pms.push(HttpFault::Kit(FakeFault::ApplyThenTimeout));
    let in_flight = tokio::spawn({
        let client = client.clone();
        let key = key.clone();
        async move { post(&client, port, &key).await }
    });
    let started = Instant::now();
    while pms.charge_requests() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the posting never reached the PMS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the connection died with the process"
    );
    assert_eq!(pms.applied().len(), 1, "the PMS did apply the charge");

    // A fresh process on the same Redis. Within the dead owner's lease the key
    // is still busy (409); after it, the retry reconciles and answers 200.
    let mut second = spawn_server(port, &redis.url(), &pms.url, &dir);
    let early = post(&client, port, &key).await.unwrap();
    assert_eq!(early, 409, "the dead owner's lease still holds");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(post(&client, port, &key).await.unwrap(), 200);
    assert_eq!(
        pms.charge_requests(),
        1,
        "no second POST /charges: the retry reconciled"
    );
    assert!(
        pms.seen()
            .iter()
            .any(|s| s.method == "GET" && s.path.starts_with("/charges/")),
        "the retry looked the charge up by its reference"
    );
    assert_eq!(pms.applied().len(), 1);
    // And it is final now: a further delivery is a replay.
    assert_eq!(post(&client, port, &key).await.unwrap(), 200);
    assert_eq!(pms.charge_requests(), 1);
    second.kill().unwrap();
    second.wait().unwrap();
}
