//! The one HTTP client layer every HTTP adapter (http, Mews, OPERA, apaleo) sends
//! through, so that what must be the same for all of them is written once:
//!
//! * **Deadline budget**: each call gets the time left before the caller's
//!   deadline, capped by the adapter's `timeout`; with none left nothing is sent
//!   ([`PmsError::out_of_time`]).
//! * **No redirects**: a redirected POST would be replayed as something else; a
//!   3XX is a set-up error, like 404, 405 and 415 (unavailable, logged as a
//!   configuration problem; never a refusal stored for the retention).
//! * **Timeouts**: connect within [`CONNECT_TIMEOUT`] (a connect failure is known
//!   not to have sent anything), the whole exchange within the budget.
//! * **TLS**: rustls with the Web PKI roots.
//! * **Rate limit**: a token bucket per credential ([`RateLimiter`]), paused by a
//!   429's `Retry-After`.
//! * **Credentials**: a fixed bearer token, or OAuth client credentials
//!   ([`super::oauth`]) refreshed once after a 401; every credential header is
//!   marked sensitive.
//! * **Request id**: a fresh id per call, sent where the vendor describes a header
//!   for it, and logged with the vendor's own id of the answer.
//! * **Outcome classes**: a failed exchange becomes a typed [`PmsError`]
//!   (rejected / unavailable / unknown) by [`Vendor::classify`] over
//!   [`default_class`], with the vendor's business error text for staff.
//! * **Metrics**: `chargebridge_pms_http_requests_total{pms,op,status}` and
//!   `chargebridge_pms_http_duration_seconds{pms,op}` for every exchange.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::oauth::{TokenRequest, TokenSource};
use super::rate_limit::{RateLimit, RateLimiter};
use super::{ErrorClass, PmsError};

/// Longest wait for a TCP (and TLS) connection. Shorter than any sensible request
/// timeout, so an unreachable PMS reads as unavailable, not unknown.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read from any PMS answer (a Mews page of 1 000 reservations fits).
const MAX_ANSWER: usize = 16 << 20;
/// Longest vendor text kept in an error (the POS shows 50 characters).
const MAX_TEXT: usize = 200;

/// Whether a failed call may have changed anything in the PMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A look-up: any failure means "no answer", never "maybe applied".
    Read,
    /// A posting: a failure after the request may have left is "maybe applied".
    Write,
}

/// What one vendor's API means by its answers. Each adapter declares one.
pub(crate) struct Vendor {
    /// For messages, logs and metrics: "Mews", "OPERA", "apaleo", "PMS".
    pub name: &'static str,
    /// The staff-readable reason in an error answer's body (the vendor's error
    /// shape), if there is one.
    pub error_text: fn(status: u16, body: &[u8]) -> Option<String>,
    /// The vendor's own reading of a failed status where it differs from
    /// [`default_class`]; `None` keeps the default.
    pub classify: fn(status: u16, call: Call, body: &[u8]) -> Option<ErrorClass>,
    /// The header the vendor describes for the caller's request id, if any.
    pub request_id_header: Option<&'static str>,
    /// The vendor's id of an answer, from its body (Mews's `RequestId`).
    pub answer_id: fn(body: &[u8]) -> Option<String>,
}

impl Vendor {
    /// A vendor with the default reading of every status and no error shape.
    pub const fn plain(name: &'static str) -> Self {
        Vendor {
            name,
            error_text: |_, _| None,
            classify: |_, _, _| None,
            request_id_header: None,
            answer_id: |_| None,
        }
    }
}

/// How an adapter proves who it is.
pub(crate) enum Auth {
    /// Credentials travel in the body (Mews) or are not needed.
    None,
    /// `Authorization: Bearer <token>` on every call.
    Bearer(SecretString),
    /// OAuth client credentials, fetched and refreshed by the transport.
    ClientCredentials(TokenRequest),
}

/// What an adapter configures of its transport.
pub(crate) struct TransportSettings {
    pub vendor: &'static Vendor,
    /// Upper bound of one call (further bounded by the caller's deadline).
    pub timeout: Duration,
    pub rate_limit: RateLimit,
    pub auth: Auth,
    /// Sent on every call (`x-app-key`, `x-hotelid`); marked sensitive.
    pub headers: Vec<(&'static str, SecretString)>,
    /// `User-Agent`; `chargebridge/<version>` when `None`.
    pub user_agent: Option<String>,
}

/// The body of a request.
enum Body {
    None,
    Json(Vec<u8>),
    Form(Vec<(String, String)>),
}

/// One request to send, built with [`Transport::request`].
pub(crate) struct Request {
    op: &'static str,
    call: Call,
    method: Method,
    url: Url,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, String)>,
    body: Body,
    basic_auth: Option<(String, SecretString)>,
    min_budget: Duration,
}

impl Request {
    pub fn query<K: ToString, V: ToString>(mut self, pairs: &[(K, V)]) -> Self {
        self.query
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A JSON body, encoded once (retries resend the same bytes).
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        // Encoding a `Value` cannot fail: its keys are strings.
        self.body = Body::Json(serde_json::to_vec(value).unwrap_or_default());
        self
    }

    /// Already encoded JSON.
    pub fn json_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.body = Body::Json(bytes);
        self
    }

    fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    fn basic_auth(mut self, user: &str, password: &SecretString) -> Self {
        self.basic_auth = Some((user.to_string(), password.clone()));
        self
    }

    /// Send only with at least this much time left (a write cut short is unknown).
    pub fn min_budget(mut self, budget: Duration) -> Self {
        self.min_budget = budget;
        self
    }
}

/// What the PMS answered, whatever the status.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The vendor's id of this answer, else the id we sent.
    pub request_id: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an empty body (204) is `null`.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
    }

    /// The `Location` header, for the log of a redirect or a created resource.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
    }
}

/// One adapter's HTTP client: connection pool, credentials, rate limit, rules.
pub(crate) struct Transport {
    vendor: &'static Vendor,
    client: reqwest::Client,
    timeout: Duration,
    limiter: RateLimiter,
    headers: Vec<(&'static str, HeaderValue)>,
    bearer: Option<HeaderValue>,
    tokens: Option<TokenSource>,
}

impl Transport {
    pub fn new(settings: TransportSettings) -> Result<Self, String> {
        let vendor = settings.vendor;
        let client = reqwest::Client::builder()
            .user_agent(
                settings
                    .user_agent
                    .unwrap_or_else(|| concat!("chargebridge/", env!("CARGO_PKG_VERSION")).into()),
            )
            .connect_timeout(CONNECT_TIMEOUT.min(settings.timeout))
            // A redirected POST would be replayed as something else; never follow
            // (a 3XX reads as a set-up error, see `setup_error`).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut headers = Vec::with_capacity(settings.headers.len());
        for (name, value) in &settings.headers {
            let value = sensitive_header(value.expose_secret())
                .ok_or_else(|| format!("{name} is not a valid HTTP header value"))?;
            headers.push((*name, value));
        }
        let (bearer, tokens) = match settings.auth {
            Auth::None => (None, None),
            Auth::Bearer(token) => (
                Some(
                    sensitive_header(&format!("Bearer {}", token.expose_secret()))
                        .ok_or_else(|| "token is not a valid header value".to_string())?,
                ),
                None,
            ),
            Auth::ClientCredentials(request) => (None, Some(TokenSource::new(request))),
        };
        Ok(Transport {
            vendor,
            client,
            timeout: settings.timeout,
            limiter: RateLimiter::new(vendor.name, settings.rate_limit),
            headers,
            bearer,
            tokens,
        })
    }

    pub fn vendor(&self) -> &'static str {
        self.vendor.name
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A request for `op` (the vendor's operation name, for logs and metrics).
    pub fn request(&self, op: &'static str, call: Call, method: Method, url: Url) -> Request {
        Request {
            op,
            call,
            method,
            url,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::None,
            basic_auth: None,
            min_budget: Duration::ZERO,
        }
    }

    /// Sends `request` and answers whatever the PMS answered; `Err` only when no
    /// answer came (not sent, timed out, connection lost) or credentials failed.
    /// With OAuth, a 401 fetches a new token once and repeats the call (a 401
    /// means nothing was processed).
    pub async fn send(&self, request: &Request, deadline: Instant) -> Result<Answer, PmsError> {
        let Some(tokens) = &self.tokens else {
            return self
                .send_once(request, self.bearer.as_ref(), true, deadline)
                .await;
        };
        let mut token = tokens.get(self, deadline).await?;
        let mut refreshed = false;
        loop {
            let bearer = token.bearer().ok_or_else(|| {
                PmsError::unavailable(format!(
                    "{} access token is not a valid header value",
                    self.vendor.name
                ))
            })?;
            let answer = self
                .send_once(request, Some(&bearer), true, deadline)
                .await?;
            if answer.status == 401 && !refreshed {
                tracing::info!(
                    pms = self.vendor.name,
                    "access token refused; fetching a new one"
                );
                token = tokens.replace(self, &token, deadline).await?;
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// [`Transport::send`], then any status but 2XX as the classified failure.
    pub async fn call(&self, request: &Request, deadline: Instant) -> Result<Answer, PmsError> {
        let answer = self.send(request, deadline).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(self.failure(request, &answer))
        }
    }

    /// A token request: no rate limit (it is not a call of the credential), no
    /// bearer, the form and HTTP Basic credentials given.
    pub(super) async fn send_token_request(
        &self,
        url: Url,
        client_id: &str,
        client_secret: &SecretString,
        form: Vec<(String, String)>,
        headers: &[(&'static str, SecretString)],
        deadline: Instant,
    ) -> Result<Answer, PmsError> {
        let mut request = self
            .request("token", Call::Read, Method::POST, url)
            .form(form)
            .basic_auth(client_id, client_secret);
        for (name, value) in headers {
            request = request.header(name, value.expose_secret());
        }
        self.send_once(&request, None, false, deadline).await
    }

    /// One exchange. `paced`: an API call of the credential (rate-limited, with
    /// the request id); token requests are not.
    async fn send_once(
        &self,
        request: &Request,
        bearer: Option<&HeaderValue>,
        paced: bool,
        deadline: Instant,
    ) -> Result<Answer, PmsError> {
        let (pms, op) = (self.vendor.name, request.op);
        let left = deadline.saturating_duration_since(Instant::now());
        if left < request.min_budget.max(Duration::from_millis(1)) {
            return Err(PmsError::out_of_time(format!(
                "no time left to call {pms} {op} before the deadline"
            )));
        }
        if paced {
            self.limiter
                .acquire(deadline)
                .await
                .map_err(PmsError::out_of_time)?;
        }
        let Some(timeout) = budget(deadline, self.timeout) else {
            return Err(PmsError::out_of_time(format!(
                "no time left to call {pms} {op} before the deadline"
            )));
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .timeout(timeout)
            .header(header::ACCEPT, "application/json");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        for (name, value) in &self.headers {
            builder = builder.header(*name, value.clone());
        }
        for (name, value) in &request.headers {
            let value = sensitive_header(value).ok_or_else(|| {
                PmsError::unavailable(format!("{pms} {op}: {name} is not a valid header value"))
            })?;
            builder = builder.header(*name, value);
        }
        if paced && let Some(name) = self.vendor.request_id_header {
            builder = builder.header(name, &request_id);
        }
        if let Some(bearer) = bearer {
            builder = builder.header(header::AUTHORIZATION, bearer.clone());
        }
        if let Some((user, password)) = &request.basic_auth {
            builder = builder.basic_auth(user, Some(password.expose_secret()));
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(bytes) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Form(fields) => builder.form(fields),
        };
        let started = std::time::Instant::now();
        let sent = builder.send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                crate::metrics::pms_http(pms, op, "none", started.elapsed());
                return Err(self.transport_failure(request, e));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status == 429 {
            self.limiter.pause(retry_after(&headers, Utc::now()));
        }
        let body = match read_capped(response, MAX_ANSWER).await {
            Ok(body) => body,
            // The status says it all; only the details are lost.
            Err(e) if (200..300).contains(&status) => {
                tracing::warn!(pms, op, error = %describe(&e), "answer body cut off");
                Vec::new()
            }
            Err(e) => {
                crate::metrics::pms_http(pms, op, "none", started.elapsed());
                return Err(self.transport_failure(request, e));
            }
        };
        crate::metrics::pms_http(pms, op, status_label(status), started.elapsed());
        let vendor_id = (self.vendor.answer_id)(&body).or_else(|| {
            self.vendor
                .request_id_header
                .and_then(|h| headers.get(h))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        let answer = Answer {
            status,
            headers,
            body,
            request_id: vendor_id.unwrap_or(request_id),
        };
        tracing::debug!(pms, op, status, request_id = %answer.request_id, "PMS answered");
        Ok(answer)
    }

    /// A call that got no answer: unknown when a write may have reached the PMS,
    /// else unavailable.
    fn transport_failure(&self, request: &Request, e: reqwest::Error) -> PmsError {
        let detail = format!("{} {}: {}", self.vendor.name, request.op, describe(&e));
        let error = if request.call == Call::Write && maybe_sent(&e) {
            PmsError::unknown(detail)
        } else {
            PmsError::unavailable(detail)
        };
        error.caused_by(e)
    }

    /// What a non-2XX answer means, by the vendor's rules over [`default_class`].
    pub fn failure(&self, request: &Request, answer: &Answer) -> PmsError {
        self.classified(request, answer).with_status(answer.status)
    }

    fn classified(&self, request: &Request, answer: &Answer) -> PmsError {
        let (pms, op, status) = (self.vendor.name, request.op, answer.status);
        let text = (self.vendor.error_text)(status, &answer.body)
            .map(|t| clip(&t))
            .filter(|t| !t.is_empty());
        let vendor_class = (self.vendor.classify)(status, request.call, &answer.body);
        // A vendor may read a set-up status as something else (OHIP's own 404 is
        // "no such reservation"); otherwise it is a set-up error.
        if vendor_class.is_none_or(|c| c == ErrorClass::Unavailable)
            && let Some(detail) = setup_error(pms, op, status, answer.location())
        {
            return PmsError::unavailable(detail);
        }
        let class = vendor_class.unwrap_or_else(|| default_class(status, request.call));
        if class == ErrorClass::Rejected {
            let reason = text.unwrap_or_else(|| refused_status(status));
            tracing::info!(pms, op, status, request_id = %answer.request_id, %reason, "the PMS refused");
            return PmsError::rejected(reason);
        }
        let mut detail = format!("{pms} {op} answered HTTP {status}");
        if let Some(text) = &text {
            detail.push_str(&format!(": {text}"));
        }
        detail.push_str(&format!(" [request id {}]", answer.request_id));
        match status {
            401 | 403 if class == ErrorClass::Unavailable => tracing::error!(
                pms,
                op,
                status,
                "the PMS refused chargebridge's credentials: check this [pms] section's credentials"
            ),
            _ => tracing::warn!(pms, op, status, class = class.label(), %detail, "PMS call failed"),
        }
        match retry_after(&answer.headers, Utc::now()) {
            Some(wait) if class == ErrorClass::Unavailable && matches!(status, 429 | 503) => {
                PmsError::rate_limited(detail, wait)
            }
            _ => PmsError::new(class, detail),
        }
    }
}

/// The reading of a failed status that the vendors share:
/// credentials (401, 403), overload (408, 429, 503) and set-up errors are
/// unavailable; any other 4XX is a refusal of a write and no answer to a read;
/// a 5XX (or anything else) after a write may have applied it.
pub(crate) fn default_class(status: u16, call: Call) -> ErrorClass {
    match (status, call) {
        (300..=399 | 401 | 403 | 404 | 405 | 408 | 415 | 429 | 503, _) => ErrorClass::Unavailable,
        (400..=499, Call::Write) => ErrorClass::Rejected,
        (_, Call::Read) => ErrorClass::Unavailable,
        (_, Call::Write) => ErrorClass::Unknown,
    }
}

/// The staff text of a refusal without the vendor's reason: "Hotel system
/// refused: 410 Gone".
fn refused_status(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("Hotel system refused: {status} {reason}")
        .trim_end()
        .to_string()
}

/// What is left until `deadline`, capped by `timeout`; `None` when nothing is left.
pub(crate) fn budget(deadline: Instant, timeout: Duration) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left < Duration::from_millis(1) {
        return None;
    }
    Some(left.min(timeout))
}

/// A transport error in one line: what failed, the host and path (never the
/// query: logs need not carry guest search terms), and the innermost cause.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "broken answer"
    } else if e.is_redirect() {
        "redirected"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = match e.url() {
        Some(url) => format!(
            "{kind} ({}{}): {cause}",
            url.host_str().unwrap_or(""),
            url.path()
        ),
        None => format!("{kind}: {cause}"),
    };
    clip(&text)
}

/// Whether the request may have reached the PMS. A connection that was never
/// made cannot have applied anything; anything later (timeout, reset) may have.
fn maybe_sent(e: &reqwest::Error) -> bool {
    !e.is_connect() && !e.is_builder()
}

/// A 429/503's `Retry-After`: seconds (at most a day) or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(86_400)));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// A status that says chargebridge is set up wrong, not that the PMS refused the
/// charge: a redirect (3XX; never followed), `404 Not Found` (wrong base URL or
/// path), `405 Method Not Allowed` (wrong path), `415 Unsupported Media Type`
/// (wrong content type). Nothing was posted, so it is unavailable (the journal
/// keeps the charge for the worker and the operator); storing a refusal would
/// lose the charge for the whole retention. Logged at ERROR. `None` for every
/// other status.
fn setup_error(pms: &str, op: &str, status: u16, location: Option<&str>) -> Option<String> {
    let hint = match status {
        300..=399 => "the PMS redirected (not followed): check the base URL (scheme, host, path)",
        404 => "the PMS has no such path: check the base URL and path",
        405 => "the PMS does not allow this method there: check the base URL and path",
        415 => "the PMS refused the content type: check the adapter's content type",
        _ => return None,
    };
    tracing::error!(
        pms,
        call = op,
        status,
        location = location.unwrap_or(""),
        "configuration problem: {hint}; nothing was posted"
    );
    let mut detail = format!("{pms} {op} answered HTTP {status}: {hint}");
    if let Some(l) = location {
        detail.push_str(&format!(" (Location {l})"));
    }
    Some(detail)
}

/// A configured base URL: http(s), a host, no credentials, query or fragment
/// (credentials have keys of their own; paths are appended).
pub(crate) fn base_url(raw: &str, key: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("{key}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!("{key} must be an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key}: no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{key}: put credentials in their own keys, not in the URL"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{key}: must not have a query or fragment"));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded (a reservation id from
/// the POS can never change the path).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// A header value holding a credential, marked sensitive so that no debug output
/// of a request (reqwest's, a middleware's) prints it; `None` if not a valid value.
pub(crate) fn sensitive_header(text: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// At most [`MAX_TEXT`] characters, one line.
fn clip(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect()
}

/// At most `max` bytes of the answer's body (a PMS or proxy that streams without
/// end cannot exhaust memory).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max.saturating_sub(body.len());
        if chunk.len() >= room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A bounded label for the status metric.
fn status_label(status: u16) -> &'static str {
    const LISTED: [(u16, &str); 11] = [
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (408, "408"),
        (409, "409"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
    ];
    if let Some((_, label)) = LISTED.iter().find(|(s, _)| *s == status) {
        return label;
    }
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_reading_of_statuses() {
        use ErrorClass::*;
        for (status, read, write) in [
            (302, Unavailable, Unavailable),
            (400, Unavailable, Rejected),
            (401, Unavailable, Unavailable),
            (403, Unavailable, Unavailable),
            (404, Unavailable, Unavailable),
            (405, Unavailable, Unavailable),
            (408, Unavailable, Unavailable),
            (409, Unavailable, Rejected),
            (415, Unavailable, Unavailable),
            (422, Unavailable, Rejected),
            (429, Unavailable, Unavailable),
            (500, Unavailable, Unknown),
            (502, Unavailable, Unknown),
            (503, Unavailable, Unavailable),
            (504, Unavailable, Unknown),
            (600, Unavailable, Unknown),
        ] {
            assert_eq!(default_class(status, Call::Read), read, "{status} read");
            assert_eq!(default_class(status, Call::Write), write, "{status} write");
        }
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(base_url("https://api.example/v1", "url").is_ok());
        for bad in [
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=1",
            "https://x/#f",
            "mailto:a@b",
            "nonsense",
        ] {
            assert!(base_url(bad, "url").is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h, now)
        };
        assert_eq!(with("0"), Some(Duration::ZERO));
        assert_eq!(with("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            with("Wed, 01 May 2024 10:00:05 GMT"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(with("Wed, 01 May 2024 09:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
    }

    #[test]
    fn paths_are_encoded_segment_by_segment() {
        let base = base_url("https://gw.example/prefix/", "url").unwrap();
        let url = join(
            &base,
            &["csh", "v1", "hotels", "H1", "reservations", "../x y"],
        );
        assert_eq!(
            url.as_str(),
            "https://gw.example/prefix/csh/v1/hotels/H1/reservations/..%2Fx%20y"
        );
    }
}
