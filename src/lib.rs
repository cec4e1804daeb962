//! chargebridge: the Lightspeed Restaurant (K-Series) PMS provider that posts
//! "charge to room" sales to a hotel's property-management system exactly once.
//!
//! Data flows one way: `routes` → `lightspeed` (wire model) → `domain::Charge` →
//! `posting` (through `idempotency`) → `pms` adapter → response.

pub mod admin;
pub mod admin_cli;
pub mod capture;
pub mod check_config;
pub mod cli;
pub mod config;
pub mod daily_revenue;
pub mod domain;
pub mod error;
pub mod guest_search;
pub mod idempotency;
pub mod journal;
pub mod lightspeed;
pub mod lightspeed_cli;
pub mod metrics;
pub mod pms;
pub mod posting;
pub mod replay;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod text_table;
pub mod validate;
pub mod wire_errors;
pub mod worker;
