//! `chargebridge postings …` and `chargebridge report daily`: the operator API
//! (`/admin/v1`, see `schemas/admin.openapi.yaml`) from a shell or a cron job.
//!
//! Results go to stdout: tables for people, the API's own JSON with `--json`,
//! the API's CSV with `report daily --csv`. Notes and errors go to stderr. The
//! admin token is read from `CHARGEBRIDGE_ADMIN_TOKEN` and never printed.
//!
//! Exit codes: 0 done; 3 `postings list` or `report daily` found entries in
//! `needs_attention` (a person must act; `postings retry` when the entry ends
//! there); 1 the API refused (its message is printed) or could not be reached;
//! 2 a usage or configuration error (nothing was sent).

use crate::text_table::{one_line, table};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Where the admin token is read from.
pub const TOKEN_ENV: &str = "CHARGEBRIDGE_ADMIN_TOKEN";
/// The service called unless `--url` (or `CHARGEBRIDGE_URL`) names another.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Exit code: a listed entry (or a counted one) is in `needs_attention`.
const NEEDS_ATTENTION: u8 = 3;
/// The journal states, in the API's order.
const STATES: [&str; 8] = [
    "posted",
    "acknowledged",
    "rejected",
    "queued",
    "unknown",
    "failed",
    "needs_attention",
    "resolved",
];
/// Longest attempt message shown in a list (the whole one is in `show`).
const MAX_MESSAGE_CHARS: usize = 60;
/// Most pages `--all` follows (500 entries each at most).
const MAX_PAGES: usize = 10_000;

const EXIT_CODES: &str = "\
Exit status: 0 done; 3 `postings list` or `report daily` found entries in \
needs_attention (a person must act), or `postings retry` left the entry there; \
1 the API refused (its message is printed), could not be reached, or a retry did \
not post; 2 a usage or configuration error (e.g. CHARGEBRIDGE_ADMIN_TOKEN unset), \
nothing was sent.

The admin token is read from the environment variable CHARGEBRIDGE_ADMIN_TOKEN \
(the service's [admin] token) and never printed.";

const LIST_EXIT_CODES: &str = "\
Exit status: 0 listed (none of the entries listed is in needs_attention); 3 at \
least one entry listed is in needs_attention (a person must act: for a cron job, \
`chargebridge postings list --state needs_attention`); 1 the API refused or \
could not be reached; 2 a usage or configuration error.";

const DAILY_EXIT_CODES: &str = "\
Exit status: 0 reported, nothing in needs_attention; 3 the business date has \
entries in needs_attention (a person must act before the night audit closes); \
1 the API refused or could not be reached; 2 a usage or configuration error.";

// Options of every `postings` and `report` command (accepted before or after it).
#[derive(Args, Debug)]
pub struct ClientOptions {
    /// The chargebridge to call (its base URL).
    #[arg(
        long,
        value_name = "URL",
        env = "CHARGEBRIDGE_URL",
        default_value = DEFAULT_URL,
        global = true
    )]
    pub url: String,
    /// The API's JSON on stdout, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bound of each request.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct PostingsArgs {
    #[command(flatten)]
    pub options: ClientOptions,
    #[command(subcommand)]
    pub command: PostingsCommand,
}

#[derive(Subcommand, Debug)]
pub enum PostingsCommand {
    /// Journal entries, newest first; exit status 3 when one of them needs attention.
    #[command(after_help = LIST_EXIT_CODES)]
    List(ListArgs),
    /// One entry: what was charged, its postings and every attempt.
    Show(EntryRef),
    /// Reconcile with the PMS, then post now with the same reference.
    ///
    /// For an entry that is failed, queued, unknown or needs_attention. Exit status
    /// 0 when it is posted, 3 when it needs attention, 1 when it is still not posted.
    Retry(EntryRef),
    /// Close an entry handled outside chargebridge, with a note. Never posts.
    Resolve(ResolveArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this tenant's entries [default: every tenant's].
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// Only entries in this state.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STATES))]
    pub state: Option<String>,
    /// Created at or after (RFC 3339, or YYYY-MM-DD for UTC midnight).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
    /// Created before (RFC 3339, or YYYY-MM-DD for UTC midnight).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<String>,
    /// Entries per page (1 to 500) [default: the API's, 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=500))]
    pub limit: Option<u16>,
    /// Every page, following nextCursor (pages exist within one tenant: needs --tenant).
    #[arg(long, requires = "tenant")]
    pub all: bool,
    /// Start after this position (a previous page's nextCursor; needs --tenant).
    #[arg(
        long,
        value_name = "CURSOR",
        requires = "tenant",
        conflicts_with = "all"
    )]
    pub cursor: Option<String>,
}

#[derive(Args, Debug)]
pub struct EntryRef {
    /// The tenant's id.
    pub tenant: String,
    /// The charge's idempotency key (LS1_…).
    pub key: String,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub entry: EntryRef,
    /// What was done (kept with the entry and logged), e.g. "paid by card at the desk".
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct ReportArgs {
    #[command(flatten)]
    pub options: ClientOptions,
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// One business date (the night audit): count and total per state, refunds, tips
    /// and the posted total; exit status 3 when entries need attention.
    #[command(after_help = DAILY_EXIT_CODES)]
    Daily(DailyArgs),
}

#[derive(Args, Debug)]
pub struct DailyArgs {
    /// The tenant's id.
    #[arg(long, value_name = "ID")]
    pub tenant: String,
    /// The business date (in the tenant's time_zone, from business_day_starts).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: chrono::NaiveDate,
    /// The API's CSV straight to stdout (for the night audit's spreadsheet).
    #[arg(long)]
    pub csv: bool,
}

fn parse_time(text: &str) -> Result<String, String> {
    let text = text.trim();
    let ok = chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
    if ok {
        Ok(text.to_string())
    } else {
        Err("expected RFC 3339 (2026-12-02T21:00:00Z) or a date (2026-12-02)".into())
    }
}

fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| "expected a date as YYYY-MM-DD".to_string())
}

/// Why a command stopped.
#[derive(Debug)]
enum Failure {
    /// Nothing was sent: arguments or configuration (exit 2).
    Usage(String),
    /// The API answered with a refusal, could not be reached, or answered
    /// something this command cannot read (exit 1).
    Api(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Api(_) => 1,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Api(m) => m,
        }
    }
}

/// How a command that ran came out.
#[derive(Debug, PartialEq, Eq)]
enum Done {
    Ok,
    NeedsAttention,
    /// Ran, but did not get what it was for (a retry that did not post).
    NotPosted,
}

/// Where output goes: stdout for the result, stderr for notes; the token is
/// replaced wherever it would appear.
struct Output {
    json: bool,
    token: Option<SecretString>,
}

impl Output {
    fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(t) if t.expose_secret().len() >= 4 => {
                text.replace(t.expose_secret(), "[redacted]")
            }
            _ => text.to_string(),
        }
    }

    fn result(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(self.scrub(text).as_bytes());
        let _ = stdout.flush();
    }

    fn json(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        self.result(&format!("{text}\n"));
    }

    fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{}", self.scrub(text));
    }
}

/// Runs one `postings` command to its exit code.
pub fn run_postings(args: PostingsArgs) -> ExitCode {
    let PostingsArgs { options, command } = args;
    run_with(&options, |api, out| async move {
        match command {
            PostingsCommand::List(list_args) => list(&api, &out, list_args).await,
            PostingsCommand::Show(entry) => show(&api, &out, entry).await,
            PostingsCommand::Retry(entry) => retry(&api, &out, entry).await,
            PostingsCommand::Resolve(resolve_args) => resolve(&api, &out, resolve_args).await,
        }
    })
}

/// Runs one `report` command to its exit code.
pub fn run_report(args: ReportArgs) -> ExitCode {
    let ReportArgs { options, command } = args;
    if let ReportCommand::Daily(daily) = &command
        && daily.csv
        && options.json
    {
        eprintln!("chargebridge: --csv and --json exclude each other");
        return ExitCode::from(2);
    }
    run_with(&options, |api, out| async move {
        match command {
            ReportCommand::Daily(daily_args) => daily(&api, &out, daily_args).await,
        }
    })
}

fn run_with<F, Fut>(options: &ClientOptions, body: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<Api>, std::sync::Arc<Output>) -> Fut,
    Fut: std::future::Future<Output = Result<Done, Failure>>,
{
    let mut out = Output {
        json: options.json,
        token: None,
    };
    let result = (|| {
        let token = admin_token()?;
        out.token = Some(token.clone());
        let base = base_url(&options.url, &out)?;
        let api = Api::new(base, token, options.timeout)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Api(format!("cannot start the async runtime: {e}")))?;
        let out = std::sync::Arc::new(Output {
            json: out.json,
            token: out.token.clone(),
        });
        runtime.block_on(body(std::sync::Arc::new(api), out))
    })();
    match result {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::NeedsAttention) => ExitCode::from(NEEDS_ATTENTION),
        Ok(Done::NotPosted) => ExitCode::from(1),
        Err(failure) => {
            out.note(&format!("chargebridge: {}", failure.message()));
            ExitCode::from(failure.code())
        }
    }
}

fn admin_token() -> Result<SecretString, Failure> {
    let missing = |why: &str| {
        Failure::Usage(format!(
            "the environment variable {TOKEN_ENV} {why}: set it to the service's admin token \
             ([admin] token, token_env or token_file of its configuration)"
        ))
    };
    match std::env::var(TOKEN_ENV) {
        Ok(value) if value.trim().is_empty() => Err(missing("is empty")),
        Ok(value) => Ok(SecretString::from(value.trim().to_string())),
        Err(std::env::VarError::NotPresent) => Err(missing("is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(missing("is not valid text")),
    }
}

/// `--url`, checked: http(s), no query; a warning for plain http off loopback
/// (the token would travel unencrypted).
fn base_url(raw: &str, out: &Output) -> Result<Url, Failure> {
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|e| Failure::Usage(format!("--url `{raw}`: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Failure::Usage(
            "--url must not carry credentials: the token comes from CHARGEBRIDGE_ADMIN_TOKEN"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Failure::Usage(format!(
            "--url `{url}`: the service's base URL, without a query"
        )));
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = crate::cli::is_loopback_host(host);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => out.note(&format!(
            "warning: --url `{url}` is plain http: the admin token travels unencrypted \
             (use https, or a port-forward to loopback)"
        )),
        other => {
            return Err(Failure::Usage(format!(
                "--url must be an http or https URL, not {other}:"
            )));
        }
    }
    Ok(url)
}

/// The admin API of one chargebridge.
struct Api {
    client: reqwest::Client,
    base: Url,
    token: SecretString,
}

/// An answer: status and body.
struct Answer {
    status: u16,
    bytes: Vec<u8>,
}

impl Api {
    fn new(base: Url, token: SecretString, timeout: Duration) -> Result<Api, Failure> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chargebridge-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Api(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            client,
            base,
            token,
        })
    }

    /// The base URL with these path segments (each percent-encoded) and query.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for s in ["admin", "v1"].iter().chain(segments) {
                path.push(s);
            }
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> Result<Answer, Failure> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(url, &e))?
            .to_vec();
        let answer = Answer { status, bytes };
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            Err(Failure::Api(refusal(&answer)))
        }
    }

    async fn get(&self, url: Url, accept: &str) -> Result<Answer, Failure> {
        self.send(self.client.get(url.clone()).header(ACCEPT, accept), &url)
            .await
    }

    async fn get_json(&self, url: Url) -> Result<Value, Failure> {
        let answer = self.get(url, "application/json").await?;
        parse_json(&answer)
    }

    async fn post_json(&self, url: Url, body: &Value) -> Result<Value, Failure> {
        let request = self
            .client
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = self.send(request, &url).await?;
        parse_json(&answer)
    }
}

fn unreachable(url: &Url, e: &reqwest::Error) -> Failure {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    let mut base = url.clone();
    base.set_query(None);
    base.set_path("");
    let what = if e.is_timeout() {
        "no answer in time from"
    } else {
        "cannot reach"
    };
    Failure::Api(format!(
        "{what} {} ({text}); is chargebridge running there? (--url, CHARGEBRIDGE_URL)",
        base.as_str().trim_end_matches('/')
    ))
}

fn parse_json(answer: &Answer) -> Result<Value, Failure> {
    serde_json::from_slice(&answer.bytes).map_err(|_| {
        Failure::Api(format!(
            "the answer ({}) is not JSON: {}",
            answer.status,
            excerpt(&answer.bytes)
        ))
    })
}

/// What to tell the operator about a non-2xx answer.
fn refusal(answer: &Answer) -> String {
    let status = answer.status;
    let body: Option<Value> = serde_json::from_slice(&answer.bytes).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(one_line)
    };
    if status == 401 {
        return format!(
            "the API refused ({status} unauthorized): the admin token in {TOKEN_ENV} is not the \
             service's"
        );
    }
    match (field("error"), field("message")) {
        (Some(code), Some(message)) => {
            format!("the API refused ({status} {code}): {message}")
        }
        (Some(code), None) => format!("the API refused ({status} {code})"),
        _ => match (
            field("code"),
            field("detail").or(field("customerErrorMessage")),
        ) {
            (Some(code), Some(detail)) => format!("the API refused ({status} {code}): {detail}"),
            _ if answer.bytes.is_empty() => format!("the API answered {status}"),
            _ => format!("the API answered {status}: {}", excerpt(&answer.bytes)),
        },
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = one_line(&String::from_utf8_lossy(bytes));
    truncate(&text, 200)
}

/// One printable line: control characters (a PMS's message may hold line breaks
/// or terminal escapes) become spaces.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        one_line(text)
    }
}

/// `2026-12-02T21:14:03.120Z` as `2026-12-02 21:14:03Z`.
fn short_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| or_dash(text))
}

fn time_of_ms(v: Option<&Value>) -> String {
    v.and_then(Value::as_i64)
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

fn entries_of(page: &Value) -> Result<&Vec<Value>, Failure> {
    page.get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::Api("the answer has no entries list".into()))
}

async fn list(api: &Api, out: &Output, args: ListArgs) -> Result<Done, Failure> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(t) = &args.tenant {
        query.push(("tenant", t.clone()));
    }
    if let Some(s) = &args.state {
        query.push(("state", s.clone()));
    }
    if let Some(s) = &args.since {
        query.push(("since", s.clone()));
    }
    if let Some(u) = &args.until {
        query.push(("until", u.clone()));
    }
    if let Some(l) = args.limit {
        query.push(("limit", l.to_string()));
    }
    let mut entries: Vec<Value> = Vec::new();
    let mut cursor = args.cursor.clone();
    let mut seen_cursors = std::collections::HashSet::new();
    let mut next_cursor: Option<String>;
    let mut pages = 0;
    loop {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page = api.get_json(api.url(&["postings"], &q)).await?;
        entries.extend(entries_of(&page)?.iter().cloned());
        next_cursor = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        pages += 1;
        match &next_cursor {
            Some(c) if args.all && pages < MAX_PAGES && seen_cursors.insert(c.clone()) => {
                cursor = Some(c.clone());
            }
            _ => break,
        }
    }
    if args.all {
        next_cursor = None;
    }
    let attention = entries
        .iter()
        .filter(|e| str_of(e, "state") == "needs_attention")
        .count();
    if out.json {
        out.json(&json!({"entries": entries, "nextCursor": next_cursor}));
    } else if entries.is_empty() {
        out.result("No journal entries match.\n");
    } else {
        let rows: Vec<Vec<String>> = entries.iter().map(list_row).collect();
        out.result(&table(
            &[
                "TENANT",
                "KEY",
                "STATE",
                "CREATED",
                "AMOUNT",
                "RESERVATIONS",
                "ATTEMPTS",
                "LAST",
            ],
            &rows,
        ));
        let mut footer = format!(
            "{} entr{}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" }
        );
        if attention > 0 {
            let _ = write!(footer, ", {attention} in needs_attention");
        }
        out.result(&format!("{footer}\n"));
    }
    if let Some(c) = &next_cursor
        && !out.json
    {
        out.note(&format!(
            "more entries: pass --all, or --cursor {c} for the next page"
        ));
    }
    if args.tenant.is_none() && args.limit.map_or(50, usize::from) == entries.len() && !out.json {
        out.note(
            "the page is full: there may be more entries (pass --tenant ID --all to list them all)",
        );
    }
    if attention > 0 {
        out.note(&format!(
            "{attention} entr{} need{} a person: chargebridge postings show TENANT KEY, then retry \
             or resolve (docs/operations.md)",
            if attention == 1 { "y" } else { "ies" },
            if attention == 1 { "s" } else { "" }
        ));
        Ok(Done::NeedsAttention)
    } else {
        Ok(Done::Ok)
    }
}

fn list_row(e: &Value) -> Vec<String> {
    let reservations = e
        .get("reservations")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let last = match (str_of(e, "lastOutcome"), str_of(e, "lastMessage")) {
        ("", _) => "-".to_string(),
        (outcome, "") => outcome.to_string(),
        (outcome, message) => format!("{outcome}: {message}"),
    };
    let mut amount = format!("{} {}", str_of(e, "amount"), str_of(e, "currency"));
    if e.get("refund").and_then(Value::as_bool) == Some(true) {
        amount.push_str(" (refund)");
    }
    vec![
        str_of(e, "tenant").to_string(),
        str_of(e, "key").to_string(),
        str_of(e, "state").to_string(),
        short_time(str_of(e, "createdAt")),
        amount,
        or_dash(&reservations),
        e.get("attempts")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .to_string(),
        truncate(&one_line(&last), MAX_MESSAGE_CHARS),
    ]
}

fn entry_url(api: &Api, entry: &EntryRef, action: Option<&str>) -> Url {
    let mut segments = vec!["postings", entry.tenant.as_str(), entry.key.as_str()];
    segments.extend(action);
    api.url(&segments, &[])
}

async fn show(api: &Api, out: &Output, entry: EntryRef) -> Result<Done, Failure> {
    let value = api.get_json(entry_url(api, &entry, None)).await?;
    if out.json {
        out.json(&value);
    } else {
        out.result(&entry_text(&value));
    }
    Ok(Done::Ok)
}

/// An entry for people: its fields, then its postings and attempts as tables.
fn entry_text(e: &Value) -> String {
    let charge = e.get("charge").cloned().unwrap_or(Value::Null);
    let receipt = charge.get("receipt").cloned().unwrap_or(Value::Null);
    let postings = e
        .get("postings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let attempts = e
        .get("attempts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total: rust_decimal::Decimal = postings
        .iter()
        .filter_map(|p| str_of(p, "amount").parse::<rust_decimal::Decimal>().ok())
        .sum();
    let receipt_text = [
        ("receipt", str_of(&receipt, "receiptId")),
        ("fisc", str_of(&receipt, "fiscId")),
        ("initial account", str_of(&receipt, "initialAccountId")),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k} {v}"))
    .collect::<Vec<_>>()
    .join(", ");
    let mut fields: Vec<(&str, String)> = vec![
        ("tenant", or_dash(str_of(e, "tenant"))),
        ("key", or_dash(str_of(e, "key"))),
        ("state", or_dash(str_of(e, "state"))),
        ("mode", or_dash(str_of(e, "mode"))),
        ("created", time_of_ms(e.get("created_ms"))),
        ("updated", time_of_ms(e.get("updated_ms"))),
        ("next attempt", time_of_ms(e.get("next_attempt_ms"))),
        (
            "POS was told",
            e.get("answered")
                .and_then(Value::as_u64)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "amount",
            format!("{total} {}", str_of(&charge, "currency"))
                + if charge.get("refund").and_then(Value::as_bool) == Some(true) {
                    " (refund)"
                } else {
                    ""
                },
        ),
        ("receipt", or_dash(&receipt_text)),
        (
            "closed at",
            or_dash(&short_time(str_of(&charge, "closedAt"))),
        ),
    ];
    if let Some(note) = e.get("note").and_then(Value::as_str) {
        fields.push(("note", one_line(note)));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (k, v) in &fields {
        let _ = writeln!(text, "{k:<width$}  {v}");
    }
    text.push_str("\nPostings\n");
    if postings.is_empty() {
        text.push_str("(none: nothing to post)\n");
    } else {
        let rows: Vec<Vec<String>> = postings
            .iter()
            .map(|p| {
                vec![
                    str_of(p, "reservation_id").to_string(),
                    str_of(p, "amount").to_string(),
                    str_of(p, "reference").to_string(),
                    or_dash(str_of(p, "pms_reference")),
                ]
            })
            .collect();
        text.push_str(&table(
            &["RESERVATION", "AMOUNT", "REFERENCE", "PMS REFERENCE"],
            &rows,
        ));
    }
    text.push_str("\nAttempts\n");
    if attempts.is_empty() {
        text.push_str("(none yet)\n");
    } else {
        let rows: Vec<Vec<String>> = attempts
            .iter()
            .map(|a| {
                vec![
                    time_of_ms(a.get("at_ms")),
                    str_of(a, "by").to_string(),
                    str_of(a, "outcome").to_string(),
                    format!(
                        "{} ms",
                        a.get("latency_ms").and_then(Value::as_u64).unwrap_or(0)
                    ),
                    or_dash(str_of(a, "message")),
                ]
            })
            .collect();
        text.push_str(&table(
            &["AT", "BY", "OUTCOME", "LATENCY", "MESSAGE"],
            &rows,
        ));
    }
    text
}

async fn retry(api: &Api, out: &Output, entry: EntryRef) -> Result<Done, Failure> {
    let value = api
        .post_json(entry_url(api, &entry, Some("retry")), &json!({}))
        .await?;
    let state = str_of(&value, "state").to_string();
    if out.json {
        out.json(&value);
    } else {
        out.result(&entry_text(&value));
    }
    let last = value
        .get("attempts")
        .and_then(Value::as_array)
        .and_then(|a| a.last())
        .map(|a| match str_of(a, "message") {
            "" => str_of(a, "outcome").to_string(),
            m => format!("{}: {}", str_of(a, "outcome"), one_line(m)),
        })
        .unwrap_or_default();
    match state.as_str() {
        "posted" | "acknowledged" => {
            out.note(&format!("{} {}: {state}", entry.tenant, entry.key));
            Ok(Done::Ok)
        }
        "needs_attention" => {
            out.note(&format!(
                "the retry did not post it: the entry needs attention ({last})"
            ));
            Ok(Done::NeedsAttention)
        }
        other => {
            out.note(&format!(
                "the retry did not post it: the entry is {other} ({last})"
            ));
            Ok(Done::NotPosted)
        }
    }
}

async fn resolve(api: &Api, out: &Output, args: ResolveArgs) -> Result<Done, Failure> {
    if args.note.trim().is_empty() {
        return Err(Failure::Usage(
            "--note must say what was done (e.g. \"paid by card at the desk\")".into(),
        ));
    }
    let value = api
        .post_json(
            entry_url(api, &args.entry, Some("resolve")),
            &json!({"note": args.note}),
        )
        .await?;
    if out.json {
        out.json(&value);
    } else {
        out.result(&entry_text(&value));
        out.note(&format!(
            "{} {}: {}",
            args.entry.tenant,
            args.entry.key,
            str_of(&value, "state")
        ));
    }
    Ok(Done::Ok)
}

async fn daily(api: &Api, out: &Output, args: DailyArgs) -> Result<Done, Failure> {
    let url = api.url(
        &["reports", "daily"],
        &[
            ("tenant", args.tenant.clone()),
            ("date", args.date.to_string()),
        ],
    );
    let attention: u64;
    if args.csv {
        let answer = api.get(url, "text/csv").await?;
        let text = String::from_utf8_lossy(&answer.bytes).into_owned();
        attention = text
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                (cells.get(2) == Some(&"needs_attention"))
                    .then(|| cells.get(3).and_then(|c| c.parse::<u64>().ok()))
                    .flatten()
            })
            .sum();
        out.result(&text);
    } else {
        let report = api.get_json(url).await?;
        let states = report
            .get("states")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::Api("the report has no states".into()))?;
        attention = states
            .iter()
            .filter(|l| str_of(l, "state") == "needs_attention")
            .filter_map(|l| l.get("count").and_then(Value::as_u64))
            .sum();
        if out.json {
            out.json(&report);
        } else {
            out.result(&report_text(&report, states));
        }
    }
    if attention > 0 {
        out.note(&format!(
            "{attention} entr{} of {} need{} a person: chargebridge postings list --tenant {} \
             --state needs_attention",
            if attention == 1 { "y" } else { "ies" },
            args.date,
            if attention == 1 { "s" } else { "" },
            args.tenant
        ));
        Ok(Done::NeedsAttention)
    } else {
        Ok(Done::Ok)
    }
}

fn report_text(report: &Value, states: &[Value]) -> String {
    let currency = str_of(report, "currency");
    let mut text = format!(
        "Business date {} of {} ({}, {} to {})\n\n",
        str_of(report, "date"),
        str_of(report, "tenant"),
        str_of(report, "timeZone"),
        short_time(str_of(report, "from")),
        short_time(str_of(report, "until")),
    );
    let count = |v: &Value| {
        v.get("count")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .to_string()
    };
    let mut rows: Vec<Vec<String>> = states
        .iter()
        .map(|l| {
            vec![
                str_of(l, "state").to_string(),
                count(l),
                format!("{} {currency}", str_of(l, "total")),
            ]
        })
        .collect();
    let refunds = report.get("refunds").cloned().unwrap_or(Value::Null);
    rows.push(vec![
        "refunds".into(),
        count(&refunds),
        format!("{} {currency}", str_of(&refunds, "total")),
    ]);
    rows.push(vec![
        "tips".into(),
        String::new(),
        format!("{} {currency}", str_of(report, "tips")),
    ]);
    text.push_str(&table(&["STATE", "COUNT", "TOTAL"], &rows));
    let _ = writeln!(
        text,
        "\nPosted total: {} {currency} (compare with the PMS's restaurant revenue for the date)",
        str_of(report, "postedTotal")
    );
    let _ = writeln!(
        text,
        "  room charges {} {currency}, revenue to house accounts {} {currency}",
        str_of(report, "postedRoomCharges"),
        str_of(report, "postedRevenue")
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> Api {
        Api::new(
            Url::parse(base).unwrap(),
            SecretString::from("t0ken-secret"),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let a = api("https://ops.example.com/bridge/");
        let url = a.url(&["postings", "demo", "LS1_a/b c"], &[]);
        assert_eq!(
            url.as_str(),
            "https://ops.example.com/bridge/admin/v1/postings/demo/LS1_a%2Fb%20c"
        );
        let url = api("http://127.0.0.1:8080").url(
            &["reports", "daily"],
            &[("tenant", "a&b".into()), ("date", "2026-12-02".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/admin/v1/reports/daily?tenant=a%26b&date=2026-12-02"
        );
    }

    #[test]
    fn refusals_name_the_code_and_the_message() {
        let answer = |status, body: &str| Answer {
            status,
            bytes: body.as_bytes().to_vec(),
        };
        assert_eq!(
            refusal(&answer(
                409,
                r#"{"error":"wrong_state","message":"an entry that is posted cannot be retried"}"#
            )),
            "the API refused (409 wrong_state): an entry that is posted cannot be retried"
        );
        assert!(refusal(&answer(401, r#"{"error":"unauthorized"}"#)).contains("unauthorized"));
        assert_eq!(
            refusal(&answer(
                400,
                r#"{"customerErrorMessage":"x","code":"invalid_payload","detail":"bad limit"}"#
            )),
            "the API refused (400 invalid_payload): bad limit"
        );
        assert_eq!(
            refusal(&answer(502, "bad\ngateway")),
            "the API answered 502: bad gateway"
        );
    }

    #[test]
    fn tables_never_carry_control_characters() {
        let t = table(
            &["A", "B"],
            &[vec!["x\x1b[31m".into(), "line\nbreak".into()]],
        );
        assert!(!t.contains('\x1b'));
        assert_eq!(t.lines().count(), 2, "{t}");
    }

    #[test]
    fn the_token_is_scrubbed_from_output() {
        let out = Output {
            json: false,
            token: Some(SecretString::from("t0ken-secret")),
        };
        assert_eq!(out.scrub("a t0ken-secret b"), "a [redacted] b");
    }
}
