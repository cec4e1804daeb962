//! Issue 21: what a Java POS may really send is accepted (float residue, tiny
//! numbers, note lines), and only what can be posted is rounded.

use crate::helpers::*;
use rust_decimal::Decimal;

fn seed_replacing(pairs: &[(&str, &str)]) -> String {
    let mut body = SEED.to_string();
    for (from, to) in pairs {
        assert!(body.contains(from), "{from} not in the seed");
        body = body.replacen(from, to, 1);
    }
    body
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_residue_in_a_payment_posts_the_rounded_amount_and_the_journal_keeps_it() {
    let app = spawn_app(StoreChoice::Memory).await;
    let key = fresh_key();
    let body = seed_replacing(&[
        ("\"amount\": 66.0", "\"amount\": 66.30000000000000004"),
        ("\"gratuity\": 1.0", "\"gratuity\": 5.551115123125783e-17"),
    ]);
    let answer = app.charge(&key, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let applied = app.applied();
    assert_eq!(applied.len(), 1);
    let room = applied[0].charge.room().unwrap();
    assert_eq!(room.amount.to_string(), "66.30");
    assert_eq!(room.gratuity, Decimal::ZERO);
    // The journal keeps what Lightspeed sent (to 28 places).
    let entry = app
        .state
        .journal
        .get(&app.tenant, &key)
        .await
        .unwrap()
        .expect("journalled");
    let kept = &entry.charge.rooms[0];
    assert_eq!(
        kept.amount,
        d("66.30000000000000004") + d("0.0000000000000000555111512313")
    );
    assert_eq!(entry.postings[0].amount.to_string(), "66.30");
    // The same body again is a replay, not a reuse: the fingerprint is exact.
    let again = app.charge(&key, &body).await;
    assert_eq!(again.status, 200);
    assert!(again.replayed());
    let other = app
        .charge(
            &key,
            &seed_replacing(&[("\"amount\": 66.0", "\"amount\": 66.30000000000000005")]),
        )
        .await;
    assert_eq!(other.status, 422, "{}", other.json());
    assert_eq!(other.code(), "idempotency_key_reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_and_residue_numbers_are_accepted_in_every_money_field() {
    let app = spawn_app(StoreChoice::Memory).await;
    for value in [
        "1e-29",
        "5.551115123125783e-17",
        "0.30000000000000004",
        "1e-400",
    ] {
        let body = seed_replacing(&[
            ("\"unitAmount\": 10.0", &format!("\"unitAmount\": {value}")),
            ("\"quantity\": 2.0", &format!("\"quantity\": {value}")),
            (
                "\"taxRate\": 1.1,\n      \"taxIncluded\"",
                &format!("\"taxRate\": {value},\n      \"taxIncluded\""),
            ),
            (
                "\"serviceChargeContribution\": 4.5",
                &format!("\"serviceChargeContribution\": {value}"),
            ),
            ("\"taxAmount\": 1.0", &format!("\"taxAmount\": {value}")),
            (
                "\"serviceCharge\": {\n    \"amount\": 1.0",
                &format!("\"serviceCharge\": {{\n    \"amount\": {value}"),
            ),
        ]);
        let answer = app.charge(&fresh_key(), &body).await;
        assert_eq!(answer.status, 200, "{value}: {}", answer.json());
    }
    // On a receipt with no room charge the answer is about that, not the number.
    let card = seed_replacing(&[
        ("\"methodCode\": \"IKPMS\"", "\"methodCode\": \"CARD\""),
        ("\"amount\": 66.0", "\"amount\": 5.551115123125783e-17"),
    ]);
    let answer = app.charge(&fresh_key(), &card).await;
    assert_eq!(answer.status, 422, "{}", answer.json());
    assert_eq!(answer.code(), "no_room_charge_payment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_with_more_decimals_than_its_currency_is_rounded_half_to_even() {
    let app = spawn_app(StoreChoice::Memory).await;
    for (sent, posted) in [("12.345", "12.34"), ("12.355", "12.36"), ("0.001", "0.00")] {
        let body = seed_replacing(&[
            ("\"amount\": 66.0", &format!("\"amount\": {sent}")),
            ("\"gratuity\": 1.0", "\"gratuity\": 0"),
        ]);
        let answer = app.charge(&fresh_key(), &body).await;
        assert_eq!(answer.status, 200, "{sent}: {}", answer.json());
        if posted == "0.00" {
            // Rounds to nothing: acknowledged, never posted as a zero charge.
            assert_eq!(answer.json()["status"], "acknowledged", "{}", answer.json());
            continue;
        }
        let applied = app.applied();
        let last = applied.last().unwrap();
        assert_eq!(last.charge.room().unwrap().amount.to_string(), posted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_without_any_amount_is_a_zero_line() {
    let app = spawn_app(StoreChoice::Memory).await;
    let body = seed_replacing(&[(
        "\"transactions\": [",
        "\"transactions\": [\n    {\"description\": \"no onions\", \"type\": \"Sale\"},",
    )]);
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let applied = app.applied();
    let lines = &applied[0].charge.lines;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].description, "no onions");
    assert_eq!(lines[0].amount, Decimal::ZERO);
    assert_eq!(applied[0].charge.room().unwrap().amount.to_string(), "67.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_differing_only_in_a_duplicate_unknown_member_are_different_deliveries() {
    let app = spawn_app(StoreChoice::Memory).await;
    let key = fresh_key();
    let with = |inner: &str| SEED.replacen('{', &format!("{{\"future\": {{{inner}}},"), 1);
    let first = app.charge(&key, &with("\"a\": 1, \"a\": 2")).await;
    assert_eq!(first.status, 200, "{}", first.json());
    let same = app.charge(&key, &with("\"a\": 1, \"a\": 2")).await;
    assert!(same.replayed());
    for other in ["\"a\": 2", "\"a\": 3, \"a\": 2", "\"a\": 2, \"a\": 1"] {
        let answer = app.charge(&key, &with(other)).await;
        assert_eq!(answer.status, 422, "{other}: {}", answer.json());
        assert_eq!(answer.code(), "idempotency_key_reused");
    }
    assert_eq!(app.applied().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_errors_read_as_plain_sentences_with_the_detail_for_integrators() {
    let app = spawn_app(StoreChoice::Memory).await;
    for (body, message, detail) in [
        (
            "{\"apiKey\": ".to_string(),
            "Receipt data unreadable: charge NOT posted",
            "malformed JSON",
        ),
        (
            seed_replacing(&[("\"taxIncluded\": true", "\"taxIncluded\": \"yes\"")]),
            "Receipt data invalid: charge NOT posted",
            "transactions[0].taxIncluded",
        ),
        (
            seed_replacing(&[("\"apiKey\": \"quickbooks-key-345\",", "")]),
            "Receipt data incomplete: charge NOT posted",
            "missing field `apiKey`",
        ),
        (
            seed_replacing(&[("\"reservationId\": \"001\"", "\"reservationId\": \"\"")]),
            "Room charge without a reservation: NOT posted",
            "payments[0].reservationId",
        ),
    ] {
        let answer = app.charge(&fresh_key(), &body).await;
        assert_eq!(answer.status, 400, "{body}");
        answer.assert_error_contract();
        let json = answer.json();
        assert_eq!(json["customerErrorMessage"], message, "{json}");
        assert!(
            json["detail"].as_str().unwrap().contains(detail),
            "{detail}: {json}"
        );
    }
}
