//! The admin console (`/admin/`) in a real headless Chromium, driven over the
//! WebDriver protocol with plain JSON calls to chromedriver: an operator loads
//! the entries, sees the one that needs a person first, resolves it with a
//! note, retries a failed one, and reads the daily report. Screenshots at phone
//! and desktop width land in `target/console-screenshots/`.
//!
//! Without `chromium` and `chromedriver` the browser test is skipped with a
//! note, unless `CI` is set: then it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chargebridge::config::{Settings, StoreKind, WhenPmsUnavailable};
use chargebridge::pms::PmsSettings;
use chargebridge::pms::memory::{Fault, MemoryPmsSettings};
use chargebridge::startup::{AppState, Application};
use secrecy::SecretString;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";
const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");
const CONSOLE: &str = include_str!("../src/admin/console.html");
/// A second location in fail mode, on its own memory PMS.
const ANNEX: &str = "annex";
const ANNEX_KEY: &str = "annex-key-678";
/// A receipt id that would run script if the page ever rendered it as HTML.
const HOSTILE_RECEIPT: &str = "<img src=x onerror=\"window.__pwned=1\">R2";

struct App {
    address: String,
    state: Arc<AppState>,
    handle: actix_web::dev::ServerHandle,
    client: reqwest::Client,
}

fn settings(admin: bool) -> Settings {
    let mut s = Settings::demo();
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = Some(2);
    s.log.level = "warn".into();
    s.idempotency.store = StoreKind::Memory;
    s.journal.poll_interval = Duration::from_millis(100);
    if admin {
        s.admin.token = Some(SecretString::from(TOKEN));
    }
    // The demo tenant queues while its PMS is down; the annex fails instead.
    s.tenants[0].when_pms_unavailable = WhenPmsUnavailable::Queue;
    s.tenants[0].time_zone = "UTC".into();
    s.tenants[0].business_day_starts = "04:00".into();
    let mut annex = s.tenants[0].clone();
    annex.id = Some(ANNEX.into());
    annex.api_key = Some(SecretString::from(ANNEX_KEY));
    annex.pms = ANNEX.into();
    annex.when_pms_unavailable = WhenPmsUnavailable::Fail;
    s.tenants.push(annex);
    s.pms.insert(
        ANNEX.into(),
        PmsSettings::Memory(MemoryPmsSettings::default()),
    );
    s
}

async fn spawn(settings: Settings) -> App {
    let app = Application::build(settings).expect("app builds");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    App {
        address: format!("http://127.0.0.1:{port}"),
        state,
        handle,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

impl App {
    async fn charge(&self, body: &str) -> (String, u16) {
        let key = format!("LS1_{}", uuid::Uuid::new_v4());
        let status = self
            .client
            .post(format!("{}/lightspeed/charge", self.address))
            .header("content-type", "application/json")
            .header("x-lightspeed-idempotency-key", &key)
            .body(body.to_string())
            .send()
            .await
            .expect("charge answered")
            .status()
            .as_u16();
        (key, status)
    }

    async fn admin_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answered");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the entry `key` is listed in `state`.
    async fn wait_listed(&self, state: &str, key: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, list) = self
                .admin_get(&format!("/admin/v1/postings?state={state}"))
                .await;
            let listed = list["entries"]
                .as_array()
                .is_some_and(|es| es.iter().any(|e| e["key"] == key));
            if listed {
                return;
            }
            assert!(
                Instant::now() < until,
                "{key} never listed as {state}: {list}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_without_a_token_and_loads_nothing_from_outside() {
    let off = spawn(settings(false)).await;
    let response = off
        .client
        .get(format!("{}/admin/", off.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    off.handle.stop(true).await;

    let on = spawn(settings(true)).await;
    let response = on
        .client
        .get(format!("{}/admin/", on.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "the page itself needs no token"
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(response.text().await.unwrap(), CONSOLE);
    on.handle.stop(true).await;

    // Everything is inline: no absolute URLs at all, no external src/href,
    // no CSS imports or url() fetches.
    let lower = CONSOLE.to_ascii_lowercase();
    for absolute in ["http://", "https://"] {
        assert!(!lower.contains(absolute), "the page names {absolute}");
    }
    for attr in ["src=", "href="] {
        for (at, _) in lower.match_indices(attr) {
            let value = lower[at + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                !value.starts_with("//") && !value.starts_with("http"),
                "external asset at byte {at}: {}",
                &CONSOLE[at..(at + 60).min(CONSOLE.len())]
            );
        }
    }
    let style = &lower[lower.find("<style>").unwrap()..lower.find("</style>").unwrap()];
    assert!(
        !style.contains("@import") && !style.contains("url("),
        "CSS fetches nothing"
    );
    assert!(!lower.contains("<link"), "no linked stylesheets or icons");
    // Data goes into the DOM as text: no innerHTML/outerHTML/insertAdjacentHTML.
    for sink in [
        "innerhtml",
        "outerhtml",
        "insertadjacenthtml",
        "document.write",
    ] {
        assert!(!lower.contains(sink), "the page uses {sink}");
    }
}

// ---------------------------------------------------------------- browser --

fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Ends chromedriver (which was started by this test) when the test ends.
struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session, over plain HTTP/JSON.
struct Browser {
    http: reqwest::Client,
    session: String,
}

type Step<T> = Result<T, String>;

impl Browser {
    async fn start(driver: &str, chromium: &Path, downloads: &Path) -> Step<Browser> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,900", "--lang=en-US",
                         "--no-first-run", "--no-default-browser-check"],
                "prefs": {
                    "download.default_directory": downloads.to_string_lossy(),
                    "download.prompt_for_download": false
                }
            }
        }}});
        let response = http
            .post(format!("{driver}/session"))
            .json(&capabilities)
            .send()
            .await
            .map_err(|e| format!("new session: {e}"))?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        let session = body["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {body}"))?
            .to_string();
        Ok(Browser {
            http,
            session: format!("{driver}/session/{session}"),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Step<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            request = request.json(&b);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {status}: {}",
                body["value"]["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(body["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Step<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn goto(&self, url: &str) -> Step<()> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    async fn find(&self, css: &str) -> Step<String> {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await
            .map_err(|e| format!("find {css}: {e}"))?;
        found[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("find {css}: {found}"))
    }

    async fn click(&self, css: &str) -> Step<()> {
        let id = self.find(css).await?;
        self.post(&format!("/element/{id}/click"), json!({}))
            .await
            .map(drop)
            .map_err(|e| format!("click {css}: {e}"))
    }

    async fn type_into(&self, css: &str, text: &str) -> Step<()> {
        let id = self.find(css).await?;
        self.post(&format!("/element/{id}/clear"), json!({}))
            .await?;
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await
            .map(drop)
    }

    async fn script(&self, body: &str, args: Value) -> Step<Value> {
        self.post("/execute/sync", json!({"script": body, "args": args}))
            .await
    }

    /// Runs `body` (a function body that returns a value) until it returns
    /// something other than null/false, for at most 10 s.
    async fn wait(&self, what: &str, body: &str, args: Value) -> Step<Value> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.script(body, args.clone()).await?;
            if !v.is_null() && v != Value::Bool(false) {
                return Ok(v);
            }
            if Instant::now() > until {
                let page = self
                    .script("return document.body.innerText", json!([]))
                    .await
                    .unwrap_or_default();
                return Err(format!(
                    "timed out waiting for {what}; the page says:\n{page}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cdp(&self, cmd: &str, params: Value) -> Step<Value> {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }

    /// An exact CSS viewport (a phone one with touch and mobile layout).
    async fn viewport(&self, width: u32, height: u32, mobile: bool) -> Step<()> {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await?;
        self.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": mobile}),
        )
        .await
        .map(drop)
    }

    /// A PNG of the viewport (or the whole page).
    async fn screenshot(&self, path: &Path, full_page: bool) -> Step<()> {
        let shot = if full_page {
            self.cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await?["data"]
                .clone()
        } else {
            self.call(reqwest::Method::GET, "/screenshot", None).await?
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().ok_or("no screenshot data")?)
            .map_err(|e| e.to_string())?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("screenshot: {}", path.display());
        Ok(())
    }

    async fn quit(&self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// What the browser run needs to know about the seeded entries.
struct Seeded {
    needs_attention: String,
    failed: String,
    posted: String,
}

async fn seed(app: &App) -> Seeded {
    let demo = app.state.pms.memory("demo").expect("demo memory PMS");
    // Queued while the PMS is down, refused by the worker: needs a person.
    demo.push_fault(Fault::Unavailable);
    demo.push_fault(Fault::Reject("Folio closed".into()));
    let (needs_attention, status) = app.charge(SEED).await;
    assert_eq!(status, 200, "queued");
    app.wait_listed("needs_attention", &needs_attention).await;
    // Posted.
    let posted_body = SEED.replace("R51.3", "R51.4");
    let (posted, status) = app.charge(&posted_body).await;
    assert_eq!(status, 200);
    app.wait_listed("posted", &posted).await;
    // Failed at the annex (fail mode, PMS down), with a receipt id that is HTML.
    app.state
        .pms
        .memory(ANNEX)
        .expect("annex memory PMS")
        .push_fault(Fault::Unavailable);
    let mut body: Value = serde_json::from_str(SEED).unwrap();
    body["apiKey"] = json!(ANNEX_KEY);
    body["receiptId"] = json!(HOSTILE_RECEIPT);
    let (failed, status) = app.charge(&body.to_string()).await;
    assert_eq!(status, 500, "failed");
    app.wait_listed("failed", &failed).await;
    Seeded {
        needs_attention,
        failed,
        posted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_resolves_and_retries_in_a_real_browser() {
    let chromium = find_binary(
        "CHROME_BIN",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find_binary("CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        let why = "chromium and chromedriver are needed for the console browser test \
                   (apt-get install -y chromium chromium-driver)";
        if std::env::var_os("CI").is_some() {
            panic!("CI is set and {why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    };

    let app = spawn(settings(true)).await;
    let seeded = seed(&app).await;

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let downloads = out.join("downloads");
    // No artefacts of an earlier run: a stale CSV would pass for this one's.
    let _ = std::fs::remove_dir_all(&downloads);
    let _ = std::fs::remove_file(out.join("failure.png"));
    std::fs::create_dir_all(&downloads).unwrap();
    let log = std::fs::File::create(out.join("chromedriver.log")).unwrap();
    let port = free_port();
    let driver = DriverProcess(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", chromedriver.display())),
    );
    let driver_url = format!("http://127.0.0.1:{port}");
    let ready = Instant::now() + Duration::from_secs(15);
    loop {
        let status = reqwest::get(format!("{driver_url}/status")).await;
        if let Ok(r) = status
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            break;
        }
        assert!(Instant::now() < ready, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let browser = Browser::start(&driver_url, &chromium, &downloads)
        .await
        .unwrap_or_else(|e| panic!("chromium did not start: {e}"));
    let outcome = scenario(&browser, &app, &seeded, &out, &downloads).await;
    if outcome.is_err() {
        let _ = browser.screenshot(&out.join("failure.png"), true).await;
    }
    browser.quit().await;
    drop(driver);
    app.handle.stop(true).await;
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

async fn scenario(b: &Browser, app: &App, s: &Seeded, out: &Path, downloads: &Path) -> Step<()> {
    b.viewport(390, 844, true).await?;
    b.goto(&format!("{}/admin/", app.address)).await?;
    b.type_into("#token", TOKEN).await?;
    b.click("#load").await?;
    let keys = b
        .wait(
            "three entries listed",
            "var rows = document.querySelectorAll('#entries-body tr.entry');
             return rows.length >= 3 ? Array.from(rows).map(r => [r.dataset.state, r.dataset.key]) : null;",
            json!([]),
        )
        .await?;
    ensure!(
        keys == json!([
            ["needs_attention", s.needs_attention],
            ["failed", s.failed],
            ["posted", s.posted]
        ]),
        "needs a person first, then failed, then the rest: {keys}"
    );
    // The token stays out of the URL and in this tab's sessionStorage.
    let kept = b
        .script(
            "return [location.href, sessionStorage.getItem('chargebridge.admin.token')]",
            json!([]),
        )
        .await?;
    ensure!(
        !kept[0].as_str().unwrap_or_default().contains(TOKEN) && kept[1] == TOKEN,
        "token placement: {kept}"
    );
    // The hostile receipt id is shown as text, never run.
    let hostile = b
        .script(
            "var row = document.querySelector('[data-key=\"' + arguments[0] + '\"]');
             return [row.querySelectorAll('img').length, row.textContent.includes(arguments[1]), !!window.__pwned];",
            json!([s.failed, HOSTILE_RECEIPT]),
        )
        .await?;
    ensure!(hostile == json!([0, true, false]), "escaping: {hostile}");
    // Tenants seen fill the tenant suggestions.
    let tenants = b
        .script(
            "return Array.from(document.querySelectorAll('#tenant-list option')).map(o => o.value)",
            json!([]),
        )
        .await?;
    ensure!(tenants == json!([ANNEX, "demo"]), "tenant list: {tenants}");
    let overflow = b
        .script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            json!([]),
        )
        .await?;
    ensure!(
        overflow.as_i64() == Some(0),
        "no sideways scrolling at 390 px: {overflow} px too wide"
    );
    b.screenshot(&out.join("phone-390x844.png"), false).await?;
    b.screenshot(&out.join("phone-390-full.png"), true).await?;

    // Open the entry that needs a person: postings, attempts, both buttons.
    let row = format!("[data-key=\"{}\"]", s.needs_attention);
    b.click(&row).await?;
    let attempts = b
        .wait(
            "the details",
            "var d = document.getElementById('details');
             if (d.hidden || d.dataset.key !== arguments[0]) return null;
             return Array.from(document.querySelectorAll('#attempts-body tr')).map(r => r.dataset.outcome);",
            json!([s.needs_attention]),
        )
        .await?;
    ensure!(
        attempts.as_array().is_some_and(|a| a.len() >= 2
            && a[0] == "unavailable"
            && a.iter().any(|o| o == "rejected")),
        "attempts: {attempts}"
    );
    let details = b
        .script(
            "return [document.getElementById('detail-state').dataset.state,
                     !document.getElementById('retry-box').hidden,
                     !document.getElementById('resolve-box').hidden,
                     document.getElementById('attempts-body').textContent.includes('Folio closed'),
                     document.getElementById('postings-body').textContent.includes('001')]",
            json!([]),
        )
        .await?;
    ensure!(
        details == json!(["needs_attention", true, true, true, true]),
        "details: {details}"
    );
    b.screenshot(&out.join("phone-390x844-details.png"), false)
        .await?;
    // A note is required.
    b.click("#resolve").await?;
    b.wait(
        "the note-required message",
        "var m = document.getElementById('action-msg');
         return m.classList.contains('error') && m.textContent.includes('note');",
        json!([]),
    )
    .await?;

    // Desktop: list and details side by side, and the daily report.
    b.viewport(1280, 900, false).await?;
    b.script("window.scrollTo(0, 0)", json!([])).await?;
    let fits = b
        .script(
            "var t = document.getElementById('entries');
             return [document.documentElement.scrollWidth - document.documentElement.clientWidth,
                     t.scrollWidth - t.parentElement.clientWidth];",
            json!([]),
        )
        .await?;
    ensure!(
        fits == json!([0, 0]),
        "the page and the entries table fit 1280 px: {fits}"
    );
    b.type_into("#report-tenant", "demo").await?;
    // Today's business date (UTC, 04:00 cut-off); a date input takes its value by script.
    let date = (chrono::Utc::now() - chrono::Duration::hours(4))
        .date_naive()
        .to_string();
    b.script(
        "document.getElementById('report-date').value = arguments[0]",
        json!([date]),
    )
    .await?;
    b.click("#report-load").await?;
    let report = b
        .wait(
            "the daily report",
            "var p = document.getElementById('report-posted');
             return p ? [p.textContent, document.querySelectorAll('#report-body tr').length,
                         document.querySelector('#report-body tr[data-state=\"needs_attention\"] td.num').textContent] : null;",
            json!([]),
        )
        .await?;
    ensure!(
        report == json!(["67.0 EUR", 8, "1"]),
        "report (posted total, states, needs_attention count): {report}"
    );
    b.cdp(
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "downloadPath": downloads.to_string_lossy(), "eventsEnabled": false}),
    )
    .await?;
    b.click("#report-csv").await?;
    let message = b
        .wait(
            "the CSV download",
            "var m = document.getElementById('report-msg').textContent;
             return m.startsWith('Downloaded') ? m : null;",
            json!([]),
        )
        .await?;
    let name = message
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("Downloaded ")
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    ensure!(
        name.starts_with("chargebridge-demo-") && name.ends_with(".csv"),
        "{message}"
    );
    let saved = downloads.join(&name);
    let until = Instant::now() + Duration::from_secs(10);
    let csv = loop {
        if let Ok(text) = std::fs::read_to_string(&saved)
            && !text.is_empty()
        {
            break text;
        }
        ensure!(Instant::now() < until, "{} never saved", saved.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        csv.starts_with("tenant,date,state,count,total,currency\n")
            && csv.contains(",needs_attention,1,67.0,EUR"),
        "CSV: {csv}"
    );
    b.screenshot(&out.join("desktop-1280x900.png"), false)
        .await?;

    // Resolve with a note: the page shows it resolved, and so does the API.
    let note = "Paid by card at the desk <b>ok</b>";
    b.type_into("#resolve-note", note).await?;
    b.click("#resolve").await?;
    b.wait(
        "the entry resolved in the page",
        "var row = document.querySelector('[data-key=\"' + arguments[0] + '\"]');
         return document.getElementById('detail-state').dataset.state === 'resolved'
             && row && row.dataset.state === 'resolved'
             && document.getElementById('action-msg').textContent.includes('Resolved')
             && document.getElementById('detail-facts').textContent.includes(arguments[1]);",
        json!([s.needs_attention, note]),
    )
    .await?;
    b.wait(
        "the report on show updated",
        "var n = function (s) { return document.querySelector('#report-body tr[data-state=\"' + s + '\"] td.num').textContent; };
         return n('needs_attention') === '0' && n('resolved') === '1';",
        json!([]),
    )
    .await?;
    let (status, entry) = app
        .admin_get(&format!("/admin/v1/postings/demo/{}", s.needs_attention))
        .await;
    ensure!(
        status == 200 && entry["state"] == "resolved" && entry["note"] == note,
        "the API after Resolve: {status} {entry}"
    );
    let first = b
        .script(
            "return document.querySelector('#entries-body tr.entry').dataset.key",
            json!([]),
        )
        .await?;
    ensure!(
        first == json!(s.failed),
        "the failed entry now leads: {first}"
    );

    // Retry the failed one (the annex PMS is back): posted, in the page and the API.
    b.click(&format!("[data-key=\"{}\"]", s.failed)).await?;
    b.wait(
        "the failed entry's details",
        "var d = document.getElementById('details');
         return d.dataset.key === arguments[0] && d.dataset.state === 'failed'
             && !document.getElementById('retry-box').hidden;",
        json!([s.failed]),
    )
    .await?;
    b.click("#retry").await?;
    b.wait(
        "the retried entry posted",
        "return document.getElementById('details').dataset.state === 'posted'
             && document.querySelector('[data-key=\"' + arguments[0] + '\"]').dataset.state === 'posted'
             && document.getElementById('retry-box').hidden;",
        json!([s.failed]),
    )
    .await?;
    let (_, entry) = app
        .admin_get(&format!("/admin/v1/postings/{ANNEX}/{}", s.failed))
        .await;
    ensure!(entry["state"] == "posted", "the API after Retry: {entry}");
    b.screenshot(&out.join("desktop-1280x900-after.png"), false)
        .await?;

    // An action the API refuses is shown as it is: a wrong token.
    b.type_into("#token", "wrong-token").await?;
    b.click("#load").await?;
    b.wait(
        "the refusal",
        "var e = document.getElementById('error').textContent;
         return e.includes('401') && e.includes('unauthorized');",
        json!([]),
    )
    .await?;
    Ok(())
}
