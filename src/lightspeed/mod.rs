//! The wire side: Lightspeed's payloads as they arrive, before any business meaning.

pub mod providers;
pub mod shapes;
pub mod v1;

use serde::Deserialize;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::{ApiError, Problem};

/// What a delivery needs before its key is claimed: who sends it, and the
/// receipt's identifier for the log. Read without building the whole charge, so
/// that a replay is answered from the stored record without the full parse and
/// validation (which run only for a delivery that claims its key).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub api_key: secrecy::SecretString,
    #[serde(default)]
    pub business_external_reference: Option<String>,
    #[serde(default)]
    fisc_id: Option<String>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
}

impl Credentials {
    /// The credentials of a body that is a JSON object with a string `apiKey`;
    /// `None` for anything else (the full parse then names what is wrong).
    pub fn read(body: &[u8]) -> Option<Credentials> {
        serde_json::from_slice(body).ok()
    }

    /// As [`v1::ChargeTransaction::receipt_identifier`].
    pub fn receipt_identifier(&self) -> Option<&str> {
        receipt_identifier([&self.fisc_id, &self.uuid, &self.identifier])
    }
}

/// The first non-empty of `fiscId`, `uuid`, `identifier` (the documented
/// fallback of the deprecated `identifier`).
pub(crate) fn receipt_identifier(ids: [&Option<String>; 3]) -> Option<&str> {
    ids.into_iter()
        .flatten()
        .map(String::as_str)
        .find(|s| !s.is_empty())
}

/// Parses and structurally validates a Charge Transaction body (revision 1).
///
/// Errors name the exact field path (`transactions[1].amount`), from
/// `serde_path_to_error` for shape errors and from `validator` for rules.
pub fn parse_charge(body: &[u8]) -> Result<v1::ChargeTransaction, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::unreadable(format!("body is not UTF-8 (byte {})", e.valid_up_to()))
    })?;
    match text.trim_start().as_bytes().first() {
        None => return Err(ApiError::unreadable("empty body")),
        Some(b'{') => {}
        Some(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() => {
            return Err(ApiError::unreadable("malformed JSON"));
        }
        Some(_) => return Err(ApiError::unreadable("expected a JSON object")),
    }
    // Fast path without path tracking; only a failure is parsed again, with
    // `serde_path_to_error`, to name the field (errors are rare, parses are not).
    let mut de = serde_json::Deserializer::from_str(text);
    if let Ok(charge) = v1::ChargeTransaction::deserialize(&mut de)
        && de.end().is_ok()
    {
        return check_rules(charge);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let charge: v1::ChargeTransaction = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error has no field to blame (the path would read `?` or `.`).
        let syntax = matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        );
        let path = if path == "." || syntax {
            String::new()
        } else {
            path
        };
        // serde quotes the offending value (`invalid type: integer `123``); for
        // the API key that value is a credential, so only its kind is said.
        if path == "apiKey" && inner.classify() == serde_json::error::Category::Data {
            return ApiError::invalid(path, "must be a string");
        }
        let detail = describe_json_error(&inner);
        let problem = if syntax || detail.starts_with("duplicate field") {
            Problem::Unreadable
        } else if detail.starts_with("missing field") {
            Problem::Missing
        } else {
            Problem::Invalid
        };
        ApiError::payload(problem, path, detail)
    })?;
    de.end()
        .map_err(|e| ApiError::unreadable(describe_json_error(&e)))?;
    check_rules(charge)
}

/// Size bounds and `validator` rules, errors naming the field.
fn check_rules(charge: v1::ChargeTransaction) -> Result<v1::ChargeTransaction, ApiError> {
    charge
        .check_sizes()
        .map_err(|(path, detail)| ApiError::payload(Problem::TooLarge, path, detail))?;
    charge.validate().map_err(|errors| {
        let (path, detail) = first_validation_error(&errors);
        ApiError::invalid(path, detail)
    })?;
    Ok(charge)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        }
        // Drop serde_json's position suffix: the path says where.
        Category::Data | Category::Io => {
            let text = e.to_string();
            match text.rfind(" at line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// The first failing rule as (`camelCase.path[i]`, description).
fn first_validation_error(errors: &ValidationErrors) -> (String, String) {
    fn walk(errors: &ValidationErrors, prefix: &str) -> Option<(String, String)> {
        for (field, kind) in errors.errors() {
            let name = camel_case(field);
            let here = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            match kind {
                ValidationErrorsKind::Field(list) => {
                    if let Some(err) = list.first() {
                        let detail = match (err.code.as_ref(), err.params.get("max")) {
                            ("length", Some(max)) => format!("longer than {max}"),
                            ("length", None) => "too short".to_string(),
                            (code, _) => code.to_string(),
                        };
                        return Some((here, detail));
                    }
                }
                ValidationErrorsKind::Struct(inner) => {
                    if let Some(found) = walk(inner, &here) {
                        return Some(found);
                    }
                }
                ValidationErrorsKind::List(items) => {
                    for (index, inner) in items {
                        if let Some(found) = walk(inner, &format!("{here}[{index}]")) {
                            return Some(found);
                        }
                    }
                }
            }
        }
        None
    }
    walk(errors, "").unwrap_or_else(|| (String::new(), "failed validation".to_string()))
}

/// `business_external_reference` → `businessExternalReference` (the wire name).
fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for ch in snake.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.push(ch.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    match out.as_str() {
        "lineType" | "chargeType" => "type".to_string(),
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../fixtures/payloads/seed-example.json");

    fn error_of(body: &str) -> (String, String) {
        match parse_charge(body.as_bytes()) {
            Err(ApiError::InvalidPayload { path, detail, .. }) => (path, detail),
            other => panic!("expected a payload error, got {other:?}"),
        }
    }

    #[test]
    fn seed_example_parses_with_every_field() {
        let c = parse_charge(SEED.as_bytes()).unwrap();
        assert_eq!(
            c.business_external_reference.as_deref(),
            Some("quickbooks-123")
        );
        assert_eq!(
            c.revenue_center_id.as_ref().unwrap().as_str(),
            "94489280528"
        );
        assert_eq!(c.transactions[0].amount.unwrap().to_string(), "20.0");
        assert_eq!(c.transactions[0].tax_lines.len(), 1);
        assert_eq!(c.transactions[0].line_type, Some(v1::LineType::Sale));
        assert_eq!(c.payments[0].amount.unwrap().to_string(), "66.0");
        assert_eq!(
            c.payments[0].reservation_id.as_ref().unwrap().as_str(),
            "001"
        );
        assert_eq!(
            c.service_charge.as_ref().unwrap().charge_type,
            Some(v1::ServiceChargeType::Untaxed)
        );
        assert_eq!(c.receipt_identifier(), Some("A1234.5"));
    }

    #[test]
    fn unknown_fields_and_enum_values_are_tolerated() {
        let body = SEED
            .replace("\"Sale\"", "\"GiftCard\"")
            .replace("\"UNTAXED\"", "\"MANDATORY\"")
            .replacen('{', r#"{"futureField": {"nested": [1, 2.5]}, "#, 1);
        let c = parse_charge(body.as_bytes()).unwrap();
        assert_eq!(
            c.transactions[0].line_type,
            Some(v1::LineType::Other("GiftCard".into()))
        );
        assert_eq!(
            c.service_charge.unwrap().charge_type,
            Some(v1::ServiceChargeType::Other("MANDATORY".into()))
        );
    }

    #[test]
    fn identifier_falls_back_to_uuid_then_identifier() {
        let body = r#"{"businessExternalReference":"b","apiKey":"k","uuid":"U","identifier":"I"}"#;
        assert_eq!(
            parse_charge(body.as_bytes()).unwrap().receipt_identifier(),
            Some("U")
        );
        let body = r#"{"businessExternalReference":"b","apiKey":"k","identifier":"I"}"#;
        assert_eq!(
            parse_charge(body.as_bytes()).unwrap().receipt_identifier(),
            Some("I")
        );
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let body = r#"{"businessExternalReference":"b","apiKey":"k",
            "transactions":[{"amount":1},{"amount":true}]}"#;
        let (path, _) = error_of(body);
        assert_eq!(path, "transactions[1].amount");
    }

    #[test]
    fn rule_errors_name_the_field_path() {
        let long = "x".repeat(2000);
        let body = format!(
            r#"{{"businessExternalReference":"b","apiKey":"k","payments":[{{}},{{"methodName":"{long}"}}]}}"#
        );
        let (path, detail) = error_of(&body);
        assert_eq!(path, "payments[1].methodName");
        assert!(detail.contains("longer"), "{detail}");
    }

    #[test]
    fn syntax_errors_and_missing_fields_are_payload_errors() {
        assert_eq!(
            error_of("{"),
            (String::new(), "malformed JSON at line 1 column 1".into())
        );
        assert_eq!(error_of(r#"{"name": "x", "payments": [{"#).0, "");
        assert!(error_of("[]").1.contains("object"));
        assert!(error_of("42").1.contains("object"));
        assert!(
            error_of(r#"{"businessExternalReference":"b"}"#)
                .1
                .contains("apiKey")
        );
        // The tenant is found by apiKey: the reference may be left out.
        assert!(parse_charge(br#"{"apiKey":"k"}"#).is_ok());
        assert!(
            error_of(r#"{"businessExternalReference":"b","apiKey":"k"} x"#)
                .1
                .contains("malformed")
        );
        let (_, detail) = error_of("\u{feff}");
        assert!(!detail.is_empty());
    }

    #[test]
    fn an_api_key_of_the_wrong_type_is_not_quoted_back() {
        for key in ["98765432123", "-4.5e7", "true"] {
            let (path, detail) = error_of(&format!(
                r#"{{"businessExternalReference":"b","apiKey":{key}}}"#
            ));
            assert_eq!(
                (path.as_str(), detail.as_str()),
                ("apiKey", "must be a string")
            );
        }
    }

    #[test]
    fn duplicate_known_fields_are_refused() {
        let (_, detail) = error_of(
            r#"{"businessExternalReference":"b","businessExternalReference":"c","apiKey":"k"}"#,
        );
        assert!(detail.contains("duplicate"), "{detail}");
    }
}
