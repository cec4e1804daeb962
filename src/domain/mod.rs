//! Parse-don't-validate types: once built, a value is known to be valid.

mod charge;
mod idempotency_key;
pub mod money;
mod tenant;

pub use charge::{
    Charge, Line, Named, PostingReference, ReceiptRefs, RevenuePayment, RoomCharge,
    ServiceChargeItem, TaxItem,
};
pub use idempotency_key::{IdempotencyKey, MAX_KEY_LEN};
pub use tenant::{Tenant, Tenants};
