//! `chargebridge validate`: offline checks of payload and fixture files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::domain::{Charge, IdempotencyKey, Tenant, Tenants};
use crate::error::ApiError;
use crate::pms::PmsRegistry;
use crate::replay::Fixture;

/// Every `*.json` below `paths`, sorted by name within each directory.
pub fn collect_json_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let (dirs, files): (Vec<_>, Vec<_>) = entries.into_iter().partition(|p| p.is_dir());
            out.extend(
                files
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "json")),
            );
            out.extend(collect_json_files(&dirs)?);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The payload bytes of a file: the file itself, or the request body of a
/// fixture (`body`, or `bodyBase64`).
pub fn payload_of(bytes: &[u8]) -> Vec<u8> {
    match Fixture::parse(bytes) {
        Ok(fixture) => fixture.body_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

/// Checks one payload; `Ok` carries a one-line summary.
pub fn check_payload(body: &[u8], tenants: &Tenants) -> Result<String, ApiError> {
    let wire = crate::lightspeed::parse_charge(body)?;
    let offline;
    let (tenant, note): (&Tenant, &str) = match tenants.find_by_key(wire.api_key.expose_secret()) {
        Some(t) => (t, ""),
        None => {
            offline = Tenant::offline("offline");
            (
                &offline,
                " (tenant not configured: default room-charge code IKPMS)",
            )
        }
    };
    let key = IdempotencyKey::parse(b"validate").map_err(|_| ApiError::Internal("key".into()))?;
    let charge = Charge::from_wire(&wire, tenant, &key, chrono::Utc::now())?;
    let refund = if charge.refund { " (refund)" } else { "" };
    Ok(match charge.rooms.as_slice() {
        [] if tenant.mirroring => {
            format!("no room-charge payment: acknowledged without posting (MIRRORING){note}")
        }
        [] => format!(
            "no room-charge payment: refused with 422 no_room_charge_payment \
             (unless the tenant has mirroring = true){note}"
        ),
        [room] => format!(
            "room charge {} {} to reservation {}{refund}{note}",
            room.amount, charge.currency, room.reservation_id
        ),
        rooms => format!(
            "room charges to {} reservations: {}{refund}{note}",
            rooms.len(),
            rooms
                .iter()
                .map(|r| format!("{} {} to {}", r.amount, charge.currency, r.reservation_id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

pub fn run(paths: &[PathBuf], config: Option<&Path>) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chargebridge: {e}");
            return ExitCode::from(2);
        }
    };
    let tenants = PmsRegistry::build(&settings.pms)
        .map_err(|e| e.to_string())
        .and_then(|pms| Tenants::build(&settings.tenants, &pms).map_err(|e| e.to_string()));
    let tenants = match tenants {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chargebridge: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match collect_json_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("chargebridge: {e}");
            return ExitCode::from(2);
        }
    };
    let mut tally = Tally::default();
    for file in &files {
        let verdict = match std::fs::read(file) {
            Ok(bytes) => check_file(&bytes, &tenants),
            Err(e) => Verdict::Invalid(e.to_string()),
        };
        let name = file.display();
        match verdict {
            Verdict::Valid(summary) => {
                tally.valid += 1;
                println!("ok       {name}: {summary}");
            }
            Verdict::InvalidAsExpected(why) => {
                tally.expected_invalid += 1;
                println!("ok       {name}: invalid as expected{why}");
            }
            Verdict::Skipped(why) => {
                tally.skipped += 1;
                println!("skipped  {name}: {why}");
            }
            Verdict::Invalid(why) => {
                tally.invalid += 1;
                println!("INVALID  {name}{why}");
            }
            Verdict::Mismatch(why) => {
                tally.invalid += 1;
                println!("MISMATCH {name}: {why}");
            }
        }
    }
    let skipped = if tally.skipped > 0 {
        format!(", {} skipped", tally.skipped)
    } else {
        String::new()
    };
    println!(
        "{} files, {} valid, {} invalid as expected, {} invalid{skipped}",
        files.len(),
        tally.valid,
        tally.expected_invalid,
        tally.invalid,
    );
    if tally.invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[derive(Default)]
struct Tally {
    valid: usize,
    expected_invalid: usize,
    invalid: usize,
    skipped: usize,
}

/// What `validate` says about one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A valid payload (the summary says what would be posted).
    Valid(String),
    /// A fixture expecting `invalid_payload` whose payload is indeed invalid
    /// (and, when the fixture names one, with the same message).
    InvalidAsExpected(String),
    /// Not a charge delivery (another method or path).
    Skipped(String),
    /// An invalid payload that nothing expects to be invalid.
    Invalid(String),
    /// The fixture's expectation disagrees with the offline verdict.
    Mismatch(String),
}

fn describe(e: &ApiError) -> String {
    match e {
        ApiError::InvalidPayload { path, detail, .. } if path.is_empty() => format!(": {detail}"),
        ApiError::InvalidPayload { path, detail, .. } => format!(" at {path}: {detail}"),
        other => format!(": {other}"),
    }
}

/// Checks a payload file or a fixture. A fixture whose `expect.code` is
/// `invalid_payload` is expected to be invalid: that is a pass, and being valid
/// is the failure. Other fixtures' bodies must be valid whatever status they
/// expect (a 406 or 415 fixture still carries a real receipt).
pub fn check_file(bytes: &[u8], tenants: &Tenants) -> Verdict {
    let fixture = match Fixture::parse(bytes) {
        Ok(f) => f,
        // Not even JSON: say what the server would say.
        Err(e) if e.starts_with("not JSON") => {
            return match check_payload(bytes, tenants) {
                Ok(summary) => Verdict::Valid(summary),
                Err(e) => Verdict::Invalid(describe(&e)),
            };
        }
        Err(e) => return Verdict::Invalid(format!(": not a valid fixture: {e}")),
    };
    if !fixture.is_charge() {
        return Verdict::Skipped(format!(
            "not a charge delivery ({} {})",
            fixture.request.method, fixture.request.path
        ));
    }
    let expect = fixture.expect.clone().unwrap_or_default();
    let expects_invalid = matches!(&expect.code, Some(Some(c)) if c == "invalid_payload");
    match (
        check_payload(&fixture.body_bytes(), tenants),
        expects_invalid,
    ) {
        (Ok(summary), false) => Verdict::Valid(summary),
        (Ok(summary), true) => Verdict::Mismatch(format!(
            "the fixture expects invalid_payload, but the payload is valid ({summary})"
        )),
        (Err(e), true) => match &expect.customer_error_message {
            Some(m) if *m != e.customer_message() => Verdict::Mismatch(format!(
                "invalid as expected, but the message would be {:?}, not {m:?}",
                e.customer_message()
            )),
            _ => Verdict::InvalidAsExpected(describe(&e)),
        },
        (Err(e), false) => Verdict::Invalid(describe(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");

    fn tenants() -> Tenants {
        let s = Settings::demo();
        let pms = PmsRegistry::build(&s.pms).unwrap();
        Tenants::build(&s.tenants, &pms).unwrap()
    }

    fn fixture(body: serde_json::Value, expect: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"request": {"body": body}, "expect": expect}))
            .unwrap()
    }

    #[test]
    fn plain_payloads_and_fixtures_are_checked() {
        let t = tenants();
        assert!(matches!(check_file(SEED.as_bytes(), &t), Verdict::Valid(s) if s.contains("67.0")));
        let seed: serde_json::Value = serde_json::from_str(SEED).unwrap();
        let f = fixture(
            seed.clone(),
            serde_json::json!({"status": 406, "code": "not_acceptable"}),
        );
        assert!(matches!(check_file(&f, &t), Verdict::Valid(_)));
        assert!(matches!(check_file(b"{", &t), Verdict::Invalid(_)));
    }

    #[test]
    fn expected_invalid_fixtures_pass_when_invalid() {
        let t = tenants();
        let invalid = fixture(
            serde_json::json!("{"),
            serde_json::json!({"status": 400, "code": "invalid_payload"}),
        );
        assert!(matches!(
            check_file(&invalid, &t),
            Verdict::InvalidAsExpected(_)
        ));
        let wrong_message = fixture(
            serde_json::json!("{"),
            serde_json::json!({"status": 400, "code": "invalid_payload", "customerErrorMessage": "nope"}),
        );
        assert!(matches!(
            check_file(&wrong_message, &t),
            Verdict::Mismatch(_)
        ));
        let seed: serde_json::Value = serde_json::from_str(SEED).unwrap();
        let valid = fixture(
            seed,
            serde_json::json!({"status": 400, "code": "invalid_payload"}),
        );
        assert!(matches!(check_file(&valid, &t), Verdict::Mismatch(_)));
        let unexpected = fixture(serde_json::json!("{"), serde_json::json!({"status": 200}));
        assert!(matches!(check_file(&unexpected, &t), Verdict::Invalid(_)));
    }

    #[test]
    fn other_endpoints_are_skipped() {
        let f = br#"{"request": {"method": "GET", "path": "/search?term=x"}}"#;
        assert!(matches!(check_file(f, &tenants()), Verdict::Skipped(_)));
    }
}
