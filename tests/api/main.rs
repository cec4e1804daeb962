//! One test binary for the HTTP API: the real app on a random port per test,
//! a real Redis started by the harness, no mocks.

mod charge;
mod conformance;
mod contract;
mod failures;
mod helpers;
mod malformed;
mod ops;
mod receipts;
mod redis_server;
mod redis_store;
mod replay;
