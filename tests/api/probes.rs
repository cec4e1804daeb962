//! Issue 21: answers that probes and generic HTTP clients rely on: `Allow` on
//! 405, HEAD on the operations endpoints, readiness that reflects capacity.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_gets_405_with_allow_and_our_error_body() {
    let app = spawn_app(StoreChoice::Memory).await;
    for (method, path, allow) in [
        ("GET", "/lightspeed/charge", "POST"),
        ("PUT", "/lightspeed/charge", "POST"),
        ("POST", "/lightspeed/search", "GET"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/readyz", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
    ] {
        let answer = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", app.address),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            answer.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed");
        assert!(body["customerErrorMessage"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_the_probes_answers_like_get_without_a_body() {
    let app = spawn_app(StoreChoice::Memory).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let get = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        let head = app
            .client
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
}

async fn readiness(app: &TestApp) -> (u16, serde_json::Value) {
    let answer = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_memory_store_is_not_ready() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.idempotency.memory_capacity = 2;
    }))
    .await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    }
    // The store is full: the next charge fails, and readiness says so first.
    let (status, body) = readiness(&app).await;
    assert_eq!(status, 503, "{body}");
    let store = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "store:memory")
        .expect("a store check");
    assert_eq!(store["ok"], false);
    assert!(store["error"].as_str().unwrap().contains("full"), "{store}");
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 500);
}

/// What the server answers to raw bytes on a fresh connection, read to its close.
async fn raw_answer(app: &TestApp, request: &[u8]) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may close before it has read everything: the answer counts.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_parser_refuses_still_get_our_json_error() {
    let app = spawn_app(StoreChoice::Memory).await;
    let control_byte = b"POST /lightspeed/charge HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n";
    let (status, body) = raw_answer(&app, control_byte).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "malformed_request");
    assert!(body["customerErrorMessage"].is_string());

    let mut long_line = b"GET /".to_vec();
    long_line.extend(std::iter::repeat_n(b'a', 70_000));
    long_line.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, body) = raw_answer(&app, &long_line).await;
    assert_eq!(status, 400);
    assert!(body["customerErrorMessage"].is_string());

    let mut huge_head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_head.extend(std::iter::repeat_n(b'b', 140_000));
    huge_head.extend_from_slice(b"\r\n\r\n");
    let (status, body) = raw_answer(&app, &huge_head).await;
    assert_eq!(status, 431);
    assert_eq!(body["code"], "request_head_too_large");

    // A well-formed request on the same server is untouched.
    let (status, body) = raw_answer(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

/// `/readyz` asks every PMS at once: three PMSs that accept the connection and
/// never answer make it wait one probe timeout (2 s), not three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_the_pmss_at_once() {
    // Accepts connections (the kernel's backlog) and never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pms", silent.local_addr().unwrap());
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        for name in ["silent-a", "silent-b", "silent-c"] {
            s.pms.insert(
                name.into(),
                chargebridge::pms::PmsSettings::Http(
                    chargebridge::pms::http::HttpPmsSettings::new(url.clone()),
                ),
            );
        }
    }))
    .await;
    let started = std::time::Instant::now();
    let (status, body) = readiness(&app).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    let timed_out = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["error"] == "timed out")
        .count();
    assert_eq!(timed_out, 3, "{body}");
    assert!(
        took < std::time::Duration::from_millis(3500),
        "took {took:?}"
    );
    drop(silent);
}
