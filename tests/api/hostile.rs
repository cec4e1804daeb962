//! Hostile input at the HTTP layer, sent as raw bytes over TCP where a polite
//! client cannot produce it: oversized heads, clients that trickle bytes, floods of
//! idle connections, deep nesting, huge numbers, long strings, duplicate keys and
//! invalid UTF-8. Each is answered with a 4XX or closed cleanly within a bounded
//! time, nothing is posted, and the server keeps serving afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chargebridge::config::Settings;

use crate::helpers::*;

/// What one raw connection saw.
#[derive(Debug)]
pub struct Seen {
    /// The status of the first response, if one arrived.
    pub status: Option<u16>,
    /// The first response's body (everything after the head).
    pub body: Vec<u8>,
    /// The server closed the connection (EOF or reset) within the wait.
    pub closed: bool,
    /// From the first byte written to the first response byte, or to the close.
    pub elapsed: Duration,
}

impl Seen {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON: {:?}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

pub fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

/// Writes `parts` (bytes, then the pause before the next part) on a fresh
/// connection while a second thread reads; stops writing once the server answers
/// or closes, and waits at most `wait` for that.
pub async fn exchange(host: String, parts: Vec<(Vec<u8>, Duration)>, wait: Duration) -> Seen {
    tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(&host).expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut reader = stream.try_clone().unwrap();
        reader.set_read_timeout(Some(wait)).unwrap();
        let started = Instant::now();
        let read = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            let mut first_byte = None;
            let closed = loop {
                if started.elapsed() > wait {
                    break false;
                }
                match reader.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => {
                        first_byte.get_or_insert_with(|| started.elapsed());
                        got.extend_from_slice(&buf[..n]);
                        if response_complete(&got) {
                            // Give the server a moment to close, which it should
                            // after an error on a half-read request (actix-web
                            // lingers `client_disconnect_timeout`, 1 s, first).
                            reader
                                .set_read_timeout(Some(Duration::from_secs(3)))
                                .unwrap();
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                    Err(_) => break false,
                }
            };
            let elapsed = first_byte.unwrap_or_else(|| started.elapsed());
            (got, closed, elapsed)
        });
        let mut writer = stream;
        for (bytes, pause) in parts {
            if read.is_finished() {
                break;
            }
            if writer.write_all(&bytes).is_err() {
                break;
            }
            std::thread::sleep(pause);
        }
        let (got, closed, elapsed) = read.join().expect("reader");
        let (status, body) = split_response(&got);
        Seen {
            status,
            body,
            closed,
            elapsed,
        }
    })
    .await
    .expect("exchange thread")
}

/// A head, then a body whose length the head declares (or not).
pub fn request(extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /lightspeed/charge HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-Lightspeed-Idempotency-Key: {}\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        fresh_key(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn response_complete(got: &[u8]) -> bool {
    let Some(end) = find(got, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    got.len() >= end + 4 + length
}

fn split_response(got: &[u8]) -> (Option<u16>, Vec<u8>) {
    let status = got
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| std::str::from_utf8(rest.get(..3)?).ok())
        .and_then(|code| code.parse().ok());
    let body = find(got, b"\r\n\r\n").map_or_else(Vec::new, |end| got[end + 4..].to_vec());
    (status, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A 4XX with the error contract, or a clean close without any answer.
fn refused_or_closed(name: &str, seen: &Seen) {
    match seen.status {
        Some(status) => assert!(
            (400..500).contains(&status),
            "{name}: status {status}, {seen:?}"
        ),
        None => assert!(seen.closed, "{name}: neither answered nor closed: {seen:?}"),
    }
}

async fn still_serves(app: &TestApp) {
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
}

fn quick_timeouts(s: &mut Settings) {
    s.server.client_request_timeout = Duration::from_secs(1);
}

/// `head` at once, then `body` one byte every 200 ms (a minute for the seed).
pub fn trickled(head: Vec<u8>, body: &[u8]) -> Vec<(Vec<u8>, Duration)> {
    std::iter::once((head, Duration::from_millis(200)))
        .chain(body.iter().map(|b| (vec![*b], Duration::from_millis(200))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_byte_by_byte_gets_408_within_the_client_timeout() {
    let app = spawn_with(settings(&StoreChoice::Memory, quick_timeouts)).await;
    let whole = request("", SEED.as_bytes());
    let head_len = whole.len() - SEED.len();
    let with_length = trickled(whole[..head_len].to_vec(), SEED.as_bytes());

    let chunked_head = format!(
        "POST /lightspeed/charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Lightspeed-Idempotency-Key: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        fresh_key()
    );
    // Chunks of one byte each: `1\r\n{\r\n`, ...
    let chunked_body: Vec<u8> = SEED
        .bytes()
        .flat_map(|b| [b'1', b'\r', b'\n', b, b'\r', b'\n'])
        .collect();
    let chunked = trickled(chunked_head.into_bytes(), &chunked_body);

    for (name, parts) in [("content-length", with_length), ("chunked", chunked)] {
        let seen = exchange(host(&app), parts, Duration::from_secs(10)).await;
        assert_eq!(seen.status, Some(408), "{name}: {seen:?}");
        assert_eq!(seen.json()["code"], "request_timeout");
        assert!(
            seen.elapsed < Duration::from_secs(4),
            "{name}: answered after {:?}",
            seen.elapsed
        );
        assert!(
            seen.closed,
            "{name}: connection left open after a half-read body"
        );
    }
    assert_eq!(app.memory_pms().posts_attempted(), 0);
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_byte_by_byte_is_cut_off() {
    let app = spawn_with(settings(&StoreChoice::Memory, quick_timeouts)).await;
    let head = request(
        "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        b"",
    );
    let parts = head
        .iter()
        .map(|b| (vec![*b], Duration::from_millis(100)))
        .collect();
    let seen = exchange(host(&app), parts, Duration::from_secs(10)).await;

    refused_or_closed("slow head", &seen);
    assert!(seen.closed, "{seen:?}");
    assert!(
        seen.elapsed < Duration::from_secs(4),
        "cut off after {:?}",
        seen.elapsed
    );
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_neither_starves_real_requests_nor_stays_open() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        quick_timeouts(s);
        s.server.workers = Some(1);
        s.server.max_connections = 16;
    }))
    .await;
    let address = host(&app);
    // Four times as many silent connections as the server will hold at once.
    let idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(&address).expect("connect"))
        .collect();

    let started = Instant::now();
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.status, 200);
    // Idle connections are cut after client_request_timeout (1 s), 16 at a time.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a real request waited {:?}",
        started.elapsed()
    );

    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .filter(|conn| {
                let mut conn = conn;
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut buf = [0u8; 512];
                // A 408 then EOF, or EOF at once; a timeout means still open.
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
                    }
                }
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 64, "idle connections the server kept open");
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused() {
    let app = spawn_app(StoreChoice::Memory).await;
    // Each carries a valid charge: only the head itself can make it refused.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "one 200 KiB header",
            request(
                &format!("X-Filler: {}\r\n", "a".repeat(200 * 1024)),
                SEED.as_bytes(),
            ),
        ),
        (
            "200 headers",
            request(
                &(0..200)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
                SEED.as_bytes(),
            ),
        ),
        (
            "a 200 KiB path",
            format!(
                "POST /lightspeed/charge?{} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 X-Lightspeed-Idempotency-Key: {}\r\nContent-Length: {}\r\n\r\n{SEED}",
                "q".repeat(200 * 1024),
                fresh_key(),
                SEED.len()
            )
            .into_bytes(),
        ),
        (
            "a 1 MiB idempotency key",
            request(
                &format!("X-Lightspeed-Idempotency-Key: {}\r\n", "k".repeat(1 << 20)),
                SEED.as_bytes(),
            ),
        ),
    ];
    for (name, bytes) in cases {
        let seen = exchange(
            host(&app),
            vec![(bytes, Duration::ZERO)],
            Duration::from_secs(10),
        )
        .await;
        refused_or_closed(name, &seen);
        assert!(seen.elapsed < Duration::from_secs(5), "{name}: {seen:?}");
    }
    assert_eq!(app.memory_pms().posts_attempted(), 0);
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_before_they_are_buffered() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.body_limit = 64 * 1024
    }))
    .await;
    // A declared length of 1 TiB: refused from the head alone, nothing allocated.
    let declared = format!(
        "POST /lightspeed/charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Lightspeed-Idempotency-Key: {}\r\nContent-Length: 1099511627776\r\n\r\n{{",
        fresh_key()
    );
    let seen = exchange(
        host(&app),
        vec![(declared.into_bytes(), Duration::ZERO)],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(seen.status, Some(413), "{seen:?}");
    assert_eq!(seen.json()["code"], "payload_too_large");

    // Chunked, with no declared length: cut off as the limit is crossed.
    let mut chunked = format!(
        "POST /lightspeed/charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Lightspeed-Idempotency-Key: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        fresh_key()
    )
    .into_bytes();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..64 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let seen = exchange(
        host(&app),
        vec![(chunked, Duration::ZERO)],
        Duration::from_secs(10),
    )
    .await;
    refused_or_closed("chunked 1 MiB", &seen);
    if seen.status.is_some() {
        assert_eq!(seen.status, Some(413), "{seen:?}");
    }
    still_serves(&app).await;
}

/// The seed with `member` (raw JSON text) added as its first member.
fn seed_plus(member: &str) -> Vec<u8> {
    SEED.replacen('{', &format!("{{{member},"), 1).into_bytes()
}

async fn answer_to(app: &TestApp, body: Vec<u8>) -> Answer {
    app.raw_charge(
        &[
            ("content-type", "application/json"),
            ("x-lightspeed-idempotency-key", &fresh_key()),
        ],
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_refused_past_the_limit_and_tolerated_below_it() {
    let app = spawn_app(StoreChoice::Memory).await;
    let nested = |depth: usize, open: &str, close: &str| {
        format!(
            "\"futureField\": {}1{}",
            open.repeat(depth),
            close.repeat(depth)
        )
    };
    // Lightspeed may add nested data: 100 levels inside an unknown field is fine.
    let deep_but_fine = answer_to(&app, seed_plus(&nested(100, "[", "]"))).await;
    assert_eq!(deep_but_fine.status, 200);

    for (name, member) in [
        ("100 000 arrays", nested(100_000, "[", "]")),
        ("100 000 objects", nested(100_000, "{\"a\":", "}")),
        ("200 arrays", nested(200, "[", "]")),
        // Unbalanced: opened and never closed.
        ("open arrays", format!("\"f\": {}", "[".repeat(500_000))),
    ] {
        let answer = answer_to(&app, seed_plus(&member)).await;
        assert_eq!(answer.status, 400, "{name}");
        answer.assert_error_contract();
        assert_eq!(answer.code(), "invalid_payload", "{name}");
    }
    assert_eq!(app.applied().len(), 1);
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_numbers_are_refused_where_they_are_money_and_tolerated_where_unknown() {
    let app = spawn_app(StoreChoice::Memory).await;
    let digits = "9".repeat(100_000);
    for (name, body) in [
        (
            "amount with 100 000 digits",
            SEED.replacen("\"amount\": 66.0", &format!("\"amount\": {digits}"), 1),
        ),
        (
            "amount 1e999999999",
            SEED.replacen("\"amount\": 66.0", "\"amount\": 1e999999999", 1),
        ),
        (
            "covers 2^64",
            SEED.replacen("\"covers\": 2", "\"covers\": 18446744073709551616", 1),
        ),
    ] {
        assert!(body.len() != SEED.len(), "{name}: seed not changed");
        let answer = answer_to(&app, body.into_bytes()).await;
        assert_eq!(answer.status, 400, "{name}");
        answer.assert_error_contract();
    }
    // Any number of decimals is float residue to round, not a refusal (issue 21):
    // 0.999… with 100 000 nines is 1 at 28 places, and 1.00 on the folio.
    let long = SEED.replacen("\"amount\": 66.0", &format!("\"amount\": 0.{digits}"), 1);
    let answer = answer_to(&app, long.into_bytes()).await;
    assert_eq!(answer.status, 200, "amount with 100 000 decimals");
    let posted = app.applied().last().unwrap().charge.room().unwrap().amount;
    assert_eq!(posted.to_string(), "2.00", "1 plus the seed's tip of 1.0");
    // Numbers Lightspeed might add in fields we do not read cost nothing but a scan.
    for member in [
        format!("\"futureCount\": {digits}"),
        "\"futureRate\": 1e999999999".to_string(),
        format!("\"futureRate\": -0.{digits}e-99999"),
    ] {
        let answer = answer_to(&app, seed_plus(&member)).await;
        assert_eq!(answer.status, 200, "{}", &member[..30]);
    }
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_strings_are_bounded_by_the_body_limit_only_where_unknown() {
    let app = spawn_app(StoreChoice::Memory).await;
    // 900 KB of text in a field we do not read, as plain and as escaped text.
    let plain = format!("\"futureNote\": \"{}\"", "x".repeat(900_000));
    let escaped = format!("\"futureNote\": \"{}\"", "\\u00e9\\n".repeat(100_000));
    for member in [plain, escaped] {
        let key = fresh_key();
        let body = seed_plus(&member);
        let answer = app
            .raw_charge(
                &[
                    ("content-type", "application/json"),
                    ("x-lightspeed-idempotency-key", &key),
                ],
                body.clone(),
            )
            .await;
        assert_eq!(answer.status, 200);
        // The same body again is a replay, fingerprinted identically.
        let again = app
            .raw_charge(
                &[
                    ("content-type", "application/json"),
                    ("x-lightspeed-idempotency-key", &key),
                ],
                body,
            )
            .await;
        assert!(again.replayed());
        assert_eq!(again.bytes, answer.bytes);
    }
    // In a field we do read, a long string is a payload error, not a truncation.
    let answer = answer_to(
        &app,
        seed_with(|v| v["payments"][0]["reservationId"] = "r".repeat(500_000).into()).into_bytes(),
    )
    .await;
    assert_eq!(answer.status, 400);
    answer.assert_error_contract();
    assert!(
        answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("reservationId")
    );
    assert_eq!(app.applied().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_never_let_a_second_value_through() {
    let app = spawn_app(StoreChoice::Memory).await;
    // A wrong key then the right one: no "last one wins" for credentials or money.
    for (name, member) in [
        ("apiKey twice", "\"apiKey\": \"wrong\""),
        (
            "businessExternalReference twice",
            "\"businessExternalReference\": \"other\"",
        ),
        ("payments twice", "\"payments\": []"),
    ] {
        let answer = answer_to(&app, seed_plus(member)).await;
        assert_eq!(answer.status, 400, "{name}");
        answer.assert_error_contract();
        assert!(
            answer.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("duplicate")),
            "{name}: {}",
            answer.json()
        );
    }
    // Duplicates inside fields we do not read are Lightspeed's business.
    let answer = answer_to(&app, seed_plus("\"future\": {\"a\": 1, \"a\": 2}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.applied().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_anywhere_is_a_4xx() {
    let app = spawn_app(StoreChoice::Memory).await;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, bad) in [
        ("lone continuation byte", &b"\x80"[..]),
        ("overlong slash", &b"\xc0\xaf"[..]),
        ("surrogate as UTF-8", &b"\xed\xa0\x80"[..]),
        ("truncated sequence", &b"\xe2\x82"[..]),
        ("beyond U+10FFFF", &b"\xf4\x90\x80\x80"[..]),
    ] {
        let mut body = b"{\"futureField\": \"".to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(b"\",");
        body.extend_from_slice(&SEED.as_bytes()[1..]);
        cases.push((name, body));
    }
    let mut in_a_name = b"{\"future".to_vec();
    in_a_name.extend_from_slice(b"\xff\": 1,");
    in_a_name.extend_from_slice(&SEED.as_bytes()[1..]);
    cases.push(("in a member name", in_a_name));
    cases.push((
        "lone surrogate escape in a field we read",
        SEED.replacen("\"string\"", "\"\\ud800string\"", 1)
            .into_bytes(),
    ));
    for (name, body) in cases {
        let answer = answer_to(&app, body).await;
        assert!(
            (400..500).contains(&answer.status),
            "{name}: {}",
            answer.status
        );
        answer.assert_error_contract();
    }

    // Invalid UTF-8 in the idempotency key header, sent raw.
    let mut head =
        b"POST /lightspeed/charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     X-Lightspeed-Idempotency-Key: LS1_\xc3\x28\xff\r\nContent-Length: "
            .to_vec();
    head.extend_from_slice(format!("{}\r\n\r\n{SEED}", SEED.len()).as_bytes());
    let seen = exchange(
        host(&app),
        vec![(head, Duration::ZERO)],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(seen.status, Some(400), "{seen:?}");
    assert_eq!(seen.json()["code"], "invalid_idempotency_key");
    assert_eq!(app.memory_pms().posts_attempted(), 0);
    still_serves(&app).await;
}

fn memory_records(app: &TestApp) -> usize {
    match app.state.idempotency.store() {
        chargebridge::idempotency::Store::Memory(store) => store.len(),
        _ => panic!("not the memory store"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_storm_on_one_key_holds_one_record_and_posts_once() {
    let app = spawn_app(StoreChoice::Memory).await;
    let key = fresh_key();
    let storm: Vec<_> = (0..500)
        .map(|_| app.charge_in_background(&key, SEED))
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for delivery in storm {
        *statuses.entry(delivery.await.unwrap().status).or_default() += 1;
    }
    // Every delivery waited for the first and got its answer (or a 409 to retry).
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(app.applied_for(&key), 1);
    assert_eq!(memory_records(&app), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_keys_fills_the_memory_store_to_its_capacity_and_no_further() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.idempotency.memory_capacity = 50;
        s.server.request_deadline = Duration::from_millis(1000);
        s.server.pms_safety_margin = Duration::from_millis(100);
        s.idempotency.lease = Duration::from_millis(1100);
        // Long enough that no record expires while the flood is still being sent,
        // even on a loaded CI machine.
        s.idempotency.retention = Duration::from_secs(4);
    }))
    .await;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..80 {
        let answer = app.charge(&fresh_key(), SEED).await;
        if answer.status != 200 {
            answer.assert_error_contract();
            assert_eq!(answer.code(), "store_unavailable");
        }
        *statuses.entry(answer.status).or_default() += 1;
    }
    // Full means fail closed: the 51st charge is refused, not posted unguarded,
    // and no record of a posted charge is dropped to make room.
    assert_eq!(statuses, [(200, 50), (500, 30)].into_iter().collect());
    assert_eq!(app.applied().len(), 50);
    assert_eq!(memory_records(&app), 50);

    // Once the records' retention has passed they are swept to make room.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!(memory_records(&app), 1);
}
