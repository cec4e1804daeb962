//! `chargebridge replay` against the real app: the fixture corpus passes (once, twice,
//! as duplicate storms, on every store), a wrong expectation is reported (and makes
//! the binary exit non-zero), and captured traffic replays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chargebridge::config::CaptureSettings;
use chargebridge::domain::{IdempotencyKey, PostingReference};
use chargebridge::pms::memory::MemoryPms;
use chargebridge::replay::{self, Options, PmsInspector, Posting, Report};

use crate::both_stores;
use crate::helpers::*;

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/deliveries")
}

/// `posted` expectations checked against the in-process memory PMS.
pub struct MemoryInspector(pub Arc<MemoryPms>);

#[async_trait::async_trait]
impl PmsInspector for MemoryInspector {
    async fn postings(&self, tenant: &str, key: &str) -> Result<Vec<Posting>, String> {
        let key = IdempotencyKey::parse(key.as_bytes()).map_err(|e| e.to_string())?;
        let reference = PostingReference::derive(tenant, &key);
        Ok(self
            .0
            .applied()
            .into_iter()
            .filter(|p| p.charge.reference == reference)
            .filter_map(|p| {
                let room = p.charge.room().cloned()?;
                Some(Posting {
                    amount: room.amount,
                    gratuity: Some(room.gratuity),
                    refund: Some(p.charge.refund),
                    reservation_id: Some(room.reservation_id),
                    currency: Some(p.charge.currency.clone()),
                })
            })
            .collect())
    }
}

pub fn options(app: &TestApp) -> Options {
    Options {
        target: format!("{}/lightspeed", app.address),
        concurrency: 4,
        repeat: 1,
        rewrite_keys: true,
        timeout: Duration::from_secs(20),
        api_key: None,
        progress: false,
        tenant: app.tenant.clone(),
    }
}

pub async fn replay_with(app: &TestApp, paths: &[PathBuf], options: Options) -> Report {
    let units = replay::load(paths, false).unwrap_or_else(|e| panic!("fixtures: {e:?}"));
    let inspector: Arc<dyn PmsInspector> = Arc::new(MemoryInspector(app.memory_pms().clone()));
    replay::run(units, options, Some(inspector))
        .await
        .expect("replay runs")
}

fn assert_clean(report: &Report) {
    assert!(report.ok(), "{}", report.table());
    assert!(report.passed >= 40, "{}", report.summary());
    let unchecked: Vec<&str> = report
        .results
        .iter()
        .filter(|r| !r.skipped.is_empty())
        .map(|r| r.fixture.as_str())
        .collect();
    assert!(unchecked.is_empty(), "posted not checked: {unchecked:?}");
}

async fn corpus_replays_without_mismatch(store: StoreChoice) {
    let app = spawn_app(store).await;
    let report = replay_with(&app, &[corpus_dir()], options(&app)).await;
    assert_clean(&report);
}
both_stores!(corpus, corpus_replays_without_mismatch);

/// With fresh keys the corpus passes again against the same server, also as
/// duplicate storms: every copy agrees and nothing is posted twice (the memory
/// inspector counts postings per reference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_passes_twice_and_as_duplicate_storms() {
    let app = spawn_app(StoreChoice::Memory).await;
    for _ in 0..2 {
        assert_clean(&replay_with(&app, &[corpus_dir()], options(&app)).await);
    }
    let storm = Options {
        repeat: 4,
        concurrency: 8,
        ..options(&app)
    };
    let report = replay_with(&app, &[corpus_dir()], storm).await;
    assert_clean(&report);
    assert!(
        report.requests > 3 * report.results.len(),
        "{}",
        report.summary()
    );
}

/// Without `--rewrite-keys` symbolic keys are stable: a second run against the
/// same server meets replays (as when Lightspeed resends), and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_keys_meet_replays_on_a_second_run() {
    let app = spawn_app(StoreChoice::Memory).await;
    let paths = [corpus_dir().join("seq-duplicate-and-reuse")];
    let stable = Options {
        rewrite_keys: false,
        ..options(&app)
    };
    assert!(replay_with(&app, &paths, stable.clone()).await.ok());
    let again = replay_with(&app, &paths, stable).await;
    assert!(!again.ok());
    let first = &again.results[0];
    assert_eq!(first.mismatches[0].field, "replayed", "{}", again.table());
    assert!(again.table().contains("--rewrite-keys"));
    assert_eq!(app.applied().len(), 1, "the second run posted nothing new");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn wrong_fixture(dir: &Path) -> PathBuf {
    let seed: serde_json::Value = serde_json::from_str(SEED).unwrap();
    let fixture = serde_json::json!({
        "description": "expects a refusal the server will not give",
        "request": {
            "headers": {
                "X-Lightspeed-Idempotency-Key": "{{key:a}}",
                "Content-Type": "application/json",
                "Accept": "application/json"
            },
            "body": seed
        },
        "expect": {
            "status": 422,
            "code": "pms_rejected",
            "replayed": false,
            "posted": false
        }
    });
    write(dir, "wrong.json", &fixture.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_is_reported_field_by_field() {
    let app = spawn_app(StoreChoice::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let report = replay_with(&app, &[wrong_fixture(dir.path())], options(&app)).await;
    assert_eq!((report.passed, report.failed), (0, 1));
    let fields: Vec<&str> = report.results[0]
        .mismatches
        .iter()
        .map(|m| m.field.as_str())
        .collect();
    assert_eq!(fields, ["status", "code", "posted"]);
    let table = report.table();
    assert!(table.contains("0 passed, 1 failed"), "{table}");
    assert!(table.contains("expected 422"), "{table}");
    assert!(table.contains("got      200"), "{table}");
    let junit = report.to_junit();
    assert!(junit.contains("<failure message=\"status: expected 422, got 200"));
}

/// A sequence whose step names an earlier step that does not exist, and a storm
/// expectation that cannot hold, are mismatches too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_check_same_body_and_storms_check_freshness() {
    let app = spawn_app(StoreChoice::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let seed: serde_json::Value = serde_json::from_str(SEED).unwrap();
    let step = |expect: serde_json::Value| {
        serde_json::json!({
            "request": {
                "headers": {"X-Lightspeed-Idempotency-Key": "{{key:a}}", "Content-Type": "application/json"},
                "body": seed.clone()
            },
            "expect": expect
        })
        .to_string()
    };
    write(
        dir.path(),
        "seq-x/01-first.json",
        &step(serde_json::json!({"status": 200, "replayed": true})),
    );
    write(
        dir.path(),
        "seq-x/02-again.json",
        &step(serde_json::json!({"status": 200, "sameBodyAs": "00-missing"})),
    );
    let storm = Options {
        repeat: 3,
        ..options(&app)
    };
    let report = replay_with(&app, &[dir.path().join("seq-x")], storm).await;
    let first = &report.results[0];
    assert_eq!(first.mismatches[0].field, "replayed");
    assert_eq!(first.mismatches[0].got, "1 fresh, 2 replayed");
    assert_eq!(report.results[1].mismatches[0].field, "sameBodyAs");
    assert_eq!(app.applied().len(), 1, "three copies, one posting");
}

async fn run_cli(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_chargebridge"))
        .args(args)
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_non_zero_on_a_mismatch() {
    let app = spawn_app(StoreChoice::Memory).await;
    let target = format!("{}/lightspeed", app.address);
    let dir = tempfile::tempdir().unwrap();
    let wrong = wrong_fixture(dir.path());
    let report = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let out = run_cli(&[
        "replay",
        wrong.to_str().unwrap(),
        "--target",
        &target,
        "--report",
        report.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("status"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["failed"], 1);
    assert_eq!(json["results"][0]["mismatches"][0]["field"], "status");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.starts_with("<?xml") && xml.contains("failures=\"1\""),
        "{xml}"
    );

    // The same binary passes on a good sequence, twice with fresh keys.
    let good = corpus_dir().join("seq-duplicate-and-reuse");
    for _ in 0..2 {
        let out = run_cli(&[
            "replay",
            good.to_str().unwrap(),
            "--target",
            &target,
            "--rewrite-keys",
        ])
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    }
    // Fixtures that do not parse are a usage error (2), reported by file.
    let broken = write(dir.path(), "broken.json", r#"{"request": {"bdy": 1}}"#);
    let out = run_cli(&["replay", broken.to_str().unwrap(), "--target", &target]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.json"));
}

fn captured_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// `[capture] dir`: every delivery becomes a fixture without the API key, named
/// in answer order; the capture replays, in order, against a fresh server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_deliveries_replay_against_a_fresh_server() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture");
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.capture = Some(CaptureSettings {
            dir: capture.display().to_string(),
        });
    }))
    .await;
    let sources: Vec<PathBuf> = [
        "seq-duplicate-and-reuse",
        "seq-rejected-then-replayed",
        "055-wrong-api-key.json",
        "040-malformed-json.json",
        "044-invalid-utf8.json",
        "053-duplicate-known-field.json",
        "057-accept-xml.json",
        "064-body-too-large.json",
    ]
    .iter()
    .map(|p| corpus_dir().join(p))
    .collect();
    // One at a time, so the capture's order is the delivery order.
    let serial = Options {
        concurrency: 1,
        ..options(&app)
    };
    let sent = replay_with(&app, &sources, serial).await;
    assert!(sent.ok(), "{}", sent.table());
    let n = sent.results.len();

    let mut files = Vec::new();
    for _ in 0..200 {
        files = captured_files(&capture);
        if files.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files.len(), n, "one fixture per delivery");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains(API_KEY) && !text.contains("not-the-key"),
            "API key in {}: {text}",
            file.display()
        );
    }
    // Names sort in delivery order: the first is the sequence's first step.
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(first["request"]["body"]["fiscId"], "A5001.1");
    assert_eq!(first["request"]["body"]["apiKey"], "<redacted>");
    assert_eq!(first["expect"]["status"], 200);

    // Replay the capture, in order, with the key put back, against another server.
    let other = spawn_app(StoreChoice::Memory).await;
    let units = replay::load(std::slice::from_ref(&capture), true).unwrap();
    assert_eq!(units.len(), 1, "one sequence");
    let report = replay::run(
        units,
        Options {
            api_key: Some(API_KEY.into()),
            ..options(&other)
        },
        None,
    )
    .await
    .unwrap();
    assert!(report.ok(), "{}", report.table());
    assert_eq!(report.passed, n);
}

/// `--pms-inspect URL`: `posted` is checked over the generic HTTP protocol
/// (`GET {URL}/charges/{reference}`, 200 with the posting or 404), here served by
/// a small fake in front of the memory PMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_is_checked_over_http_with_pms_inspect() {
    use actix_web::{HttpResponse, web};

    let app = spawn_app(StoreChoice::Memory).await;
    let pms = app.memory_pms().clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let pms = pms.clone();
        actix_web::App::new().route(
            "/charges/{reference}",
            web::get().to(move |reference: web::Path<String>| {
                let pms = pms.clone();
                async move {
                    let found = pms
                        .applied()
                        .into_iter()
                        .find(|p| p.charge.reference.as_str() == reference.as_str());
                    match found {
                        None => HttpResponse::NotFound().finish(),
                        Some(p) => {
                            let room = p.charge.room().cloned().unwrap();
                            HttpResponse::Ok().json(serde_json::json!({
                                "pmsReference": p.pms_reference,
                                "charge": {
                                    "reference": p.charge.reference,
                                    "tenant": p.charge.tenant,
                                    "reservationId": room.reservation_id,
                                    "amount": room.amount.to_string(),
                                    "gratuity": room.gratuity.to_string(),
                                    "currency": p.charge.currency,
                                    "refund": p.charge.refund,
                                }
                            }))
                        }
                    }
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let inspector: Arc<dyn PmsInspector> = Arc::new(
        replay::HttpInspector::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5))
            .unwrap(),
    );
    let paths = [
        corpus_dir().join("001-seed-example.json"),
        corpus_dir().join("065-pms-unavailable.json"),
        corpus_dir().join("seq-unknown-then-retry"),
    ];
    let units = replay::load(&paths, false).unwrap();
    let report = replay::run(units, options(&app), Some(inspector.clone()))
        .await
        .unwrap();
    assert!(report.ok(), "{}", report.table());
    assert!(report.results.iter().all(|r| r.skipped.is_empty()));

    // A wrong amount is caught over HTTP too.
    let dir = tempfile::tempdir().unwrap();
    let mut fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(corpus_dir().join("001-seed-example.json")).unwrap(),
    )
    .unwrap();
    fixture["expect"]["posted"]["amount"] = "65.99".into();
    let wrong = write(dir.path(), "wrong-amount.json", &fixture.to_string());
    let units = replay::load(&[wrong], false).unwrap();
    let report = replay::run(units, options(&app), Some(inspector))
        .await
        .unwrap();
    let m = &report.results[0].mismatches;
    assert_eq!(m.len(), 1, "{}", report.table());
    assert_eq!(
        (
            m[0].field.as_str(),
            m[0].expected.as_str(),
            m[0].got.as_str()
        ),
        ("posted.amount", "65.99", "67.0")
    );
}
