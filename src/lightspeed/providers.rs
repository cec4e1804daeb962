//! Client of Lightspeed's K-Series PMS API: this service registered as a business
//! location's PMS provider (list, show, create, update, delete) and the location's
//! revenue centers, for `chargebridge lightspeed`.
//!
//! Written against Lightspeed's published OpenAPI description, kept (the part used
//! here) in `tests/vendor/lightspeed/pms-api.subset.openapi.json`. Answers are read
//! tolerantly: unknown fields are ignored, unknown feature values kept as text,
//! ids accepted as numbers or numeric strings. The OAuth2 access token (scope
//! `propertymanagement`) and the providers' `apiKey` are `SecretString`s: no
//! `Debug` or error text of this module prints either.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The description's "Demo URL" (trial accounts).
pub const TRIAL_BASE_URL: &str = "https://api.trial.lsk.lightspeed.app";
/// The description's "Production URL".
pub const PRODUCTION_BASE_URL: &str = "https://api.lsk.lightspeed.app";
/// The OAuth2 scope every operation here requires.
pub const SCOPE: &str = "propertymanagement";
/// Default bound of one whole request (connect, send, answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `name`, `endpoint` and `apiKey` the API accepts.
pub const MAX_FIELD_CHARS: usize = 255;
/// Largest answer read; a provider list is a few kilobytes.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Longest piece of Lightspeed's error text repeated in our messages.
const MAX_ERROR_TEXT: usize = 500;

/// An optional capability of a PMS provider (`pms-apiProviderFeature`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    SearchByName,
    Mirroring,
    PartialPayments,
    MultiPayments,
    ServiceCharge,
    EnrichedPayload,
    /// A value this version does not know, kept as sent.
    Other(String),
}

impl Feature {
    /// Every value the description lists, in its order.
    pub const KNOWN: [Feature; 6] = [
        Feature::SearchByName,
        Feature::Mirroring,
        Feature::PartialPayments,
        Feature::MultiPayments,
        Feature::ServiceCharge,
        Feature::EnrichedPayload,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Feature::SearchByName => "SEARCH_BY_NAME",
            Feature::Mirroring => "MIRRORING",
            Feature::PartialPayments => "PARTIAL_PAYMENTS",
            Feature::MultiPayments => "MULTI_PAYMENTS",
            Feature::ServiceCharge => "SERVICE_CHARGE",
            Feature::EnrichedPayload => "ENRICHED_PAYLOAD",
            Feature::Other(other) => other,
        }
    }

    /// The wire value as a feature; an unknown value becomes `Other`.
    pub fn from_wire(text: &str) -> Feature {
        Feature::KNOWN
            .iter()
            .find(|f| f.as_str() == text)
            .cloned()
            .unwrap_or_else(|| Feature::Other(text.to_string()))
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Feature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Feature::from_wire(&s))
    }
}

/// A PMS provider as Lightspeed describes it (`pms-apiGetProvider`, which makes
/// no field required). Its `apiKey` is what Lightspeed sends in each charge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    #[serde(default, deserialize_with = "lenient_id")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    pub business_location_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub endpoint: Option<String>,
    #[serde(default, deserialize_with = "lenient_features")]
    pub features: Vec<Feature>,
    #[serde(default, deserialize_with = "lenient_secret")]
    pub api_key: Option<SecretString>,
}

/// One entry of a location's revenue centers (POS configurations).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RevenueCenter {
    /// Text, as the configuration's mapping keys are; the API sends an integer.
    #[serde(default, deserialize_with = "lenient_scalar_text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub name: Option<String>,
}

/// The body of `POST /pms/v1/providers`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewProvider {
    pub business_location_id: i64,
    pub name: String,
    pub endpoint: String,
    #[serde(serialize_with = "expose")]
    pub api_key: SecretString,
    /// Sent without duplicates (the API wants unique items), in order.
    #[serde(serialize_with = "unique")]
    pub features: Vec<Feature>,
}

/// The body of `PUT /pms/v1/providers/{id}`: every field is replaced.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUpdate {
    pub name: String,
    pub endpoint: String,
    #[serde(serialize_with = "expose")]
    pub api_key: SecretString,
    #[serde(serialize_with = "unique")]
    pub features: Vec<Feature>,
}

impl fmt::Debug for NewProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewProvider")
            .field("business_location_id", &self.business_location_id)
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("api_key", &"[redacted]")
            .field("features", &self.features)
            .finish()
    }
}

impl fmt::Debug for ProviderUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderUpdate")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("api_key", &"[redacted]")
            .field("features", &self.features)
            .finish()
    }
}

/// Lightspeed's error body (`pms-apiErrorResponse`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A status name such as `BAD_REQUEST` (the description types it as text).
    #[serde(default, deserialize_with = "lenient_scalar_text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "lenient_sub_exceptions")]
    pub api_sub_exceptions: Vec<SubException>,
}

/// One field-level complaint. Its `rejectedValue` is not kept: it may echo the
/// API key that was sent.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct SubException {
    #[serde(default, deserialize_with = "lenient_text")]
    pub field: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub message: Option<String>,
}

impl ErrorBody {
    /// `message; field: reason; field: reason`, one line, bounded.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(message) = self.message.as_deref().map(one_line)
            && !message.is_empty()
        {
            parts.push(message);
        }
        for sub in &self.api_sub_exceptions {
            let field = sub.field.as_deref().map(one_line).unwrap_or_default();
            let reason = sub.message.as_deref().map(one_line).unwrap_or_default();
            match (field.is_empty(), reason.is_empty()) {
                (true, true) => {}
                (false, true) => parts.push(field),
                (true, false) => parts.push(reason),
                (false, false) => parts.push(format!("{field}: {reason}")),
            }
        }
        if parts.is_empty()
            && let Some(status) = self.status.as_deref().map(one_line)
        {
            parts.push(status);
        }
        bounded(&parts.join("; "))
    }
}

/// Why a call did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad base URL or token: nothing was sent.
    #[error("{0}")]
    Config(String),
    /// 401 or 403: the token is missing its scope, expired or revoked.
    #[error(
        "Lightspeed refused the access token ({status}): {detail}; use a current token \
         with the scope `propertymanagement` for this environment"
    )]
    Unauthorized { status: u16, detail: String },
    #[error("Lightspeed found nothing ({status}): {detail}")]
    NotFound { status: u16, detail: String },
    /// Any other 4xx, or a 5xx, with Lightspeed's error body when it sent one.
    #[error("{}", describe_refusal(*status, body))]
    Refused { status: u16, body: ErrorBody },
    /// The request did not complete (connection, timeout).
    #[error("cannot reach Lightspeed: {0}")]
    Transport(String),
    /// A success status with a body that is not what the description says.
    #[error("unexpected answer from Lightspeed ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

impl Error {
    /// The HTTP status Lightspeed answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { status, .. }
            | Error::NotFound { status, .. }
            | Error::Refused { status, .. }
            | Error::Unexpected { status, .. } => Some(*status),
            Error::Config(_) | Error::Transport(_) => None,
        }
    }
}

fn describe_refusal(status: u16, body: &ErrorBody) -> String {
    let verb = if status >= 500 { "failed" } else { "refused" };
    let detail = body.describe();
    if detail.is_empty() {
        format!("Lightspeed {verb} ({status})")
    } else {
        format!("Lightspeed {verb} ({status}): {detail}")
    }
}

/// Lightspeed's PMS API at one base URL, with one access token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `base_url` is a server of the description (or a stand-in); `timeout` bounds
    /// each request as a whole.
    pub fn new(base_url: &str, token: &SecretString, timeout: Duration) -> Result<Client, Error> {
        let base = Url::parse(base_url.trim())
            .map_err(|e| Error::Config(format!("base URL `{}`: {e}", base_url.trim())))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "base URL `{base}` must be an http(s) URL"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::Config(
                "the base URL may not carry a user name or password".into(),
            ));
        }
        let token = token.expose_secret().trim();
        if token.is_empty() {
            return Err(Error::Config("the access token is empty".into()));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::Config("the access token holds characters a header cannot".into())
            })?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // An API answer is never a redirect; following one could carry the
            // token (or the API key in the body) somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chargebridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            authorization,
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /pms/v1/providers[?businessLocationId=…]`: the providers this OAuth
    /// client created (all its locations without a filter).
    pub async fn list_providers(
        &self,
        business_location_id: Option<i64>,
    ) -> Result<Vec<Provider>, Error> {
        let mut url = self.url(&["pms", "v1", "providers"]);
        if let Some(location) = business_location_id {
            url.query_pairs_mut()
                .append_pair("businessLocationId", &location.to_string());
        }
        self.call(Method::GET, url, None).await
    }

    /// `GET /pms/v1/providers/{id}`.
    pub async fn get_provider(&self, id: i64) -> Result<Provider, Error> {
        let url = self.url(&["pms", "v1", "providers", &id.to_string()]);
        self.call(Method::GET, url, None).await
    }

    /// `POST /pms/v1/providers`. A location has at most one provider.
    pub async fn create_provider(&self, provider: &NewProvider) -> Result<Provider, Error> {
        let url = self.url(&["pms", "v1", "providers"]);
        self.call(Method::POST, url, Some(json_body(provider)?))
            .await
    }

    /// `PUT /pms/v1/providers/{id}`: name, endpoint, apiKey and features replaced.
    pub async fn update_provider(
        &self,
        id: i64,
        update: &ProviderUpdate,
    ) -> Result<Provider, Error> {
        let url = self.url(&["pms", "v1", "providers", &id.to_string()]);
        self.call(Method::PUT, url, Some(json_body(update)?)).await
    }

    /// `DELETE /pms/v1/providers/{id}`; the answer is an integer (the id), kept
    /// when present.
    pub async fn delete_provider(&self, id: i64) -> Result<Option<i64>, Error> {
        let url = self.url(&["pms", "v1", "providers", &id.to_string()]);
        let (status, body) = self.send(Method::DELETE, url, None).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| Error::Unexpected {
            status,
            detail: format!("not JSON ({e})"),
        })?;
        Ok(id_of(&value))
    }

    /// `GET /pms/v1/business-locations/{businessLocationId}/revenue-centers`.
    pub async fn revenue_centers(
        &self,
        business_location_id: i64,
    ) -> Result<Vec<RevenueCenter>, Error> {
        let location = business_location_id.to_string();
        let url = self.url(&[
            "pms",
            "v1",
            "business-locations",
            &location,
            "revenue-centers",
        ]);
        self.call(Method::GET, url, None).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url.set_query(None);
        url
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let (status, bytes) = self.send(method, url, body).await?;
        // Through `Value`: the crate's numbers keep their precision, which the
        // derived readers of a typed struct would not see as numbers.
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Unexpected {
            status,
            detail: format!("not JSON ({e})"),
        })?;
        serde_json::from_value(value).map_err(|e| Error::Unexpected {
            status,
            detail: e.to_string(),
        })
    }

    /// One request; a 2xx answer's status and body, anything else as an `Error`.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), Error> {
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let bytes = crate::pms::transport::read_capped(response, MAX_BODY)
            .await
            .map_err(|e| transport(&e))?;
        match status {
            200..=299 => Ok((status, bytes)),
            401 | 403 => Err(Error::Unauthorized {
                status,
                detail: error_body(&bytes)
                    .map(|b| b.describe())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "no details".into()),
            }),
            404 => Err(Error::NotFound {
                status,
                detail: error_body(&bytes)
                    .map(|b| b.describe())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "no details".into()),
            }),
            _ => Err(Error::Refused {
                status,
                body: error_body(&bytes).unwrap_or_else(|| ErrorBody {
                    message: Some(text_excerpt(&bytes)).filter(|t| !t.is_empty()),
                    ..ErrorBody::default()
                }),
            }),
        }
    }
}

fn json_body<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Config(format!("cannot encode the request: {e}")))
}

/// A transport error in one line, as the PMS transport writes them (what failed,
/// host and path only, the innermost cause).
fn transport(e: &reqwest::Error) -> Error {
    Error::Transport(crate::pms::transport::describe(e))
}

/// Lightspeed's error body, if the answer is one.
fn error_body(bytes: &[u8]) -> Option<ErrorBody> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    if !value.is_object() {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The start of a body that is not Lightspeed's JSON (a proxy's page), one line.
fn text_excerpt(bytes: &[u8]) -> String {
    bounded(&one_line(&String::from_utf8_lossy(bytes)))
}

fn one_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// An integer, or a string of one.
fn id_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(id_of))
}

fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

fn lenient_scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn lenient_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(lenient_text(d)?.map(SecretString::from))
}

fn lenient_features<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Feature>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(Feature::from_wire)
            .collect(),
        _ => Vec::new(),
    })
}

fn lenient_sub_exceptions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SubException>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

fn unique<S: Serializer>(features: &[Feature], s: S) -> Result<S::Ok, S::Error> {
    let mut seen = Vec::with_capacity(features.len());
    for feature in features {
        if !seen.contains(&feature) {
            seen.push(feature);
        }
    }
    s.collect_seq(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_read_tolerantly() {
        let value = serde_json::json!({
            "id": "3012455645",
            "name": "chargebridge",
            "businessLocationId": 45454565682155_i64,
            "endpoint": null,
            "features": ["SEARCH_BY_NAME", "TELEPORT", 7],
            "apiKey": "k-1",
            "somethingNew": {"x": 1}
        });
        let p: Provider = serde_json::from_value(value).unwrap();
        assert_eq!(p.id, Some(3012455645));
        assert_eq!(p.business_location_id, Some(45454565682155));
        assert_eq!(p.endpoint, None);
        assert_eq!(
            p.features,
            vec![Feature::SearchByName, Feature::Other("TELEPORT".into())]
        );
        assert!(!format!("{p:?}").contains("k-1"));
    }

    #[test]
    fn error_bodies_read_as_one_line() {
        let body: ErrorBody = serde_json::from_value(serde_json::json!({
            "status": "BAD_REQUEST",
            "message": "Validation failed\n",
            "apiSubExceptions": [
                {"field": "endpoint", "rejectedValue": {"v": "secret"}, "message": "must be https"},
                "not an object",
                {"message": "only a reason"}
            ]
        }))
        .unwrap();
        assert_eq!(
            body.describe(),
            "Validation failed; endpoint: must be https; only a reason"
        );
        let e = Error::Refused { status: 400, body };
        assert!(
            e.to_string()
                .starts_with("Lightspeed refused (400): Validation failed")
        );
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn requests_send_unique_features_and_hide_the_key() {
        let p = NewProvider {
            business_location_id: 1,
            name: "n".into(),
            endpoint: "https://e".into(),
            api_key: SecretString::from("the-key"),
            features: vec![
                Feature::SearchByName,
                Feature::Mirroring,
                Feature::SearchByName,
            ],
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json["features"],
            serde_json::json!(["SEARCH_BY_NAME", "MIRRORING"])
        );
        assert_eq!(json["apiKey"], "the-key");
        assert!(!format!("{p:?}").contains("the-key"));
    }

    #[test]
    fn bad_base_urls_and_tokens_are_refused_before_sending() {
        let token = SecretString::from("t");
        for url in ["ftp://x", "not a url", "https://user:pw@host"] {
            assert!(matches!(
                Client::new(url, &token, DEFAULT_TIMEOUT),
                Err(Error::Config(_))
            ));
        }
        let bad = SecretString::from("line\nbreak");
        let err = Client::new(TRIAL_BASE_URL, &bad, DEFAULT_TIMEOUT).unwrap_err();
        assert!(!err.to_string().contains("break"));
    }

    #[test]
    fn urls_keep_a_base_path() {
        let token = SecretString::from("t");
        let c = Client::new("http://127.0.0.1:9/prefix/", &token, DEFAULT_TIMEOUT).unwrap();
        assert_eq!(
            c.url(&["pms", "v1", "providers", "5"]).as_str(),
            "http://127.0.0.1:9/prefix/pms/v1/providers/5"
        );
    }
}
