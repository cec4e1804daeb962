//! Redis over TLS (`rediss://`): certificates made here with rcgen, a real
//! `redis-server --tls-port` that demands a client certificate (mutual TLS),
//! and the failures an operator meets, reported in plain words by `/readyz`
//! and `check-config`. The store suites run over TLS too (`StoreChoice::Tls`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::helpers::*;
use crate::redis_server::RedisServer;

/// A certificate and its key, written as PEM files.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test PKI: a CA, server certificates for the good and the bad cases, a
/// client certificate, and a second CA nobody trusts.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    /// For `127.0.0.1` and `localhost`, signed by `ca`.
    pub server: Pair,
    /// For `redis.example` only (the wrong name for 127.0.0.1).
    pub wrong_name: Pair,
    /// Valid names, but expired in 2001.
    pub expired: Pair,
    /// Signed by `other_ca` (an unknown CA to the service).
    pub foreign: Pair,
    /// The service's client certificate, signed by `ca`.
    pub client: Pair,
    /// A client certificate signed by `other_ca` (the server does not trust it).
    pub foreign_client: Pair,
}

struct Authority {
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str, dir: &Path, file: &str) -> (Authority, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, cert.pem()).unwrap();
    (
        Authority {
            issuer: Issuer::new(params, key),
        },
        path,
    )
}

fn leaf(
    by: &Authority,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    expired: bool,
    dir: &Path,
    stem: &str,
) -> Pair {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, stem);
    params.extended_key_usages = vec![purpose];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, &by.issuer).unwrap();
    let pair = Pair {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (good, ca_path) = ca("chargebridge test CA", d, "ca.pem");
        let (other, other_path) = ca("someone else's CA", d, "other-ca.pem");
        let here = ["127.0.0.1", "localhost"];
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        Pki {
            ca: ca_path,
            other_ca: other_path,
            server: leaf(&good, &here, server.clone(), false, d, "server"),
            wrong_name: leaf(
                &good,
                &["redis.example"],
                server.clone(),
                false,
                d,
                "wrong-name",
            ),
            expired: leaf(&good, &here, server.clone(), true, d, "expired"),
            foreign: leaf(&other, &here, server, false, d, "foreign"),
            client: leaf(&good, &["chargebridge"], client.clone(), false, d, "client"),
            foreign_client: leaf(&other, &["intruder"], client, false, d, "foreign-client"),
            dir,
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A TLS-only `redis-server` presenting `cert`, trusting `pki.ca` for clients,
/// and demanding a client certificate when `mutual`.
pub fn tls_server(pki: &Pki, cert: &Pair, mutual: bool) -> RedisServer {
    let server_args = vec![
        "--tls-cert-file".into(),
        s(&cert.cert),
        "--tls-key-file".into(),
        s(&cert.key),
        "--tls-ca-cert-file".into(),
        s(&pki.ca),
        "--tls-auth-clients".into(),
        if mutual { "yes" } else { "no" }.into(),
    ];
    // redis-cli checks nothing (the tests' own server), but shows the client certificate.
    let cli_args = vec![
        "--tls".into(),
        "--insecure".into(),
        "--cert".into(),
        s(&pki.client.cert),
        "--key".into(),
        s(&pki.client.key),
    ];
    RedisServer::start_tls(&server_args, &cli_args)
}

/// The store settings for `rediss://127.0.0.1:port` with the CA and the client
/// certificate of `pki`.
pub fn tls_settings(s_: &mut chargebridge::config::Settings, port: u16, pki: &Pki) {
    use chargebridge::config::StoreKind;
    use secrecy::SecretString;
    s_.idempotency.store = StoreKind::Redis;
    s_.idempotency.redis_url = Some(SecretString::from(format!("rediss://127.0.0.1:{port}")));
    s_.idempotency.tls_ca_file = Some(s(&pki.ca));
    s_.idempotency.tls_cert_file = Some(s(&pki.client.cert));
    s_.idempotency.tls_key_file = Some(s(&pki.client.key));
}

/// One mutual-TLS server (and its PKI) shared by the store suites' TLS variants.
pub fn shared_tls() -> &'static (Pki, RedisServer) {
    static SHARED: OnceLock<(Pki, RedisServer)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let pki = Pki::new();
        let server = tls_server(&pki, &pki.server, true);
        (pki, server)
    })
}

/// The `[idempotency]` options of the shared TLS server (for the store suites
/// that build a journal or store directly).
pub fn shared_tls_options(
    command_timeout: std::time::Duration,
) -> (String, chargebridge::idempotency::redis::RedisOptions) {
    let (pki, server) = shared_tls();
    let mut options = chargebridge::idempotency::redis::RedisOptions::new(command_timeout);
    options.tls_ca_file = Some(s(&pki.ca));
    options.tls_cert_file = Some(s(&pki.client.cert));
    options.tls_key_file = Some(s(&pki.client.key));
    (format!("rediss://127.0.0.1:{}", server.port), options)
}

async fn readyz_store_error(app: &TestApp) -> String {
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        503,
        "{}",
        String::from_utf8_lossy(&ready.bytes)
    );
    let body = ready.json();
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "store:redis")
        .and_then(|c| c["error"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Runs `check-config` on `settings` written as TOML, returning its output.
fn check_config(toml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chargebridge.toml");
    std::fs::write(&file, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chargebridge"))
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn config_toml(port: u16, ca: &Path, client: Option<&Pair>) -> String {
    let mut t = format!(
        "[idempotency]\nstore = \"redis\"\nredis_url = \"rediss://127.0.0.1:{port}\"\n\
         tls_ca_file = \"{}\"\ncommand_timeout = \"1s\"\n",
        s(ca)
    );
    if let Some(c) = client {
        t += &format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            s(&c.cert),
            s(&c.key)
        );
    }
    t += "\n[[tenants]]\nid = \"demo\"\napi_key = \"k-1234567890abcdef\"\ncurrency = \"EUR\"\n\
          pms = \"demo\"\n\n[pms.demo]\nadapter = \"memory\"\n";
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_posts_once_and_replays() {
    let (pki, server) = shared_tls();
    let app = spawn_with(settings(&StoreChoice::Memory, |s_| {
        tls_settings(s_, server.port, pki)
    }))
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);
    let key = fresh_key();
    let first = app.charge(&key, SEED).await;
    assert_eq!(first.status, 200);
    let replay = app.charge(&key, SEED).await;
    assert!(replay.replayed());
    assert_eq!(first.bytes, replay.bytes);
    assert_eq!(app.applied_for(&key), 1);
    // The record is really in the TLS server.
    let raw = server.cli(&["GET", &format!("chargebridge:idem:demo:{key}")]);
    assert!(raw.contains("\"completed\""), "{raw}");
}

/// Each bad case: the service starts, answers charges `500 store_unavailable`
/// without posting, and `/readyz` and `check-config` say what is wrong.
async fn refused(server: &RedisServer, ca: &Path, client: Option<&Pair>, words: &str) {
    let pki_client = client.map(|c| (s(&c.cert), s(&c.key)));
    let app = spawn_with(settings(&StoreChoice::Memory, |s_| {
        use chargebridge::config::StoreKind;
        s_.idempotency.store = StoreKind::Redis;
        s_.idempotency.redis_url = Some(secrecy::SecretString::from(format!(
            "rediss://127.0.0.1:{}",
            server.port
        )));
        s_.idempotency.tls_ca_file = Some(s(ca));
        s_.idempotency.tls_cert_file = pki_client.as_ref().map(|c| c.0.clone());
        s_.idempotency.tls_key_file = pki_client.as_ref().map(|c| c.1.clone());
    }))
    .await;
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "store_unavailable")
    );
    assert_eq!(app.memory_pms().posts_attempted(), 0, "nothing posted");
    let error = readyz_store_error(&app).await;
    eprintln!("/readyz: {error}");
    assert!(
        error.contains(words),
        "/readyz says {error:?}, not {words:?}"
    );

    let (ok, out) = check_config(&config_toml(server.port, ca, client));
    assert!(!ok, "check-config passed: {out}");
    assert!(
        out.lines()
            .any(|l| l.contains("FAIL") && l.contains("redis") && l.contains(words)),
        "check-config says {out}, not {words:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ca_is_named() {
    let pki = Pki::new();
    let server = tls_server(&pki, &pki.foreign, false);
    refused(&server, &pki.ca, None, "unknown CA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_name_is_named() {
    let pki = Pki::new();
    let server = tls_server(&pki, &pki.wrong_name, false);
    refused(&server, &pki.ca, None, "wrong name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_named() {
    let pki = Pki::new();
    let server = tls_server(&pki, &pki.expired, false);
    refused(&server, &pki.ca, None, "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_client_certificate_is_named() {
    let pki = Pki::new();
    let server = tls_server(&pki, &pki.server, true);
    refused(&server, &pki.ca, None, "client certificate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_client_certificate_is_named() {
    let pki = Pki::new();
    let server = tls_server(&pki, &pki.server, true);
    refused(
        &server,
        &pki.ca,
        Some(&pki.foreign_client),
        "client certificate",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_with_mutual_tls() {
    let (pki, server) = shared_tls();
    let (ok, out) = check_config(&config_toml(server.port, &pki.ca, Some(&pki.client)));
    assert!(ok, "{out}");
    assert!(out.contains("redis reachable"), "{out}");
}

#[test]
fn tls_files_without_rediss_are_refused_at_start() {
    let pki = Pki::new();
    let settings = settings(&StoreChoice::RedisAt("redis://127.0.0.1:1".into()), |s_| {
        s_.idempotency.tls_ca_file = Some(s(&pki.ca));
    });
    let err = chargebridge::startup::Application::build(settings)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not rediss://"), "{err}");
    let _ = &pki.other_ca;
    let _ = &pki.dir;
}
