//! One test binary for the HTTP API: the real app on a random port per test,
//! a real Redis started by the harness, no mocks.

mod admin;
mod apaleo;
mod charge;
mod conformance;
mod contract;
mod failures;
mod fake_apaleo;
mod fake_http_pms;
mod fake_mews;
mod fake_opera;
mod hard_kill;
mod helpers;
mod hostile;
mod http_adapter;
mod journal;
mod malformed;
mod mews;
mod opera;
mod ops;
#[path = "../support/path_template.rs"]
mod path_template;
mod probes;
mod receipts;
mod redis_sentinel;
mod redis_server;
mod redis_store;
mod redis_tls;
mod replay;
mod revenue;
mod secrets;
mod tolerance;
mod v2;
mod vendor_oracle;
