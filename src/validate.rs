//! `chargebridge validate`: offline checks of payload and fixture files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Settings;
use crate::domain::{Charge, IdempotencyKey, Tenant, Tenants};
use crate::error::ApiError;
use crate::pms::PmsRegistry;

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

/// The payload bytes of a file: the file itself, or `request.body` of a fixture.
pub fn payload_of(bytes: &[u8]) -> Vec<u8> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(serde_json::Value::Object(request)) = map.get("request")
        && let Some(body) = request.get("body")
    {
        return match body {
            serde_json::Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec(other).unwrap_or_default(),
        };
    }
    bytes.to_vec()
}

/// Checks one payload; `Ok` carries a one-line summary.
pub fn check_payload(body: &[u8], tenants: &Tenants) -> Result<String, ApiError> {
    let wire = crate::lightspeed::parse_charge(body)?;
    let offline;
    let (tenant, note): (&Tenant, &str) = match tenants.find(&wire.business_external_reference) {
        Some(t) => (t, ""),
        None => {
            offline = Tenant::offline(&wire.business_external_reference);
            (
                &offline,
                " (tenant not configured: default room-charge code IKPMS)",
            )
        }
    };
    let key = IdempotencyKey::parse(b"validate").map_err(|_| ApiError::Internal("key".into()))?;
    let charge = Charge::from_wire(&wire, tenant, &key, chrono::Utc::now())?;
    Ok(match &charge.room {
        Some(room) => format!(
            "room charge {} {} to reservation {}{}{}",
            room.amount,
            charge.currency,
            room.reservation_id,
            if charge.refund { " (refund)" } else { "" },
            note
        ),
        None => format!("no room-charge payment: acknowledged without posting{note}"),
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
    let mut invalid = 0;
    for file in &files {
        let result = std::fs::read(file)
            .map_err(|e| ApiError::invalid("", e.to_string()))
            .and_then(|bytes| check_payload(&payload_of(&bytes), &tenants));
        match result {
            Ok(summary) => println!("ok       {}: {summary}", file.display()),
            Err(ApiError::InvalidPayload { path, detail }) => {
                invalid += 1;
                let at = if path.is_empty() {
                    String::new()
                } else {
                    format!(" at {path}")
                };
                println!("INVALID  {}{at}: {detail}", file.display());
            }
            Err(e) => {
                invalid += 1;
                println!("INVALID  {}: {e}", file.display());
            }
        }
    }
    println!(
        "{} files, {} valid, {} invalid",
        files.len(),
        files.len() - invalid,
        invalid
    );
    if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
