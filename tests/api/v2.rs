//! Contract version 2: what Lightspeed really sends and expects. Tenants by
//! apiKey, the search envelope and its coalescing cache, a missing Content-Type,
//! the tip on top, several reservations on one receipt, receipts without a
//! room charge, and messages counted in UTF-16 units.

use std::time::Duration;

use chargebridge::config::TenantSettings;
use chargebridge::domain::{IdempotencyKey, PostingReference};
use chargebridge::pms::PmsSettings;
use chargebridge::pms::itemize::{ItemKind, folio_items};
use chargebridge::pms::memory::{Fault, MemoryPmsSettings};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::*;

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn body_text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.bytes).into_owned()
}

/// A second business location of the same integrator: same reference, own key.
fn second_location(s: &mut chargebridge::config::Settings, pms: MemoryPmsSettings) {
    let mut t: TenantSettings = s.tenants[0].clone();
    t.id = Some("rotterdam".into());
    t.api_key = Some(SecretString::from("rotterdam-key"));
    t.pms = "second".into();
    s.tenants.push(t);
    s.pms.insert("second".into(), PmsSettings::Memory(pms));
}

async fn locations_are_told_apart_by_api_key(store: StoreChoice) {
    let app = spawn_with(settings(&store, |s| {
        second_location(s, MemoryPmsSettings::default())
    }))
    .await;
    let second = app.state.pms.memory("second").unwrap().clone();
    let key = fresh_key();
    let rotterdam = SEED.replace("quickbooks-key-345", "rotterdam-key");
    // One key, two locations: two tenants, two records, two postings.
    let a = app.charge(&key, SEED).await;
    let b = app.charge(&key, &rotterdam).await;
    assert_eq!((a.status, b.status), (200, 200), "{}", body_text(&b));
    assert!(!b.replayed(), "records are per tenant");
    assert_eq!(app.applied().len(), 1);
    let posted = second.applied();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].charge.tenant, "rotterdam");
    let k = IdempotencyKey::parse(key.as_bytes()).unwrap();
    assert_eq!(
        posted[0].charge.reference,
        PostingReference::derive("rotterdam", &k)
    );
    assert_ne!(
        app.applied()[0].charge.reference,
        posted[0].charge.reference
    );
    // The demo tenant pins its reference; a wrong one is a wrong key.
    let wrong_ref = SEED.replace("quickbooks-123", "someone-else");
    let refused = app.charge(&fresh_key(), &wrong_ref).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "unauthorized")
    );
    // A search with the second key lands on the second PMS.
    let found = app
        .get("/lightspeed/search?term=jane&businessExternalReference=quickbooks-123&apiKey=rotterdam-key")
        .await;
    assert_eq!(found.json()["success"], true);
    assert_eq!(second.searches(), 1);
    assert_eq!(app.memory_pms().searches(), 0);
}
both_stores!(two_locations, locations_are_told_apart_by_api_key);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_envelope_field_by_field() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        let guests = toml_guests(
            r#"
            [[guests]]
            reservation_id = "R-1"
            room_id = "301"
            client_name = "Ada Lovelace"
            credit_limit = "1234.56"
            [[guests]]
            reservation_id = "R-2"
            room_id = "302"
            room_description = "Sea view"
            client_name = "Ada Byron"
            blocked = true
            "#,
        );
        s.pms.insert(
            "demo".into(),
            PmsSettings::Memory(MemoryPmsSettings {
                guests: Some(guests),
                ..Default::default()
            }),
        );
    }))
    .await;
    let answer = app
        .get(&format!(
            "/lightspeed/search?term=ada&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await;
    assert_eq!(answer.status, 200);
    let text = body_text(&answer);
    let body = answer.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["errorMessage"], "");
    assert!(body.get("code").is_none(), "{text}");
    let list = body["reservations"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["reservationId"], "R-1");
    assert_eq!(list[0]["roomId"], "301");
    assert_eq!(
        list[0]["roomDescription"], "301",
        "falls back to the room id"
    );
    assert_eq!(list[0]["clientName"], "Ada Lovelace");
    assert!(list[0]["creditLimit"].is_number());
    assert!(
        text.contains(r#""creditLimit":1234.56"#),
        "exact digits: {text}"
    );
    assert_eq!(list[0]["blocked"], false);
    assert_eq!(list[1]["roomDescription"], "Sea view");
    assert!(list[1].get("creditLimit").is_none(), "omitted when unknown");
    assert_eq!(list[1]["blocked"], true);
    // A PMS that cannot answer: 200, success false, a staff message, a code.
    let down = app
        .get(&format!(
            "/lightspeed/search?term=fail-unavailable&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await;
    down.assert_search_failure();
    assert_eq!(down.code(), "pms_unavailable");
    let long = app
        .get(&format!(
            "/lightspeed/search?term={}&businessExternalReference={REFERENCE}&apiKey={API_KEY}",
            "x".repeat(101)
        ))
        .await;
    long.assert_search_failure();
    assert_eq!(long.code(), "invalid_term");
}

fn toml_guests(text: &str) -> Vec<chargebridge::pms::memory::GuestSettings> {
    #[derive(serde::Deserialize)]
    struct Guests {
        guests: Vec<chargebridge::pms::memory::GuestSettings>,
    }
    let parsed: Guests = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    parsed.guests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_searches_share_one_pms_call_and_are_cached() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.pms.insert(
            "demo".into(),
            PmsSettings::Memory(MemoryPmsSettings {
                search_delay: Duration::from_millis(300),
                ..Default::default()
            }),
        );
    }))
    .await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    // Twenty POS devices type the same letters at once.
    let path = q("jane");
    let answers = futures_util::future::join_all((0..20).map(|_| app.get(&path))).await;
    for a in &answers {
        assert_eq!(a.json()["reservations"][0]["clientName"], "Jane Doe");
    }
    assert_eq!(app.memory_pms().searches(), 1, "coalesced into one call");
    // Within the cache window the same term is not asked again; another is.
    assert_eq!(app.get(&q("jane")).await.json()["success"], true);
    assert_eq!(app.memory_pms().searches(), 1, "cached");
    app.get(&q("john")).await;
    assert_eq!(app.memory_pms().searches(), 2);
    // Failures are not cached.
    app.get(&q("fail-unavailable")).await;
    app.get(&q("fail-unavailable")).await;
    assert_eq!(app.memory_pms().searches(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_searches_still_coalesce_but_are_asked_again() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.search_cache = Duration::ZERO;
    }))
    .await;
    let q = format!(
        "/lightspeed/search?term=jane&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
    );
    app.get(&q).await;
    app.get(&q).await;
    assert_eq!(app.memory_pms().searches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_empty_content_type_is_read_as_json() {
    let app = spawn_app(StoreChoice::Memory).await;
    for headers in [vec![], vec![("content-type", "")]] {
        let key = fresh_key();
        let mut h = headers.clone();
        h.push(("x-lightspeed-idempotency-key", key.as_str()));
        let answer = app.raw_charge(&h, SEED.as_bytes().to_vec()).await;
        assert_eq!(answer.status, 200, "{headers:?}: {}", body_text(&answer));
        assert_eq!(app.applied_for(&key), 1);
    }
    let key = fresh_key();
    let answer = app
        .raw_charge(
            &[
                ("content-type", "text/plain"),
                ("x-lightspeed-idempotency-key", &key),
            ],
            SEED.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (415, "unsupported_media_type")
    );
}

/// Lightspeed's guide: lines of 11, a payment of `amount` 11 and `gratuity` 1.
fn lightspeed_tip_example() -> String {
    seed_with(|v| {
        v["transactions"] = json!([{"quantity": 1, "amount": 11.00, "description": "Burger",
            "taxLines": [{"taxAmount": 1.00, "taxRate": 1.1, "taxIncluded": true}]}]);
        v["serviceCharge"] = Value::Null;
        v["payments"] = json!([{"amount": 11.00, "gratuity": 1.00,
            "methodCode": "IKPMS", "reservationId": "001"}]);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tip_comes_on_top_by_default() {
    let app = spawn_app(StoreChoice::Memory).await;
    let answer = app.charge(&fresh_key(), &lightspeed_tip_example()).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let charge = app.applied()[0].charge.clone();
    let room = charge.room().unwrap();
    assert_eq!((room.amount, room.gratuity), (dec("12.00"), dec("1.00")));
    let items = folio_items(&charge);
    let kinds: Vec<ItemKind> = items.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [ItemKind::Sale, ItemKind::Tip],
        "it adds up: itemized"
    );

    // A tenant whose amount already holds the tip debits 11.
    let included = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.tenants[0].gratuity_included = true
    }))
    .await;
    assert_eq!(
        included
            .charge(&fresh_key(), &lightspeed_tip_example())
            .await
            .status,
        200
    );
    let room = included.applied()[0].charge.room().unwrap().clone();
    assert_eq!((room.amount, room.gratuity), (dec("11.00"), dec("1.00")));
}

/// Two guests at one table, each paying to their own room: 30 + 1 tip to 001,
/// 36 to 002, for lines of 40 and 26.
fn two_rooms() -> String {
    seed_with(|v| {
        v["transactions"] = json!([
            {"quantity": 2, "amount": 40.00, "description": "Steak",
             "taxLines": [{"taxAmount": 3.64, "taxRate": 1.1, "taxIncluded": true}]},
            {"quantity": 1, "amount": 26.00, "description": "Wine"}]);
        v["serviceCharge"] = Value::Null;
        v["payments"] = json!([
            {"amount": 30.00, "gratuity": 1.00, "methodCode": "IKPMS", "reservationId": "001"},
            {"amount": 36.00, "gratuity": 0, "methodCode": "IKPMS", "reservationId": "002"}]);
    })
}

async fn several_reservations_are_one_posting_each(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    let answer = app.charge(&key, &two_rooms()).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let body = answer.json();
    assert_eq!(body["status"], "posted");
    let postings = body["postings"].as_array().unwrap();
    assert_eq!(postings.len(), 2);
    assert_eq!(postings[0]["reservationId"], "001");
    assert_eq!(postings[1]["reservationId"], "002");
    assert_eq!(body["pmsReference"], postings[0]["pmsReference"]);

    let applied = app.applied();
    assert_eq!(applied.len(), 2);
    let k = IdempotencyKey::parse(key.as_bytes()).unwrap();
    for (posting, (reservation, amount, base)) in applied
        .iter()
        .zip([("001", "31.00", "30.00"), ("002", "36.00", "36.00")])
    {
        let room = posting.charge.room().unwrap();
        assert_eq!(room.reservation_id, reservation);
        assert_eq!(room.amount, dec(amount));
        assert_eq!(
            posting.charge.reference,
            PostingReference::derive_for_reservation(&app.tenant, &k, reservation),
            "its own reference"
        );
        // The items are shared so that each folio adds up to its own amount.
        let items = folio_items(&posting.charge);
        assert!(
            items.iter().all(|i| i.kind != ItemKind::Consolidated),
            "{items:?}"
        );
        let sales: Decimal = items
            .iter()
            .filter(|i| i.kind == ItemKind::Sale)
            .map(|i| i.gross)
            .sum();
        assert_eq!(sales, dec(base), "{reservation}: {items:?}");
    }
    // 40 × 30/66 = 18.18, 26 × 30/66 = 11.82 for the smaller share; the larger
    // takes what is left of each line.
    let first: Vec<Decimal> = applied[0].charge.lines.iter().map(|l| l.amount).collect();
    let second: Vec<Decimal> = applied[1].charge.lines.iter().map(|l| l.amount).collect();
    assert_eq!(first, [dec("18.18"), dec("11.82")]);
    assert_eq!(second, [dec("21.82"), dec("14.18")]);

    let replay = app.charge(&key, &two_rooms()).await;
    assert!(replay.replayed());
    assert_eq!(replay.bytes, answer.bytes);
    assert_eq!(app.applied().len(), 2, "nothing posted twice");
}
both_stores!(multi_payments, several_reservations_are_one_posting_each);

async fn a_redelivery_posts_only_what_is_missing(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    // 001 goes through, 002 meets a PMS that is down.
    app.push_fault(Fault::Slow(Duration::ZERO));
    app.push_fault(Fault::Unavailable);
    let first = app.charge(&key, &two_rooms()).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_unavailable"),
        "{}",
        body_text(&first)
    );
    first.assert_error_contract();
    assert_eq!(app.applied().len(), 1);
    let attempts = app.memory_pms().posts_attempted();
    let again = app.charge(&key, &two_rooms()).await;
    assert_eq!(again.status, 200, "{}", body_text(&again));
    let applied = app.applied();
    let reservations: Vec<&str> = applied
        .iter()
        .map(|p| p.charge.room().unwrap().reservation_id.as_str())
        .collect();
    assert_eq!(reservations, ["001", "002"], "001 is not posted again");
    assert_eq!(
        app.memory_pms().posts_attempted(),
        attempts + 1,
        "only the missing posting"
    );
    assert_eq!(again.json()["postings"].as_array().unwrap().len(), 2);
}
both_stores!(multi_progress, a_redelivery_posts_only_what_is_missing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_another_posting_tells_staff_both() {
    let app = spawn_app(StoreChoice::Memory).await;
    let key = fresh_key();
    app.push_fault(Fault::Slow(Duration::ZERO));
    app.push_fault(Fault::Reject("Folio closed".into()));
    let answer = app.charge(&key, &two_rooms()).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    answer.assert_error_contract();
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "Res. 002 refused; others posted: Folio closed"
    );
    assert_eq!(app.applied().len(), 1);
    let replay = app.charge(&key, &two_rooms()).await;
    assert!(replay.replayed());
    assert_eq!(app.applied().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_without_a_room_charge_is_refused_unless_mirroring() {
    let card_only = seed_with(|v| {
        v["payments"][0]["methodCode"] = "CARD".into();
        v["payments"][0]["reservationId"] = Value::Null;
    });
    let app = spawn_app(StoreChoice::Memory).await;
    let answer = app.charge(&fresh_key(), &card_only).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "no_room_charge_payment")
    );
    answer.assert_error_contract();
    assert_eq!(app.memory_pms().posts_attempted(), 0);

    let mirroring = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.tenants[0].mirroring = true
    }))
    .await;
    let answer = mirroring.charge(&fresh_key(), &card_only).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "acknowledged");
    assert_eq!(mirroring.memory_pms().posts_attempted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_charge_codes_match_whatever_their_case() {
    let app = spawn_app(StoreChoice::Memory).await;
    let body = seed_with(|v| v["payments"][0]["methodCode"] = " ikpms ".into());
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    assert_eq!(app.applied().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emoji_heavy_pms_message_fits_fifty_utf16_units() {
    let app = spawn_app(StoreChoice::Memory).await;
    app.push_fault(Fault::Reject(format!(
        "Zimmer gesperrt {}",
        "🏨".repeat(40)
    )));
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.status, 422);
    answer.assert_error_contract();
    let message = answer.json()["customerErrorMessage"]
        .as_str()
        .unwrap()
        .to_string();
    let units: Vec<u16> = message.encode_utf16().collect();
    assert!(units.len() <= 50, "{} units: {message}", units.len());
    assert!(
        String::from_utf16(&units).is_ok(),
        "no split surrogate pair"
    );
    assert!(message.starts_with("Zimmer gesperrt 🏨") && message.ends_with('…'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_amount_room_charge_is_acknowledged_and_journalled_without_a_posting() {
    let app = spawn_app(StoreChoice::Memory).await;
    let body = seed_with(|v| {
        v["payments"][0]["amount"] = json!(0);
        v["payments"][0]["gratuity"] = json!(0);
    });
    let key = fresh_key();
    let answer = app.charge(&key, &body).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    assert_eq!(answer.json()["status"], "acknowledged");
    assert_eq!(app.memory_pms().posts_attempted(), 0, "no zero posting");
    let entry = app
        .state
        .journal
        .get(&app.tenant, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.state,
        chargebridge::journal::JournalState::Acknowledged
    );
    assert_eq!(entry.postings.len(), 1, "the reservation is on record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_quotes_a_bounded_part_of_what_was_sent() {
    let app = spawn_app(StoreChoice::Memory).await;
    let huge = "k".repeat(500_000);
    let body = SEED.replacen(
        "\"ownerId\": \"12345\"",
        &format!("\"ownerId\": {{\"{huge}\": 1}}"),
        1,
    );
    assert_ne!(body, SEED, "the seed has an ownerId to replace");
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        answer.status,
        400,
        "{}",
        &body_text(&answer)[..200.min(answer.bytes.len())]
    );
    answer.assert_error_contract();
    assert!(answer.bytes.len() < 2_000, "{} bytes", answer.bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_characters_of_a_pms_reason_never_reach_the_pos() {
    let app = spawn_app(StoreChoice::Memory).await;
    app.push_fault(Fault::Reject(
        "Folio\u{202e} closed\u{200b}\u{1b}[31m!\u{1b}[0m".into(),
    ));
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json()["customerErrorMessage"], "Folio closed!");
}
