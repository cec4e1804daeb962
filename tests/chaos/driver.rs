//! What Lightspeed and the staff do: deliver each charge, re-send some of them
//! (at the same time, or later), and retry every delivery that did not get a
//! final answer, with the same key, until it does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::Value;

use crate::rng::Rng;

const SEED_PAYLOAD: &str = include_str!("../../fixtures/payloads/seed-example.json");
pub const TENANT: &str = "quickbooks-123";
pub const API_KEY: &str = "quickbooks-key-345";

/// One guest's charge: a key and the body every delivery of it carries.
pub struct Charge {
    pub key: String,
    pub amount: Decimal,
    pub body: Vec<u8>,
}

/// The deliveries to send, in launch order; a launch with two entries sends
/// both at once (a concurrent duplicate).
pub struct Plan {
    pub charges: Vec<Charge>,
    pub launches: Vec<Vec<usize>>,
    pub concurrent_duplicates: usize,
    pub later_duplicates: usize,
}

impl Plan {
    pub fn deliveries(&self) -> usize {
        self.launches.iter().map(Vec::len).sum()
    }
}

pub fn plan(deliveries: usize, duplicate_share: f64, rng: &mut Rng, run_id: &str) -> Plan {
    let duplicates = ((deliveries as f64) * duplicate_share).round() as usize;
    let unique = deliveries - duplicates;
    let charges: Vec<Charge> = (0..unique).map(|i| charge(i, rng, run_id)).collect();

    // Slots order the launches: an original at i * 1000, a later duplicate
    // somewhere within the next few hundred originals.
    let mut slots: Vec<(u64, Vec<usize>)> =
        (0..unique).map(|i| (i as u64 * 1000, vec![i])).collect();
    let mut concurrent = 0;
    let mut later = 0;
    for _ in 0..duplicates {
        let i = rng.below(unique as u64) as usize;
        if rng.chance(0.5) {
            slots[i].1.push(i);
            concurrent += 1;
        } else {
            let slot = (i as u64 + 1 + rng.below(300)) * 1000 + 1 + rng.below(998);
            slots.push((slot, vec![i]));
            later += 1;
        }
    }
    slots.sort_by_key(|(slot, _)| *slot);
    Plan {
        charges,
        launches: slots.into_iter().map(|(_, l)| l).collect(),
        concurrent_duplicates: concurrent,
        later_duplicates: later,
    }
}

fn charge(i: usize, rng: &mut Rng, run_id: &str) -> Charge {
    let cents = 500 + rng.below(99_500);
    let amount = Decimal::new(cents as i64, 2);
    let mut body: Value = serde_json::from_str(SEED_PAYLOAD).expect("seed payload is JSON");
    let number = |text: String| serde_json::from_str::<Value>(&text).expect("a JSON number");
    body["receiptId"] = Value::from(format!("R{i}.{run_id}"));
    body["fiscId"] = Value::from(format!("F{i}"));
    body["transactions"][0]["amount"] = number(amount.to_string());
    body["payments"][0]["amount"] = number(amount.to_string());
    body["payments"][0]["reservationId"] = Value::from(format!("RES-{}", 1000 + i % 400));
    // The seed's tip (1.0) comes on top of the payment amount (the default reading).
    let tip: Decimal = body["payments"][0]["gratuity"]
        .to_string()
        .parse()
        .expect("the seed's gratuity is a decimal");
    Charge {
        key: format!("chaos-{run_id}-{i:06}"),
        amount: amount + tip,
        body: serde_json::to_vec(&body).expect("serializable"),
    }
}

/// The answer a delivery ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Posted {
        pms_reference: String,
    },
    Refused,
    /// Any other final 4XX: not expected from valid payloads.
    Unexpected {
        status: u16,
        code: String,
    },
}

#[derive(Debug, Default)]
pub struct Counters {
    pub attempts: AtomicUsize,
    pub answered_500: AtomicUsize,
    pub answered_409: AtomicUsize,
    pub other_transient: AtomicUsize,
    pub connection_errors: AtomicUsize,
}

pub struct Outcome {
    pub charge: usize,
    pub answer: Option<Final>,
}

/// Delivers one charge until it gets a final answer or `give_up` passes.
pub async fn deliver(
    client: &reqwest::Client,
    targets: &[String],
    first_target: usize,
    charge: &Charge,
    counters: &Counters,
    give_up: Instant,
) -> Option<Final> {
    let mut attempt = 0;
    loop {
        let target = &targets[(first_target + attempt) % targets.len()];
        attempt += 1;
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        match send(client, target, charge).await {
            Ok((200, body)) => {
                let pms_reference = body["pmsReference"].as_str().unwrap_or_default();
                return Some(Final::Posted {
                    pms_reference: pms_reference.to_string(),
                });
            }
            Ok((409, _)) => {
                counters.answered_409.fetch_add(1, Ordering::Relaxed);
            }
            Ok((408 | 429, _)) => {
                counters.other_transient.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status @ 400..=499, body)) => {
                let code = body["code"].as_str().unwrap_or_default().to_string();
                return Some(if status == 422 && code == "pms_rejected" {
                    Final::Refused
                } else {
                    Final::Unexpected { status, code }
                });
            }
            Ok((500, _)) => {
                counters.answered_500.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                counters.other_transient.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counters.connection_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if Instant::now() >= give_up {
            return None;
        }
        // Staff press "retry" after a moment; a little spread avoids lockstep.
        let pause = 50 + (attempt as u64 * 37 + charge.amount.mantissa() as u64) % 150;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

async fn send(
    client: &reqwest::Client,
    target: &str,
    charge: &Charge,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(target)
        .header("content-type", "application/json")
        .header("x-lightspeed-idempotency-key", &charge.key)
        .body(charge.body.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Sends the whole plan with at most `concurrency` deliveries in flight;
/// `progress` counts launches started (the chaos events watch it).
pub async fn run(
    plan: Arc<Plan>,
    targets: Arc<Vec<String>>,
    concurrency: usize,
    counters: Arc<Counters>,
    progress: Arc<AtomicUsize>,
    give_up_after: Duration,
) -> Vec<Outcome> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("http client");
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(plan.deliveries());
    let mut delivery = 0usize;
    for launch in 0..plan.launches.len() {
        let needed = plan.launches[launch].len() as u32;
        let held = permits
            .clone()
            .acquire_many_owned(needed)
            .await
            .expect("semaphore open");
        let shared_permit = Arc::new(held);
        for &i in &plan.launches[launch] {
            let (plan, targets, counters, client, permit) = (
                plan.clone(),
                targets.clone(),
                counters.clone(),
                client.clone(),
                shared_permit.clone(),
            );
            let first_target = delivery;
            delivery += 1;
            tasks.push(tokio::spawn(async move {
                let give_up = Instant::now() + give_up_after;
                let answer = deliver(
                    &client,
                    &targets,
                    first_target,
                    &plan.charges[i],
                    &counters,
                    give_up,
                )
                .await;
                drop(permit);
                Outcome { charge: i, answer }
            }));
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("delivery task"));
    }
    outcomes
}
