//! `chargebridge postings …` and `chargebridge report daily`, the real binary
//! against the real service (in this process, memory store and PMS): tables and
//! JSON, the exit codes a cron job relies on (0, 3 for needs_attention, 1 for a
//! refusal, 2 for usage), and the admin token never in any output.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chargebridge::config::{Settings, WhenPmsUnavailable};
use chargebridge::pms::memory::{Fault, MemoryPms};
use chargebridge::startup::{AppState, Application};
use secrecy::SecretString;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");
const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");
const TOKEN: &str = "t0ken";
const TENANT: &str = "demo";

struct Service {
    url: String,
    state: Arc<AppState>,
    client: reqwest::Client,
}

fn settings(tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::demo();
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = Some(2);
    s.log.level = "warn".into();
    s.admin.token = Some(SecretString::from(TOKEN));
    s.journal.poll_interval = Duration::from_millis(100);
    tweak(&mut s);
    s
}

async fn start(settings: Settings) -> Service {
    let app = Application::build(settings).expect("app builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    Service {
        url,
        state,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

impl Service {
    fn pms(&self) -> &Arc<MemoryPms> {
        self.state.pms.memory("demo").expect("the demo memory PMS")
    }

    fn applied_for(&self, key: &str) -> usize {
        self.pms()
            .applied()
            .iter()
            .filter(|p| p.charge.idempotency_key == key)
            .count()
    }

    /// A delivery as Lightspeed sends it; the HTTP status.
    async fn charge(&self, key: &str) -> u16 {
        self.client
            .post(format!("{}/lightspeed/charge", self.url))
            .header("Content-Type", "application/json")
            .header("X-Lightspeed-Idempotency-Key", key)
            .body(SEED)
            .send()
            .await
            .expect("the service answers")
            .status()
            .as_u16()
    }

    async fn entry(&self, key: &str) -> Value {
        self.client
            .get(format!("{}/admin/v1/postings/{TENANT}/{key}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_for(&self, state: &str, key: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let entry = self.entry(key).await;
            if entry["state"] == state {
                return entry;
            }
            assert!(Instant::now() < until, "never {state}: {entry}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn fresh_key() -> String {
    format!("LS1_{}", uuid::Uuid::new_v4())
}

/// Today's business date of an entry (tenant in UTC, cut-off 04:00), from when
/// chargebridge first saw it (so a run across 04:00 cannot pick the wrong one).
fn business_date(entry: &Value) -> String {
    let created = chrono::DateTime::from_timestamp_millis(entry["created_ms"].as_i64().unwrap())
        .expect("created_ms");
    (created - chrono::Duration::hours(4))
        .date_naive()
        .to_string()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The binary with `args` against `url`, the token from the environment (or
/// none); the token must appear in no output.
async fn cli_with(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("CHARGEBRIDGE_URL", url)
        .env_remove("CHARGEBRIDGE_ADMIN_TOKEN")
        .env_remove("CHARGEBRIDGE_CONFIG")
        .kill_on_drop(true);
    if let Some(t) = token {
        command.env("CHARGEBRIDGE_ADMIN_TOKEN", t);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command ends")
        .expect("the binary runs");
    let run = Run {
        code: out.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [Some(TOKEN), token].into_iter().flatten() {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "the token is printed: {args:?}\n{run}"
        );
    }
    run
}

async fn cli(service: &Service, args: &[&str]) -> Run {
    cli_with(&service.url, Some(TOKEN), args).await
}

fn keys_of(list: &Value) -> Vec<String> {
    list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_shows_and_retries_a_failed_charge() {
    let service = start(settings(|_| {})).await;
    // A failed charge (fail mode, the PMS down once), then a posted one.
    let failed = fresh_key();
    service.pms().push_fault(Fault::Unavailable);
    assert_eq!(service.charge(&failed).await, 500);
    let posted = fresh_key();
    assert_eq!(service.charge(&posted).await, 200);

    // The table, newest first; nothing needs attention: exit 0.
    let run = cli(&service, &["postings", "list"]).await;
    assert_eq!(run.code, 0, "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("TENANT"), "{run}");
    for column in ["KEY", "STATE", "CREATED", "AMOUNT", "ATTEMPTS", "LAST"] {
        assert!(lines[0].contains(column), "{column}: {run}");
    }
    assert!(
        lines[1].contains(&posted) && lines[1].contains("posted"),
        "{run}"
    );
    assert!(
        lines[2].contains(&failed)
            && lines[2].contains("failed")
            && lines[2].contains("67.0 EUR")
            && lines[2].contains("unavailable"),
        "{run}"
    );
    assert!(run.stdout.contains("2 entries"), "{run}");

    // --json: the API's own answer.
    let run = cli(
        &service,
        &["postings", "list", "--state", "failed", "--json"],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let list = run.json();
    assert_eq!(keys_of(&list), [failed.as_str()]);
    assert_eq!(list["entries"][0]["lastOutcome"], "unavailable");
    assert_eq!(list["nextCursor"], Value::Null);

    // Pages: one at a time, or every page with --all.
    let run = cli(
        &service,
        &[
            "postings", "list", "--tenant", TENANT, "--limit", "1", "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let first = run.json();
    assert_eq!(keys_of(&first), [posted.as_str()]);
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let run = cli(
        &service,
        &[
            "postings", "list", "--tenant", TENANT, "--limit", "1", "--cursor", &cursor, "--json",
        ],
    )
    .await;
    assert_eq!(keys_of(&run.json()), [failed.as_str()], "{run}");
    let run = cli(
        &service,
        &[
            "postings", "list", "--tenant", TENANT, "--limit", "1", "--all", "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(keys_of(&run.json()), [posted.as_str(), failed.as_str()]);
    assert_eq!(run.json()["nextCursor"], Value::Null);
    let run = cli(
        &service,
        &["postings", "list", "--tenant", TENANT, "--limit", "1"],
    )
    .await;
    assert!(
        run.stderr.contains("--all"),
        "the next page is offered: {run}"
    );

    // show: the entry and its attempts.
    let run = cli(&service, &["postings", "show", TENANT, &failed]).await;
    assert_eq!(run.code, 0, "{run}");
    for text in [
        failed.as_str(),
        "failed",
        "POS was told  500",
        "Attempts",
        "OUTCOME",
        "delivery",
        "unavailable",
        "Postings",
        "cb-",
    ] {
        assert!(run.stdout.contains(text), "{text}: {run}");
    }
    let run = cli(&service, &["postings", "show", TENANT, &failed, "--json"]).await;
    let entry = run.json();
    assert_eq!(entry["key"], failed.as_str());
    assert_eq!(entry["state"], "failed");

    // retry: reconciled (not there), posted once with the same reference.
    assert_eq!(service.applied_for(&failed), 0);
    let run = cli(&service, &["postings", "retry", TENANT, &failed]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("posted"), "{run}");
    assert!(
        run.stdout.contains("operator"),
        "the operator's attempt: {run}"
    );
    assert_eq!(service.applied_for(&failed), 1);
    assert_eq!(service.entry(&failed).await["state"], "posted");
    // Again: the API refuses (409 wrong_state), exit 1 with its message, nothing posted.
    let run = cli(&service, &["postings", "retry", TENANT, &failed]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("wrong_state") && run.stderr.contains("posted"),
        "{run}"
    );
    assert!(run.stdout.is_empty(), "{run}");
    assert_eq!(service.applied_for(&failed), 1);
    // A posted entry is not resolved either.
    let run = cli(
        &service,
        &["postings", "resolve", TENANT, &posted, "--note", "x"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("409 wrong_state"), "{run}");
    // Unknown entries and tenants: the API's message.
    let run = cli(&service, &["postings", "show", TENANT, "LS1_nope"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("no journal entry for this key"),
        "{run}"
    );
    let run = cli(&service, &["postings", "show", "nobody", "LS1_nope"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("unknown_tenant"), "{run}");

    // The daily report of today's business date: both posted, nothing failed now.
    let date = business_date(&entry);
    let run = cli(
        &service,
        &[
            "report", "daily", "--tenant", TENANT, "--date", &date, "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["date"], date.as_str());
    assert_eq!(report["timeZone"], "UTC");
    let line = |state: &str| {
        report["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["state"] == state)
            .unwrap()
            .clone()
    };
    assert_eq!(line("posted")["count"], 2);
    assert_eq!(line("posted")["total"], "134.0");
    assert_eq!(line("failed")["count"], 0);
    assert_eq!(report["postedTotal"], "134.0");
    let run = cli(
        &service,
        &["report", "daily", "--tenant", TENANT, "--date", &date],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains(&format!("Business date {date}")),
        "{run}"
    );
    assert!(run.stdout.contains("Posted total: 134.0 EUR"), "{run}");
    let run = cli(
        &service,
        &[
            "report", "daily", "--tenant", TENANT, "--date", &date, "--csv",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let csv: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(csv[0], "tenant,date,state,count,total,currency", "{run}");
    assert!(
        csv.contains(&format!("{TENANT},{date},posted,2,134.0,EUR").as_str()),
        "{run}"
    );
    assert!(
        csv.contains(&format!("{TENANT},{date},posted_total,,134.0,EUR").as_str()),
        "{run}"
    );
    assert!(
        csv.contains(&format!("{TENANT},{date},posted_revenue,,0,EUR").as_str()),
        "{run}"
    );
    assert_eq!(
        csv.len(),
        15,
        "a header, 8 states, refunds, tips, posted total, its two parts and the payments: {run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_needs_attention_makes_list_and_report_exit_3_until_resolved() {
    let service = start(settings(|s| {
        s.tenants[0].when_pms_unavailable = WhenPmsUnavailable::Queue;
    }))
    .await;
    // Queued (the PMS down), then refused by the PMS on the worker's turn.
    let key = fresh_key();
    service.pms().push_fault(Fault::Unavailable);
    service
        .pms()
        .push_fault(Fault::Reject("Folio closed".into()));
    assert_eq!(service.charge(&key).await, 200);
    let entry = service.wait_for("needs_attention", &key).await;
    let other = fresh_key();
    assert_eq!(service.charge(&other).await, 200);

    let run = cli(&service, &["postings", "list"]).await;
    assert_eq!(run.code, 3, "{run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains(&key) && l.contains("needs_attention")),
        "{run}"
    );
    assert!(run.stdout.contains("1 in needs_attention"), "{run}");
    assert!(run.stderr.contains("needs a person"), "{run}");
    let run = cli(&service, &["postings", "list", "--json"]).await;
    assert_eq!(run.code, 3, "{run}");
    assert_eq!(keys_of(&run.json()), [other.as_str(), key.as_str()]);
    // What a cron job runs.
    let run = cli(
        &service,
        &["postings", "list", "--state", "needs_attention", "--json"],
    )
    .await;
    assert_eq!(run.code, 3, "{run}");
    assert_eq!(keys_of(&run.json()), [key.as_str()]);
    // Entries listed that do not need attention: exit 0.
    let run = cli(&service, &["postings", "list", "--state", "posted"]).await;
    assert_eq!(run.code, 0, "{run}");

    let run = cli(&service, &["postings", "show", TENANT, &key]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Folio closed"), "{run}");
    assert!(run.stdout.contains("worker"), "the worker's attempt: {run}");

    let date = business_date(&entry);
    let run = cli(
        &service,
        &["report", "daily", "--tenant", TENANT, "--date", &date],
    )
    .await;
    assert_eq!(run.code, 3, "{run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("needs_attention") && l.contains(" 1 ")),
        "{run}"
    );
    let run = cli(
        &service,
        &[
            "report", "daily", "--tenant", TENANT, "--date", &date, "--csv",
        ],
    )
    .await;
    assert_eq!(run.code, 3, "{run}");
    assert!(
        run.stdout
            .contains(&format!("{TENANT},{date},needs_attention,1,67.0,EUR")),
        "{run}"
    );

    // resolve needs a note (usage: exit 2, nothing sent).
    let run = cli(&service, &["postings", "resolve", TENANT, &key]).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--note"), "{run}");
    let run = cli(
        &service,
        &["postings", "resolve", TENANT, &key, "--note", "   "],
    )
    .await;
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(service.entry(&key).await["state"], "needs_attention");
    let run = cli(
        &service,
        &[
            "postings",
            "resolve",
            TENANT,
            &key,
            "--note",
            "Paid by card at the desk",
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let resolved = run.json();
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["note"], "Paid by card at the desk");
    assert_eq!(service.applied_for(&key), 0, "resolving never posts");

    let run = cli(&service, &["postings", "list"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains(&key) && l.contains("resolved")),
        "{run}"
    );
    let run = cli(
        &service,
        &[
            "report", "daily", "--tenant", TENANT, "--date", &date, "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    let count = |state: &str| {
        report["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["state"] == state)
            .unwrap()["count"]
            .clone()
    };
    assert_eq!(count("needs_attention"), 0);
    assert_eq!(count("resolved"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_urls_and_refusals_give_the_documented_exit_codes() {
    let service = start(settings(|_| {})).await;

    // No token: exit 2 naming the variable, nothing sent.
    let run = cli_with(&service.url, None, &["postings", "list"]).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("CHARGEBRIDGE_ADMIN_TOKEN"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    let run = cli_with(
        &service.url,
        Some("  "),
        &[
            "report",
            "daily",
            "--tenant",
            TENANT,
            "--date",
            "2026-12-02",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("CHARGEBRIDGE_ADMIN_TOKEN"), "{run}");

    // A wrong token: the API's refusal, exit 1; neither token printed.
    let run = cli_with(&service.url, Some("wr0ng-token"), &["postings", "list"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("unauthorized"), "{run}");
    let run = cli_with(
        &service.url,
        Some("wr0ng-token"),
        &["postings", "retry", TENANT, "LS1_x"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("unauthorized"), "{run}");

    // Usage errors: exit 2.
    for args in [
        &["postings", "list", "--state", "lost"][..],
        &["postings", "list", "--since", "yesterday"],
        &["postings", "list", "--limit", "0"],
        &["postings", "list", "--all"],
        &[
            "report",
            "daily",
            "--tenant",
            TENANT,
            "--date",
            "02/12/2026",
        ],
        &[
            "report",
            "daily",
            "--tenant",
            TENANT,
            "--date",
            "2026-12-02",
            "--csv",
            "--json",
        ],
        &["postings", "list", "--url", "ftp://127.0.0.1/"],
    ] {
        let run = cli(&service, args).await;
        assert_eq!(run.code, 2, "{args:?}: {run}");
    }
    // The API's own 400: exit 1 with its message.
    let run = cli(
        &service,
        &[
            "report",
            "daily",
            "--tenant",
            "nobody",
            "--date",
            "2026-12-02",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("unknown_tenant"), "{run}");

    // Nobody listening: exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = cli_with(
        &format!("http://127.0.0.1:{port}"),
        Some(TOKEN),
        &["postings", "list"],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("cannot reach"), "{run}");
    // --url wins over CHARGEBRIDGE_URL.
    let run = cli_with(
        &format!("http://127.0.0.1:{port}"),
        Some(TOKEN),
        &["postings", "list", "--url", &service.url],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("No journal entries match."), "{run}");

    // The admin API off (no token configured): its message, exit 1.
    let off = start(settings(|s| s.admin.token = None)).await;
    let run = cli(&off, &["postings", "list"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("admin API is off"), "{run}");

    // --help says what exit status 3 means.
    let run = cli(&service, &["postings", "list", "--help"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("3") && run.stdout.contains("needs_attention"),
        "{run}"
    );
    let run = cli(&service, &["report", "daily", "--help"]).await;
    assert!(
        run.stdout
            .contains("3 the business date has entries in needs_attention"),
        "{run}"
    );
}
