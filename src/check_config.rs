//! `chargebridge check-config`: validates a configuration the way `serve` would
//! load it, says where each setting that matters came from (file, environment,
//! secret source or default; never a secret's value), resolves env- and
//! file-provided secrets, and tries every dependency.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::secret::Place;
use crate::config::{Provenance, Settings, StoreKind};
use crate::domain::Tenants;
use crate::idempotency::redis::{RedisOptions, RedisStore};
use crate::pms::PmsRegistry;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(config: Option<&Path>) -> ExitCode {
    let source = config.map_or("embedded defaults".to_string(), |p| p.display().to_string());
    println!("configuration: {source}");
    let (settings, provenance) = match Settings::load_with_provenance(config, std::env::vars()) {
        Ok(loaded) => loaded,
        Err(e) => {
            // One problem a line, under the count.
            let text = e.to_string();
            let mut lines = text.lines();
            println!("  FAIL  {}", lines.next().unwrap_or_default());
            for line in lines {
                println!("        {}", line.trim_start());
            }
            return ExitCode::from(2);
        }
    };
    println!("  ok    syntax, keys and durations");
    for line in sources(&settings, &provenance) {
        println!("  from  {line}");
    }
    let mut failures = 0;
    let pms = match PmsRegistry::build(&settings.pms) {
        Ok(p) => p,
        Err(e) => {
            println!("  FAIL  pms: {e}");
            return ExitCode::from(2);
        }
    };
    for (name, pms_settings) in &settings.pms {
        let kind = pms.get(name).map_or("?", |p| p.kind());
        for note in pms_settings.notes() {
            println!("  note  pms {name} ({kind}): {note}");
        }
    }
    match Tenants::build(&settings.tenants, &pms) {
        Ok(_) => {
            for t in &settings.tenants {
                let key_source = t
                    .api_key_sources()
                    .required_origin()
                    .map_or("config", |o| o.as_str());
                println!(
                    "  ok    tenant {} → pms {} ({}, room codes {}, api key from {key_source})",
                    t.id_or_placeholder(),
                    t.pms,
                    t.currency,
                    t.room_charge_method_codes.join(",")
                );
                let mode = match t.revenue_posting {
                    crate::config::RevenuePosting::Off => None,
                    crate::config::RevenuePosting::PerReceipt => Some("per_receipt"),
                    crate::config::RevenuePosting::Daily => Some("daily"),
                };
                if let Some(mode) = mode {
                    let accounts = t.mapping.revenue_accounts.len()
                        + usize::from(t.mapping.default_revenue_account.is_some());
                    if accounts == 0 {
                        println!(
                            "  note  tenant {}: revenue_posting = \"{mode}\" but no revenue_accounts or default_revenue_account: no revenue will be posted",
                            t.id_or_placeholder()
                        );
                    } else if !t.mirroring {
                        println!(
                            "  note  tenant {}: revenue_posting = \"{mode}\" without mirroring: only receipts paid partly to a room arrive",
                            t.id_or_placeholder()
                        );
                    }
                    if t.mapping.posts_payments() {
                        let methods: Vec<String> = t
                            .mapping
                            .payment_methods
                            .iter()
                            .map(|(k, v)| format!("{k}→{v}"))
                            .collect();
                        println!(
                            "  note  tenant {}: the receipts' payments settle the house accounts (payment_methods {}; default {})",
                            t.id_or_placeholder(),
                            if methods.is_empty() {
                                "none".to_string()
                            } else {
                                methods.join(", ")
                            },
                            t.mapping
                                .default_payment_method
                                .as_deref()
                                .unwrap_or("the Lightspeed code")
                        );
                    } else {
                        println!(
                            "  note  tenant {}: no payment_methods mapped: house accounts carry the revenue unsettled",
                            t.id_or_placeholder()
                        );
                    }
                    if mode == "daily" {
                        println!(
                            "  note  tenant {}: daily revenue summaries are posted {} after each business date ends ({} {})",
                            t.id_or_placeholder(),
                            humantime::format_duration(t.revenue_summary_delay),
                            t.business_day_starts,
                            t.time_zone
                        );
                    }
                }
            }
        }
        Err(e) => {
            failures += 1;
            println!("  FAIL  {e}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            println!("  FAIL  cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        if settings.idempotency.store == StoreKind::Redis {
            let origin = settings.idempotency.redis_url_origin();
            match settings.idempotency.redis_url().and_then(|url| {
                let options =
                    RedisOptions::from_settings(&settings.idempotency).map_err(|e| e.0)?;
                RedisStore::with_options(&url, &options).map_err(|e| e.0)
            }) {
                Ok(store) => match store.safety_report().await {
                    Ok(report) => {
                        println!(
                            "  ok    redis reachable{} (url from {origin})",
                            store.describe()
                        );
                        for problem in report.problems() {
                            println!("  WARN  redis: {problem}");
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        println!("  FAIL  redis: {e}");
                    }
                },
                Err(e) => {
                    failures += 1;
                    println!("  FAIL  redis: {e}");
                }
            }
            let queues = settings
                .tenants
                .iter()
                .any(|t| t.when_pms_unavailable == crate::config::WhenPmsUnavailable::Queue);
            match &settings.journal.spool_dir {
                Some(dir) => match crate::journal::spool::Spool::open(dir) {
                    Ok(_) => println!("  ok    journal spool {dir} (queued charges also kept on local disk)"),
                    Err(e) => {
                        failures += 1;
                        println!("  FAIL  {e}");
                    }
                },
                None if queues => println!(
                    "  note  queue tenants without [journal] spool_dir: a queued charge lives only in Redis until it is posted"
                ),
                None => {}
            }
        } else {
            println!("  ok    memory store (single process only)");
            if settings.journal.spool_dir.is_some() {
                println!("  note  journal.spool_dir is not used with the memory store");
            }
        }
        for (name, adapter) in pms.iter() {
            let started = Instant::now();
            match tokio::time::timeout(PROBE_TIMEOUT, adapter.health()).await {
                Ok(Ok(())) => println!(
                    "  ok    pms {name} ({}) healthy in {} ms",
                    adapter.kind(),
                    started.elapsed().as_millis()
                ),
                Ok(Err(e)) => {
                    failures += 1;
                    println!("  FAIL  pms {name} ({}): {e}", adapter.kind());
                }
                Err(_) => {
                    failures += 1;
                    println!(
                        "  FAIL  pms {name} ({}): no answer within {PROBE_TIMEOUT:?}",
                        adapter.kind()
                    );
                }
            }
        }
    });
    if failures == 0 {
        println!("configuration ok");
        ExitCode::SUCCESS
    } else {
        println!("{failures} problem(s)");
        ExitCode::from(1)
    }
}

/// Where each setting that matters came from, one line each, aligned; secrets
/// are named by their source only.
fn sources(settings: &Settings, provenance: &Provenance) -> Vec<String> {
    let mut rows: Vec<(String, String)> = vec![
        (
            format!("server.listen = {:?}", settings.server.listen),
            provenance.layer(&["server", "listen"]).to_string(),
        ),
        (
            format!(
                "server.request_deadline = {}",
                humantime::format_duration(settings.server.request_deadline)
            ),
            provenance
                .layer(&["server", "request_deadline"])
                .to_string(),
        ),
        (
            format!(
                "idempotency.store = {}",
                match settings.idempotency.store {
                    StoreKind::Memory => "memory",
                    StoreKind::Redis => "redis",
                }
            ),
            provenance.layer(&["idempotency", "store"]).to_string(),
        ),
        (
            "idempotency.redis_url".to_string(),
            match provenance.secret(&["idempotency"], "redis_url") {
                Place::Unset => "default (a local Redis)".to_string(),
                place => place.to_string(),
            },
        ),
    ];
    // Only where it is set: most deployments have no Sentinel.
    match provenance.secret(&["idempotency"], "sentinel_password") {
        Place::Unset => {}
        place => rows.push((
            "idempotency.sentinel_password".to_string(),
            place.to_string(),
        )),
    }
    for (i, t) in settings.tenants.iter().enumerate() {
        let index = i.to_string();
        rows.push((
            format!("tenant {} api key", t.id_or_placeholder()),
            provenance
                .secret(&["tenants", &index], "api_key")
                .to_string(),
        ));
    }
    for name in settings.pms.keys() {
        for (key, place) in provenance.pms_secrets(name) {
            rows.push((format!("pms {name} {key}"), place.to_string()));
        }
    }
    let width = rows
        .iter()
        .map(|(what, _)| what.chars().count())
        .max()
        .unwrap_or(0);
    rows.into_iter()
        .map(|(what, from)| format!("{what:<width$}  {from}"))
        .collect()
}
