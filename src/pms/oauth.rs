//! OAuth 2.0 client-credentials tokens for the PMS adapters that need them
//! (OPERA Cloud OHIP, apaleo): fetched on first use, cached until shortly before
//! they expire, and refreshed **once for everyone**. The cache sits behind an async
//! mutex held across the fetch, so concurrent requests that find no valid token
//! wait for the one refresh in flight instead of each asking for a token.
//!
//! A token the PMS refused (401) is dropped only if it is still the cached one;
//! when another request already replaced it, the newer token is used as is.
//! Every failure here is [`PmsError::Unavailable`]: nothing was posted yet.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::PmsError;
use super::rest;

/// Refresh this long before expiry at most (OHIP tokens live 60 minutes).
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Lifetime assumed when the token endpoint does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// How to ask for a token.
pub(crate) struct TokenRequest {
    /// For messages: "OPERA", "apaleo".
    pub pms: &'static str,
    pub url: reqwest::Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Extra form fields (`scope`).
    pub form: Vec<(&'static str, String)>,
    /// Extra headers (`x-app-key`, `enterpriseId`); values may be secret.
    pub headers: Vec<(&'static str, SecretString)>,
    /// Upper bound of one token request.
    pub timeout: Duration,
}

/// A bearer token handed to a caller; `serial` identifies which fetch made it.
#[derive(Clone)]
pub(crate) struct Token {
    value: SecretString,
    serial: u64,
}

impl Token {
    /// The `Authorization` value, marked sensitive.
    pub fn bearer(&self) -> Option<reqwest::header::HeaderValue> {
        rest::sensitive_header(&format!("Bearer {}", self.value.expose_secret()))
    }
}

struct Cached {
    token: Token,
    refresh_at: Instant,
}

#[derive(Default)]
struct Cache {
    current: Option<Cached>,
    fetched: u64,
}

pub(crate) struct TokenSource {
    client: reqwest::Client,
    request: TokenRequest,
    cache: Mutex<Cache>,
}

impl TokenSource {
    pub fn new(client: reqwest::Client, request: TokenRequest) -> Self {
        TokenSource {
            client,
            request,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// A valid token: the cached one, or a fresh one fetched by exactly one caller.
    pub async fn get(&self, deadline: Instant) -> Result<Token, PmsError> {
        let mut cache = self.lock(deadline).await?;
        if let Some(c) = &cache.current
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        self.fetch_into(&mut cache, deadline).await
    }

    /// After the PMS answered 401 to `rejected`: a different token, fetching one
    /// only if nobody has replaced the rejected one yet.
    pub async fn replace(&self, rejected: &Token, deadline: Instant) -> Result<Token, PmsError> {
        let mut cache = self.lock(deadline).await?;
        if let Some(c) = &cache.current
            && c.token.serial != rejected.serial
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        cache.current = None;
        self.fetch_into(&mut cache, deadline).await
    }

    async fn lock(
        &self,
        deadline: Instant,
    ) -> Result<tokio::sync::MutexGuard<'_, Cache>, PmsError> {
        tokio::time::timeout_at(deadline, self.cache.lock())
            .await
            .map_err(|_| {
                PmsError::Unavailable(format!(
                    "{} token refresh still running at the deadline",
                    self.request.pms
                ))
            })
    }

    async fn fetch_into(&self, cache: &mut Cache, deadline: Instant) -> Result<Token, PmsError> {
        let (value, lifetime) = self.fetch(deadline).await?;
        cache.fetched += 1;
        let token = Token {
            value,
            serial: cache.fetched,
        };
        let ahead = (lifetime / 6).min(MAX_REFRESH_AHEAD);
        cache.current = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(ahead),
        });
        tracing::debug!(
            pms = self.request.pms,
            lifetime_s = lifetime.as_secs(),
            "fetched an access token"
        );
        Ok(token)
    }

    async fn fetch(&self, deadline: Instant) -> Result<(SecretString, Duration), PmsError> {
        let r = &self.request;
        let pms = r.pms;
        let unavailable = |detail: String| PmsError::Unavailable(format!("{pms} token: {detail}"));
        let timeout = rest::budget(deadline, r.timeout)
            .ok_or_else(|| unavailable("no time left for the token request".into()))?;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        form.extend(r.form.iter().map(|(k, v)| (*k, v.as_str())));
        let mut req = self
            .client
            .post(r.url.clone())
            .timeout(timeout)
            .basic_auth(&r.client_id, Some(r.client_secret.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        for (name, value) in &r.headers {
            req = req.header(*name, value.expose_secret());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unavailable(rest::describe(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| unavailable(rest::describe(&e)))?;
        if !status.is_success() {
            let hint = match status.as_u16() {
                400 | 401 | 403 => " (check client_id, client_secret and the application key)",
                _ => "",
            };
            return Err(unavailable(format!("HTTP {}{hint}", status.as_u16())));
        }
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| unavailable("the token answer is not JSON".into()))?;
        let value = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| unavailable("no access_token in the answer".into()))?;
        let lifetime = json
            .get("expires_in")
            .and_then(rest::as_u64)
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        Ok((SecretString::from(value.to_string()), lifetime))
    }
}

/// Whether a failed call may have changed anything in the PMS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A look-up: any failure means "no answer", never "maybe applied".
    Read,
    /// A posting: a failure after the request may have left is "maybe applied".
    Write,
}

/// What the PMS answered.
pub(crate) struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// A JSON API behind bearer tokens: every call gets a token, the fixed headers,
/// the time left (capped by `timeout`), and one token refresh after a 401.
pub(crate) struct BearerApi {
    /// For messages: "OPERA", "apaleo".
    pub pms: &'static str,
    pub client: reqwest::Client,
    pub tokens: TokenSource,
    pub timeout: Duration,
    /// Sent on every call (`x-app-key`, `x-hotelid`); values may be secret.
    pub headers: Vec<(&'static str, SecretString)>,
    /// Paces the calls made with this credential (token requests aside).
    pub limiter: super::rate_limit::RateLimiter,
}

impl BearerApi {
    /// Sends the request `build` makes, refreshing the token once if the PMS
    /// answers 401 (a 401 means nothing was processed, so repeating is safe).
    /// Transport failures are classified by `call`.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        call: Call,
        deadline: Instant,
    ) -> Result<Answer, PmsError> {
        let mut token = self.tokens.get(deadline).await?;
        let mut refreshed = false;
        loop {
            let answer = self.send_once(&build, &token, call, deadline).await?;
            if answer.status == reqwest::StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(pms = self.pms, "access token refused; fetching a new one");
                token = self.tokens.replace(&token, deadline).await?;
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    async fn send_once(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        token: &Token,
        call: Call,
        deadline: Instant,
    ) -> Result<Answer, PmsError> {
        let pms = self.pms;
        let timeout = rest::budget(deadline, self.timeout).ok_or_else(|| {
            PmsError::Unavailable(format!("no time left to call {pms} before the deadline"))
        })?;
        let unusable = |what: &str| {
            PmsError::Unavailable(format!("{pms} {what} is not a valid HTTP header value"))
        };
        let mut request = build(&self.client)
            .timeout(timeout)
            .header(
                reqwest::header::AUTHORIZATION,
                token.bearer().ok_or_else(|| unusable("access token"))?,
            )
            .header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in &self.headers {
            let value =
                rest::sensitive_header(value.expose_secret()).ok_or_else(|| unusable(name))?;
            request = request.header(*name, value);
        }
        let transport = |e: reqwest::Error| {
            let detail = format!("{pms} {}", rest::describe(&e));
            if call == Call::Write && rest::maybe_sent(&e) {
                PmsError::Unknown(detail)
            } else {
                PmsError::Unavailable(detail)
            }
        };
        self.limiter
            .acquire(deadline)
            .await
            .map_err(PmsError::Unavailable)?;
        let resp = request.send().await.map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            self.limiter
                .pause(rest::retry_after(&headers, chrono::Utc::now()));
        }
        let body = match resp.bytes().await {
            Ok(body) => body.to_vec(),
            // The status says it all; only the details are lost.
            Err(e) if status.is_success() => {
                tracing::warn!(pms, error = %rest::describe(&e), "answer body cut off");
                Vec::new()
            }
            Err(e) => return Err(transport(e)),
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}
