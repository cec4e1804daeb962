//! Small pieces shared by the adapters that talk JSON over HTTP to a hotel API:
//! time budgets, exact decimals on the wire, error text fit for staff, and the
//! origin of each folio item (which mapping key it came from).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use rust_decimal::Decimal;
use serde_json::Value;
use tokio::time::Instant;

use super::itemize::{FolioItem, ItemKind};
use crate::domain::Charge;

/// What is left until `deadline`, capped by the adapter's own `timeout`; `None`
/// when nothing is left.
pub(crate) fn budget(deadline: Instant, timeout: Duration) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left < Duration::from_millis(1) {
        return None;
    }
    Some(left.min(timeout))
}

/// An exact decimal as a JSON number (`serde_json`'s `arbitrary_precision` keeps
/// the digits as written: `66.0` stays `66.0`, never a binary float).
pub(crate) fn json_decimal(value: Decimal) -> Result<Value, String> {
    serde_json::Number::from_str(&value.to_string())
        .map(Value::Number)
        .map_err(|_| format!("{value} is not a JSON number"))
}

/// An unsigned integer from a JSON number or numeric string.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| n.to_string().parse().ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON scalar as text (ids arrive as numbers or strings).
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A transport error in one line, without the URL's query (no secrets travel in
/// URLs, but logs need not carry guest search terms either).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "broken answer"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!("{kind} ({}{})", url.host_str().unwrap_or(""), url.path()),
        None => kind.to_string(),
    }
}

/// Whether the request may have reached the PMS. A connection that was never
/// made cannot have applied anything; anything later (timeout, reset) may have.
pub(crate) fn maybe_sent(e: &reqwest::Error) -> bool {
    !e.is_connect() && !e.is_builder()
}

/// A 429/503's `Retry-After`: seconds (at most a day) or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
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

/// The `Location` of an answer, for the log of a redirect.
pub(crate) fn location(headers: &reqwest::header::HeaderMap) -> Option<&str> {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
}

/// A status that says chargebridge is set up wrong, not that the PMS refused the
/// charge: a redirect (3XX; never followed), `404 Not Found` (wrong base URL or
/// path), `405 Method Not Allowed` (wrong path), `415 Unsupported Media Type`
/// (wrong content type). Nothing was posted, so the caller classifies it as
/// unavailable (the journal keeps the charge for the worker and the operator);
/// storing a refusal would lose the charge for the whole retention. Logged here
/// at ERROR as a configuration problem. `None` for every other status.
///
/// `pms` names the system ("Mews", "OPERA", …), `what` the call ("orders/add").
pub(crate) fn setup_error(
    pms: &str,
    what: &str,
    status: u16,
    location: Option<&str>,
) -> Option<String> {
    let hint = match status {
        300..=399 => "the PMS redirected (not followed): check the base URL (scheme, host, path)",
        404 => "the PMS has no such path: check the base URL and path",
        405 => "the PMS does not allow this method there: check the base URL and path",
        415 => "the PMS refused the content type: check the adapter's content type",
        _ => return None,
    };
    tracing::error!(
        pms,
        call = what,
        status,
        location = location.unwrap_or(""),
        "configuration problem: {hint}; nothing was posted"
    );
    let mut detail = format!("{pms} {what} answered HTTP {status}: {hint}");
    if let Some(l) = location {
        detail.push_str(&format!(" (Location {l})"));
    }
    Some(detail)
}

/// PMS error text made fit for a POS screen: one line, no control characters,
/// no trailing period, bounded length (the API layer cuts it to 50 characters).
pub(crate) fn staff_text(raw: &str) -> String {
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let collapsed = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = collapsed.trim_end_matches(['.', ' ']);
    trimmed.chars().take(200).collect()
}

/// Where a folio item's codes come from, for messages and logs that name the
/// mapping key an operator has to add.
pub(crate) struct ItemOrigin {
    /// What staff call it: the accounting group ("Food"), "tips", …
    pub label: String,
    /// The tenant mapping key of its revenue / transaction code.
    pub revenue_key: String,
    /// The tenant mapping key of its tax code.
    pub tax_key: String,
}

/// The origin of each item of `folio_items(charge)`, in the same order.
pub(crate) fn item_origins(charge: &Charge, items: &[FolioItem]) -> Vec<ItemOrigin> {
    let line_origin = |line: &crate::domain::Line| {
        let group = line.accounting_group.as_ref();
        let group_key = group.and_then(|g| g.id.clone().or_else(|| g.name.clone()));
        let label = group
            .and_then(|g| g.name.clone().or_else(|| g.id.clone()))
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "restaurant sales".to_string());
        let revenue_key = match group_key {
            Some(k) => {
                format!("tenants.mapping.accounting_groups.\"{k}\" (or default_accounting_group)")
            }
            None => "tenants.mapping.default_accounting_group".to_string(),
        };
        let tax_key = match line
            .tax_lines
            .first()
            .and_then(|t| t.tax_id.clone().or_else(|| t.name.clone()))
        {
            Some(k) => format!("tenants.mapping.taxes.\"{k}\" (or default_tax)"),
            None => "tenants.mapping.default_tax".to_string(),
        };
        ItemOrigin {
            label,
            revenue_key,
            tax_key,
        }
    };
    let mut sale_lines = charge.lines.iter();
    items
        .iter()
        .map(|item| match item.kind {
            ItemKind::Sale => sale_lines
                .next()
                .map(line_origin)
                .unwrap_or_else(unmapped_sales),
            ItemKind::Consolidated => {
                let first = charge
                    .lines
                    .iter()
                    .find(|l| l.revenue_code.is_some())
                    .or_else(|| charge.lines.first());
                match first {
                    Some(line) => line_origin(line),
                    None => unmapped_sales(),
                }
            }
            ItemKind::ServiceCharge => ItemOrigin {
                label: "service charge".into(),
                revenue_key: "tenants.mapping.service_charge_code".into(),
                tax_key: "tenants.mapping.default_tax".into(),
            },
            ItemKind::Tip => ItemOrigin {
                label: "tips".into(),
                revenue_key: "tenants.mapping.gratuity_code".into(),
                tax_key: "tenants.mapping.default_tax".into(),
            },
        })
        .collect()
}

fn unmapped_sales() -> ItemOrigin {
    ItemOrigin {
        label: "restaurant sales".into(),
        revenue_key: "tenants.mapping.default_accounting_group".into(),
        tax_key: "tenants.mapping.default_tax".into(),
    }
}

/// `https://…` or `http://…`, as a base URL that paths are appended to.
pub(crate) fn base_url(raw: &str, key: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("{key}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!("{key} must be an http(s) URL"));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded (a reservation id from
/// the POS can never change the path).
pub(crate) fn join(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// A header value holding a credential, marked sensitive so that no debug output
/// of a request (reqwest's, a middleware's) prints it; `None` if not a valid value.
pub(crate) fn sensitive_header(text: &str) -> Option<reqwest::header::HeaderValue> {
    let mut value = reqwest::header::HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Room numbers are short and start with a digit ("101", "12B"); names do not.
pub(crate) fn looks_like_room(term: &str) -> bool {
    term.len() <= 10
        && !term.contains(char::is_whitespace)
        && term.chars().next().is_some_and(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use reqwest::header::{self, HeaderValue};

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

    use super::*;

    #[test]
    fn decimals_travel_as_exact_json_numbers() {
        let v = json_decimal(Decimal::new(-660, 1)).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "-66.0");
        let v = json_decimal(Decimal::from_str("0.10000000000000000001").unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "0.10000000000000000001");
    }

    #[test]
    fn staff_text_is_one_clean_line() {
        assert_eq!(
            staff_text("  Folio is\nclosed.\t "),
            "Folio is closed".to_string()
        );
    }

    #[test]
    fn room_numbers_and_names_are_told_apart() {
        assert!(looks_like_room("101"));
        assert!(looks_like_room("12B"));
        assert!(!looks_like_room("Doe"));
        assert!(!looks_like_room("Jane Doe"));
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
