//! A corpus of hostile and broken deliveries: each gets a 4XX with a valid
//! message, none a 5XX, a dropped connection or a posting.

use serde_json::json;

use crate::both_stores;
use crate::helpers::*;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut c: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, body: Vec<u8>| c.push((name.to_string(), body));
    add("empty", vec![]);
    add("whitespace", b"   \n\t ".to_vec());
    add("null", b"null".to_vec());
    add("number", b"42".to_vec());
    add("string", br#""charge""#.to_vec());
    add("array", b"[]".to_vec());
    add("array of seed", format!("[{SEED}]").into_bytes());
    add("true", b"true".to_vec());
    add("open brace", b"{".to_vec());
    add("truncated seed", SEED.as_bytes()[..SEED.len() / 2].to_vec());
    add("trailing garbage", format!("{SEED}xyz").into_bytes());
    add("two objects", format!("{SEED}{SEED}").into_bytes());
    add(
        "trailing comma",
        br#"{"businessExternalReference":"quickbooks-123","apiKey":"quickbooks-key-345",}"#
            .to_vec(),
    );
    add(
        "single quotes",
        b"{'businessExternalReference':'quickbooks-123'}".to_vec(),
    );
    add("comment", b"{/* c */}".to_vec());
    add("NaN", br#"{"businessExternalReference":"quickbooks-123","apiKey":"quickbooks-key-345","covers":NaN}"#.to_vec());
    add(
        "invalid utf8",
        vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
    );
    add("invalid utf8 in value", {
        let mut v = br#"{"businessExternalReference":"quickbooks-123","apiKey":"quickbooks-key-345","name":""#.to_vec();
        v.extend_from_slice(&[0xc3, 0x28]);
        v.extend_from_slice(b"\"}");
        v
    });
    add("utf16 bom", {
        let mut v = vec![0xff, 0xfe];
        v.extend(SEED.encode_utf16().flat_map(|u| u.to_le_bytes()));
        v
    });
    add("nul bytes", vec![0; 64]);
    add(
        "deep nesting",
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
    );
    add(
        "deep nesting in field",
        seed_with(|v| v["extra"] = json!(null))
            .replace(
                "\"extra\":null",
                &format!("\"extra\":{}1{}", "[".repeat(300), "]".repeat(300)),
            )
            .into_bytes(),
    );
    add(
        "unterminated string",
        br#"{"businessExternalReference":"quickbooks-123"#.to_vec(),
    );
    add(
        "bad escape",
        br#"{"businessExternalReference":"quick\xbooks"}"#.to_vec(),
    );
    add(
        "lone surrogate",
        br#"{"businessExternalReference":"\ud800","apiKey":"k"}"#.to_vec(),
    );
    // Missing or mistyped required data.
    add("empty object", b"{}".to_vec());
    let with = |f: &dyn Fn(&mut serde_json::Value)| seed_with(|v| f(v)).into_bytes();
    add(
        "no business ref",
        with(&|v| {
            v.as_object_mut()
                .unwrap()
                .remove("businessExternalReference");
        }),
    );
    add(
        "no api key",
        with(&|v| {
            v.as_object_mut().unwrap().remove("apiKey");
        }),
    );
    add(
        "business ref number",
        with(&|v| v["businessExternalReference"] = json!(123)),
    );
    add(
        "business ref empty",
        with(&|v| v["businessExternalReference"] = json!("")),
    );
    add("api key null", with(&|v| v["apiKey"] = json!(null)));
    add("api key object", with(&|v| v["apiKey"] = json!({"k": 1})));
    add(
        "transactions object",
        with(&|v| v["transactions"] = json!({"a": 1})),
    );
    add(
        "transactions string",
        with(&|v| v["transactions"] = json!("x")),
    );
    add("payments number", with(&|v| v["payments"] = json!(5)));
    add("payment not object", with(&|v| v["payments"] = json!([1])));
    add(
        "amount bool",
        with(&|v| v["payments"][0]["amount"] = json!(true)),
    );
    add(
        "amount words",
        with(&|v| v["payments"][0]["amount"] = json!("sixty")),
    );
    add(
        "amount array",
        with(&|v| v["payments"][0]["amount"] = json!([66])),
    );
    add(
        "amount huge",
        with(&|v| v["payments"][0]["amount"] = serde_json::from_str("1e400").unwrap()),
    );
    add(
        "amount 40 digits",
        with(&|v| {
            v["payments"][0]["amount"] =
                serde_json::from_str("1234567890123456789012345678901234567890").unwrap()
        }),
    );
    add(
        "gratuity object",
        with(&|v| v["payments"][0]["gratuity"] = json!({})),
    );
    add(
        "quantity string",
        with(&|v| v["transactions"][0]["quantity"] = json!("two")),
    );
    add(
        "tax lines number",
        with(&|v| v["transactions"][0]["taxLines"] = json!(5)),
    );
    add(
        "tax lines string",
        with(&|v| v["transactions"][0]["taxLines"] = json!("VAT")),
    );
    add(
        "tax amount bool",
        with(&|v| v["transactions"][0]["taxLines"]["taxAmount"] = json!(false)),
    );
    add(
        "close date words",
        with(&|v| v["closeDate"] = json!("yesterday")),
    );
    add("close date bool", with(&|v| v["closeDate"] = json!(true)));
    add(
        "payment date float",
        with(&|v| v["payments"][0]["paymentDate"] = serde_json::from_str("1.5").unwrap()),
    );
    add(
        "close before open",
        with(&|v| v["closeDate"] = json!("2020-01-01T00:00:00Z")),
    );
    add("covers negative", with(&|v| v["covers"] = json!(-2)));
    add("covers fraction", with(&|v| v["covers"] = json!(2.5)));
    add(
        "revenue center fraction",
        with(&|v| v["revenueCenterId"] = serde_json::from_str("1.5").unwrap()),
    );
    add(
        "staff id object",
        with(&|v| v["transactions"][0]["staffId"] = json!({"id": 6})),
    );
    add(
        "type number",
        with(&|v| v["transactions"][0]["type"] = json!(7)),
    );
    add(
        "service charge type number",
        with(&|v| v["serviceCharge"]["type"] = json!(1)),
    );
    add(
        "tax included string",
        with(&|v| v["transactions"][0]["taxIncluded"] = json!("yes")),
    );
    add(
        "room payment without reservation",
        with(&|v| {
            v["payments"][0]
                .as_object_mut()
                .unwrap()
                .remove("reservationId");
        }),
    );
    add(
        "room payment blank reservation",
        with(&|v| v["payments"][0]["reservationId"] = json!("  ")),
    );
    add(
        "room payment without amount",
        with(&|v| {
            v["payments"][0].as_object_mut().unwrap().remove("amount");
        }),
    );
    add(
        "name too long",
        with(&|v| v["name"] = json!("n".repeat(5000))),
    );
    add(
        "fisc id too long",
        with(&|v| v["fiscId"] = json!("f".repeat(300))),
    );
    add(
        "too many lines",
        with(&|v| {
            let line = v["transactions"][0].clone();
            v["transactions"] = serde_json::Value::Array(vec![line; 2001]);
        }),
    );
    add(
        "duplicate known key",
        SEED.replacen("\"covers\": 2,", "\"covers\": 2, \"covers\": 3,", 1)
            .into_bytes(),
    );
    c
}

async fn malformed_deliveries_get_4xx(store: StoreChoice) {
    let app = spawn_app(store).await;
    let corpus = corpus();
    assert!(corpus.len() >= 50, "corpus has {}", corpus.len());
    for (name, body) in corpus {
        let answer = app
            .raw_charge(
                &[
                    ("content-type", "application/json"),
                    ("x-lightspeed-idempotency-key", &fresh_key()),
                ],
                body,
            )
            .await;
        assert!(
            (400..500).contains(&answer.status),
            "{name}: status {} body {}",
            answer.status,
            String::from_utf8_lossy(&answer.bytes)
        );
        answer.assert_error_contract();
        assert!(
            !String::from_utf8_lossy(&answer.bytes).contains("quickbooks-key-345"),
            "{name} echoed the key"
        );
    }
    assert_eq!(app.memory_pms().posts_attempted(), 0);
    // The server is still healthy afterwards.
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
}
both_stores!(malformed, malformed_deliveries_get_4xx);
