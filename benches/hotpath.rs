//! CPU cost of the request path's pure parts, per payload size: the typed parse,
//! the conversion to a domain `Charge`, and the canonical fingerprint. No
//! network, so the numbers move only with the code (the load benchmark measures
//! the whole service). `cargo bench --bench hotpath`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chargebridge::domain::{Charge, IdempotencyKey, Tenant};
use chargebridge::idempotency::fingerprint::fingerprint;
use chargebridge::lightspeed::parse_charge;

const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");

fn payload_with_lines(lines: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(SEED).expect("seed is JSON");
    let line = v["transactions"][0].clone();
    v["transactions"] = serde_json::Value::Array(vec![line; lines]);
    serde_json::to_string(&v).expect("serializable")
}

/// Mean time of `f` over enough runs to fill about half a second.
fn time(mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    let mut runs = 0u32;
    while started.elapsed() < Duration::from_millis(500) || runs < 10 {
        f();
        runs += 1;
    }
    started.elapsed() / runs
}

fn main() {
    let tenant = Tenant::offline("quickbooks-123");
    let key = IdempotencyKey::parse(b"bench-key").expect("a valid key");
    println!("| lines | bytes | parse | to Charge | fingerprint |");
    println!("|---:|---:|---:|---:|---:|");
    for lines in [1, 50, 500] {
        let body = payload_with_lines(lines);
        let wire = parse_charge(body.as_bytes()).expect("the payload parses");
        let parse = time(|| {
            black_box(parse_charge(black_box(body.as_bytes())).is_ok());
        });
        let convert = time(|| {
            black_box(Charge::from_wire(&wire, &tenant, &key, chrono::Utc::now()).is_ok());
        });
        let fp = time(|| {
            black_box(fingerprint(black_box(body.as_bytes())));
        });
        println!(
            "| {lines} | {} | {parse:.1?} | {convert:.1?} | {fp:.1?} |",
            body.len()
        );
    }
}
