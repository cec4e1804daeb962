//! OAuth 2.0 client-credentials tokens for the PMS adapters that need them
//! (OPERA Cloud OHIP, apaleo): fetched on first use, cached until shortly before
//! they expire, and refreshed **once for everyone**. The cache sits behind an async
//! mutex held across the fetch, so concurrent requests that find no valid token
//! wait for the one refresh in flight instead of each asking for a token.
//!
//! A token the PMS refused (401) is dropped only if it is still the cached one;
//! when another request already replaced it, the newer token is used as is.
//! Every failure here is unavailable ([`super::ErrorClass::Unavailable`]): nothing was posted yet.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::PmsError;
use super::transport::{self, Transport};

/// Refresh this long before expiry at most (OHIP tokens live 60 minutes).
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Lifetime assumed when the token endpoint does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// How to ask for a token.
pub(crate) struct TokenRequest {
    pub url: reqwest::Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Extra form fields (`scope`).
    pub form: Vec<(&'static str, String)>,
    /// Extra headers (`x-app-key`, `enterpriseId`); values may be secret.
    pub headers: Vec<(&'static str, SecretString)>,
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
        transport::sensitive_header(&format!("Bearer {}", self.value.expose_secret()))
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

/// The cached token of one credential; requests go out through the adapter's
/// [`Transport`] (same client, timeouts and metrics as every other call).
pub(crate) struct TokenSource {
    request: TokenRequest,
    cache: Mutex<Cache>,
}

impl TokenSource {
    pub fn new(request: TokenRequest) -> Self {
        TokenSource {
            request,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// A valid token: the cached one, or a fresh one fetched by exactly one caller.
    pub async fn get(&self, via: &Transport, deadline: Instant) -> Result<Token, PmsError> {
        let mut cache = self.lock(via, deadline).await?;
        if let Some(c) = &cache.current
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        self.fetch_into(via, &mut cache, deadline).await
    }

    /// After the PMS answered 401 to `rejected`: a different token, fetching one
    /// only if nobody has replaced the rejected one yet.
    pub async fn replace(
        &self,
        via: &Transport,
        rejected: &Token,
        deadline: Instant,
    ) -> Result<Token, PmsError> {
        let mut cache = self.lock(via, deadline).await?;
        if let Some(c) = &cache.current
            && c.token.serial != rejected.serial
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        cache.current = None;
        self.fetch_into(via, &mut cache, deadline).await
    }

    async fn lock(
        &self,
        via: &Transport,
        deadline: Instant,
    ) -> Result<tokio::sync::MutexGuard<'_, Cache>, PmsError> {
        tokio::time::timeout_at(deadline, self.cache.lock())
            .await
            .map_err(|_| {
                PmsError::out_of_time(format!(
                    "{} token refresh still running at the deadline",
                    via.vendor()
                ))
            })
    }

    async fn fetch_into(
        &self,
        via: &Transport,
        cache: &mut Cache,
        deadline: Instant,
    ) -> Result<Token, PmsError> {
        let (value, lifetime) = self.fetch(via, deadline).await?;
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
            pms = via.vendor(),
            lifetime_s = lifetime.as_secs(),
            "fetched an access token"
        );
        Ok(token)
    }

    async fn fetch(
        &self,
        via: &Transport,
        deadline: Instant,
    ) -> Result<(SecretString, Duration), PmsError> {
        let r = &self.request;
        let pms = via.vendor();
        let unavailable = |detail: String| PmsError::unavailable(format!("{pms} token: {detail}"));
        let mut form = vec![("grant_type".to_string(), "client_credentials".to_string())];
        form.extend(r.form.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let answer = via
            .send_token_request(
                r.url.clone(),
                &r.client_id,
                &r.client_secret,
                form,
                &r.headers,
                deadline,
            )
            .await
            .map_err(|e| e.as_class(super::ErrorClass::Unavailable, &format!("{pms} token")))?;
        if !answer.is_success() {
            let hint = match answer.status {
                400 | 401 | 403 => " (check client_id, client_secret and the application key)",
                _ => "",
            };
            return Err(unavailable(format!("HTTP {}{hint}", answer.status)));
        }
        let body = answer.body;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| unavailable("the token answer is not JSON".into()))?;
        let value = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| unavailable("no access_token in the answer".into()))?;
        let lifetime = json
            .get("expires_in")
            .and_then(super::rest::as_u64)
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        Ok((SecretString::from(value.to_string()), lifetime))
    }
}
