//! What Lightspeed and the staff do: deliver each charge, re-send some of them
//! (at the same time, or later), and retry every delivery that did not get a
//! final answer, with the same key, until it does. Except for the charges drawn
//! to be *closed*: like real Lightspeed, the POS closes the order at the first
//! answer that is not final and never sends that charge again (no retry, no
//! later re-send); only the journal's worker can still settle it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chargebridge::config::WhenPmsUnavailable;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::rng::Rng;

const SEED_PAYLOAD: &str = include_str!("../../fixtures/payloads/seed-example.json");

/// One tenant of the run.
pub struct TenantDef {
    pub id: &'static str,
    pub api_key: &'static str,
    pub mode: WhenPmsUnavailable,
}

/// Two tenants on the same PMS: one tells the POS "failed", one queues.
pub const TENANTS: [TenantDef; 2] = [
    TenantDef {
        id: "chaos-fail",
        api_key: "chaos-fail-key-0001",
        mode: WhenPmsUnavailable::Fail,
    },
    TenantDef {
        id: "chaos-queue",
        api_key: "chaos-queue-key-0002",
        mode: WhenPmsUnavailable::Queue,
    },
];

/// Share of the charges whose order the POS closes at the first answer that is
/// not final (never retried, never re-sent).
pub const CLOSE_SHARE: f64 = 0.40;

/// One guest's charge: a key and the body every delivery of it carries.
pub struct Charge {
    pub key: String,
    pub amount: Decimal,
    pub body: Vec<u8>,
    /// Index into [`TENANTS`].
    pub tenant: usize,
    /// Drawn: the POS closes the order at the first answer that is not final.
    pub closes_on_failure: bool,
    /// Set at run time once the POS closed the order (later re-sends are skipped).
    pub closed: AtomicBool,
    /// When the last answer (or connection error) of any delivery came back.
    pub last_reply: Mutex<Option<Instant>>,
}

impl Charge {
    pub fn tenant(&self) -> &'static TenantDef {
        &TENANTS[self.tenant]
    }

    fn note_reply(&self) {
        let now = Instant::now();
        let mut last = self.last_reply.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t < now) {
            *last = Some(now);
        }
    }

    pub fn last_reply(&self) -> Option<Instant> {
        *self.last_reply.lock().unwrap_or_else(|p| p.into_inner())
    }
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
    let tenant = rng.below(TENANTS.len() as u64) as usize;
    let closes_on_failure = rng.chance(CLOSE_SHARE);
    let cents = 500 + rng.below(99_500);
    let amount = Decimal::new(cents as i64, 2);
    let mut body: Value = serde_json::from_str(SEED_PAYLOAD).expect("seed payload is JSON");
    let number = |text: String| serde_json::from_str::<Value>(&text).expect("a JSON number");
    body["receiptId"] = Value::from(format!("R{i}.{run_id}"));
    body["fiscId"] = Value::from(format!("F{i}"));
    body["transactions"][0]["amount"] = number(amount.to_string());
    body["payments"][0]["amount"] = number(amount.to_string());
    body["payments"][0]["reservationId"] = Value::from(format!("RES-{}", 1000 + i % 400));
    body["apiKey"] = Value::from(TENANTS[tenant].api_key);
    // The seed's tip (1.0) comes on top of the payment amount (the default reading).
    let tip: Decimal = body["payments"][0]["gratuity"]
        .to_string()
        .parse()
        .expect("the seed's gratuity is a decimal");
    Charge {
        key: format!("chaos-{run_id}-{i:06}"),
        amount: amount + tip,
        body: serde_json::to_vec(&body).expect("serializable"),
        tenant,
        closes_on_failure,
        closed: AtomicBool::new(false),
        last_reply: Mutex::new(None),
    }
}

/// The answer a delivery ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Posted {
        pms_reference: String,
    },
    /// 200 `{"status":"queued"}`: stored, chargebridge posts it (queue mode).
    Queued,
    Refused,
    /// Any other final answer: not expected from valid payloads.
    Unexpected {
        status: u16,
        code: String,
    },
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Final(Final),
    /// The POS closed the order on this answer that is not final (no retry).
    Closed(String),
    /// A re-send not made: the POS had closed the order.
    Skipped,
    /// No final answer before the driver gave up.
    GaveUp,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub attempts: AtomicUsize,
    pub answered_500: AtomicUsize,
    pub answered_409: AtomicUsize,
    pub other_transient: AtomicUsize,
    pub connection_errors: AtomicUsize,
    /// Orders the POS closed at an answer that is not final.
    pub closed_orders: AtomicUsize,
    /// Re-sends not made because the order was closed.
    pub skipped_resends: AtomicUsize,
}

pub struct Outcome {
    pub charge: usize,
    pub answer: Delivered,
    /// Every answer that was not final (`500 pms_unavailable`, `409
    /// in_progress`, `connection error` …), in order.
    pub transient: Vec<String>,
}

/// Delivers one charge until it gets a final answer or `give_up` passes; a
/// charge that `closes_on_failure` is sent once and closed at an answer that is
/// not final.
pub async fn deliver(
    client: &reqwest::Client,
    targets: &[String],
    first_target: usize,
    charge: &Charge,
    counters: &Counters,
    give_up: Instant,
) -> (Delivered, Vec<String>) {
    let mut transient = Vec::new();
    if charge.closes_on_failure && charge.closed.load(Ordering::SeqCst) {
        counters.skipped_resends.fetch_add(1, Ordering::Relaxed);
        return (Delivered::Skipped, transient);
    }
    let mut attempt = 0;
    loop {
        let target = &targets[(first_target + attempt) % targets.len()];
        attempt += 1;
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        let answer = send(client, target, charge).await;
        charge.note_reply();
        let (counter, what) = match answer {
            Ok((200, body)) => {
                let final_answer = match body["status"].as_str() {
                    Some("posted") => Final::Posted {
                        pms_reference: body["pmsReference"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    },
                    Some("queued") => Final::Queued,
                    other => Final::Unexpected {
                        status: 200,
                        code: other.unwrap_or("no status").to_string(),
                    },
                };
                return (Delivered::Final(final_answer), transient);
            }
            Ok((409, body)) => (&counters.answered_409, describe(409, &body)),
            Ok((status @ (408 | 429), body)) => {
                (&counters.other_transient, describe(status, &body))
            }
            Ok((status @ 400..=499, body)) => {
                let code = body["code"].as_str().unwrap_or_default().to_string();
                let final_answer = if status == 422 && code == "pms_rejected" {
                    Final::Refused
                } else {
                    Final::Unexpected { status, code }
                };
                return (Delivered::Final(final_answer), transient);
            }
            Ok((500, body)) => (&counters.answered_500, describe(500, &body)),
            Ok((status, body)) => (&counters.other_transient, describe(status, &body)),
            Err(_) => (&counters.connection_errors, "connection error".to_string()),
        };
        transient.push(what.clone());
        if charge.closes_on_failure {
            // Lightspeed: the order is closed, the charge never sent again.
            charge.closed.store(true, Ordering::SeqCst);
            counters.closed_orders.fetch_add(1, Ordering::Relaxed);
            return (Delivered::Closed(what), transient);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        if Instant::now() >= give_up {
            return (Delivered::GaveUp, transient);
        }
        // Staff press "retry" after a moment; a little spread avoids lockstep.
        let pause = 50 + (attempt as u64 * 37 + charge.amount.mantissa() as u64) % 150;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// `500 pms_unavailable`: status and error code of an answer that is not final.
fn describe(status: u16, body: &Value) -> String {
    format!("{status} {}", body["code"].as_str().unwrap_or("-"))
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
                let (answer, transient) = deliver(
                    &client,
                    &targets,
                    first_target,
                    &plan.charges[i],
                    &counters,
                    give_up,
                )
                .await;
                drop(permit);
                Outcome {
                    charge: i,
                    answer,
                    transient,
                }
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
