//! What a receipt means: exact money, room-charge payments, refunds, mirroring,
//! and every shape Lightspeed documents in two ways.

use serde_json::json;

use crate::both_stores;
use crate::helpers::*;

async fn post_ok(app: &TestApp, body: &str) -> serde_json::Value {
    let key = fresh_key();
    let answer = app.charge(&key, body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    answer.json()
}

async fn money_round_trips_exactly(store: StoreChoice) {
    let app = spawn_app(store).await;
    post_ok(&app, &fixture("exact-money.json")).await;
    let posted = &app.applied()[0].charge;
    let room = posted.room().unwrap();
    assert_eq!(
        room.amount.to_string(),
        "12345678901234.66",
        "amount + 0.1 tip"
    );
    assert_eq!(room.gratuity.to_string(), "0.1");
    assert_eq!(posted.lines[0].amount.to_string(), "0.1");
    assert_eq!(posted.lines[0].unit_amount.unwrap().to_string(), "0.1");
    // Sums are exact too: 0.1 + 0.2 is 0.3.
    let body = seed_with(|v| {
        v["payments"][0]["gratuity"] = json!(0);
        let mut p2 = v["payments"][0].clone();
        p2["amount"] = json!(0.2);
        v["payments"][0]["amount"] = serde_json::from_str("0.1").unwrap();
        v["payments"].as_array_mut().unwrap().push(p2);
    });
    post_ok(&app, &body).await;
    assert_eq!(
        app.applied()[1].charge.room().unwrap().amount.to_string(),
        "0.3"
    );
}
both_stores!(money, money_round_trips_exactly);

async fn tolerance_shapes_are_accepted(store: StoreChoice) {
    let app = spawn_app(store).await;
    for name in [
        "tax-lines-array.json",
        "payment-date-epoch-millis.json",
        "ids-as-strings.json",
        "unknown-fields-and-enums.json",
    ] {
        post_ok(&app, &fixture(name)).await;
    }
    let applied = app.applied();
    assert_eq!(applied.len(), 4);
    assert_eq!(applied[0].charge.lines[0].tax_lines.len(), 2);
    assert_eq!(
        applied[2]
            .charge
            .revenue_center
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some("94489280528")
    );
    assert_eq!(applied[3].charge.lines[0].line_type, "GiftCardSale");
    assert_eq!(
        applied[3].charge.service_charge.as_ref().unwrap().kind,
        "MANDATORY_TIP"
    );
    // The deprecated `identifier` stands in when fiscId and uuid are absent.
    let body = seed_with(|v| {
        let o = v.as_object_mut().unwrap();
        o.remove("fiscId");
        o.remove("uuid");
        o.insert("identifier".into(), json!("LEGACY-1"));
    });
    post_ok(&app, &body).await;
    assert_eq!(
        app.applied()[4].charge.receipt.fisc_id.as_deref(),
        Some("LEGACY-1")
    );
}
both_stores!(tolerance, tolerance_shapes_are_accepted);

async fn room_charge_payments_are_summed(store: StoreChoice) {
    let app = spawn_app(store).await;
    post_ok(&app, &fixture("multi-payment-same-room.json")).await;
    post_ok(&app, &fixture("partial-payment-room-and-cash.json")).await;
    let applied = app.applied();
    let room = applied[0].charge.room().unwrap();
    assert_eq!(room.amount.to_string(), "67.5", "32.0 + 1.0 + 34.0 + 0.5");
    assert_eq!(room.gratuity.to_string(), "1.5");
    assert_eq!(applied[1].charge.room().unwrap().amount.to_string(), "51.0");
}
both_stores!(room_payments, room_charge_payments_are_summed);

async fn tips_are_inside_the_amount_when_included(store: StoreChoice) {
    let app = spawn_with(settings(&store, |s| s.tenants[0].gratuity_included = true)).await;
    post_ok(&app, SEED).await;
    let room = app.applied()[0].charge.room().cloned().unwrap();
    assert_eq!(room.amount.to_string(), "66.0");
    assert_eq!(room.gratuity.to_string(), "1.0");
}
both_stores!(tips_included, tips_are_inside_the_amount_when_included);

async fn refunds_are_flagged_and_linked(store: StoreChoice) {
    let app = spawn_app(store).await;
    post_ok(&app, &fixture("refund.json")).await;
    let charge = &app.applied()[0].charge;
    assert!(charge.refund);
    assert_eq!(charge.room().unwrap().amount.to_string(), "-66.0");
    assert_eq!(
        charge.receipt.initial_account_id.as_deref(),
        Some("A1234.5")
    );
    assert_eq!(charge.lines[0].quantity.to_string(), "-2.0");
}
both_stores!(refunds, refunds_are_flagged_and_linked);

async fn mirrored_receipts_are_acknowledged_without_posting(store: StoreChoice) {
    let app = spawn_with(settings(&store, |s| s.tenants[0].mirroring = true)).await;
    let body = post_ok(&app, &fixture("mirroring-no-room-charge.json")).await;
    assert_eq!(body["status"], "acknowledged");
    assert!(body.get("pmsReference").is_none());
    assert!(app.applied().is_empty());
    assert_eq!(app.memory_pms().posts_attempted(), 0);
}
both_stores!(
    mirroring,
    mirrored_receipts_are_acknowledged_without_posting
);

async fn business_rules_name_the_field(store: StoreChoice) {
    let app = spawn_app(store).await;
    let cases = [
        (
            seed_with(|v| v["closeDate"] = json!("2020-12-31T23:59:59Z")),
            "closeDate",
        ),
        (
            seed_with(|v| {
                v["payments"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("reservationId")
                    .map(|_| ())
                    .unwrap()
            }),
            "payments[0].reservationId",
        ),
        (
            seed_with(|v| {
                v["payments"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("amount")
                    .map(|_| ())
                    .unwrap()
            }),
            "payments[0].amount",
        ),
        (
            seed_with(|v| v["transactions"][0]["amount"] = json!(true)),
            "transactions[0].amount",
        ),
        (
            seed_with(|v| v["payments"][0]["amount"] = serde_json::from_str("1e20").unwrap()),
            "payments[0].amount",
        ),
    ];
    for (body, path) in cases {
        let answer = app.charge(&fresh_key(), &body).await;
        assert_eq!(answer.status, 400, "{path}");
        assert_eq!(answer.code(), "invalid_payload");
        answer.assert_error_contract();
        let detail = answer.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(path), "{path} not in {detail}");
    }
    assert!(app.applied().is_empty());
}
both_stores!(business_rules, business_rules_name_the_field);

async fn validation_failures_are_not_stored(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    let bad = seed_with(|v| v["closeDate"] = json!("2020-01-01T00:00:00Z"));
    assert_eq!(app.charge(&key, &bad).await.status, 400);
    // The corrected delivery under the same key is processed, not refused.
    assert_eq!(app.charge(&key, SEED).await.status, 200);
    assert_eq!(app.applied_for(&key), 1);
}
both_stores!(validation_not_stored, validation_failures_are_not_stored);

async fn tenant_mapping_is_applied(store: StoreChoice) {
    let app = spawn_with(settings(&store, |s| {
        let m = &mut s.tenants[0].mapping;
        m.revenue_centers
            .insert("94489280528".into(), "RESTAURANT".into());
        m.accounting_groups.insert("Food".into(), "FOOD-REV".into());
        m.taxes.insert("12345".into(), "VAT10".into());
        m.gratuity_code = Some("TIPS".into());
    }))
    .await;
    post_ok(&app, SEED).await;
    let charge = &app.applied()[0].charge;
    assert_eq!(charge.outlet.as_deref(), Some("RESTAURANT"));
    assert_eq!(
        charge.lines[0].revenue_code.as_deref(),
        Some("FOOD-REV"),
        "mapped by group name"
    );
    assert_eq!(
        charge.lines[0].tax_lines[0].pms_tax_code.as_deref(),
        Some("VAT10")
    );
    assert_eq!(charge.gratuity_code.as_deref(), Some("TIPS"));
}
both_stores!(mapping, tenant_mapping_is_applied);
