//! Revision 1 of Lightspeed's Charge Transaction payload, as delivered to `/charge`.
//!
//! Tolerant by design (Lightspeed's compatibility rules allow new fields, new enum
//! values and optional fields turning required): unknown fields are ignored here
//! (the raw body keeps them for fingerprinting and capture), unknown enum values
//! are kept as `Other`, and every field documented in two shapes accepts both.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use validator::Validate;

use super::shapes::{Id, one_or_many, opt_count, opt_decimal, opt_id, opt_timestamp};

/// Upper bounds that keep one delivery's cost bounded. A real receipt is far below.
pub const MAX_LINES: u64 = 2_000;
pub const MAX_PAYMENTS: u64 = 200;
pub const MAX_TAX_LINES: u64 = 50;
const MAX_TEXT: u64 = 1_000;
const MAX_REF: u64 = 255;

#[derive(Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct ChargeTransaction {
    #[validate(length(max = MAX_TEXT))]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub open_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub close_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_count")]
    pub covers: Option<u32>,
    #[serde(default, deserialize_with = "opt_id")]
    pub owner_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub owner_name: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub device_id: Option<Id>,
    /// The integrator's K-Series API client id, the same for every location it
    /// registers: not the tenant (that is `apiKey`), only an optional pin.
    #[validate(length(max = MAX_REF))]
    pub business_external_reference: Option<String>,
    pub api_key: SecretString,
    #[validate(length(max = MAX_REF))]
    pub receipt_id: Option<String>,
    #[validate(length(max = MAX_REF))]
    pub fisc_id: Option<String>,
    #[validate(length(max = MAX_REF))]
    pub uuid: Option<String>,
    #[validate(length(max = MAX_REF))]
    pub initial_account_id: Option<String>,
    /// Deprecated: the non-null value of `fiscId`, else `uuid`.
    #[validate(length(max = MAX_REF))]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub revenue_center_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub revenue_center_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    #[validate(nested)]
    pub transactions: Vec<TransactionLine>,
    #[serde(default, deserialize_with = "null_as_empty")]
    #[validate(nested)]
    pub payments: Vec<Payment>,
    #[validate(nested)]
    pub service_charge: Option<ServiceCharge>,
}

impl ChargeTransaction {
    /// List-size bounds (kept out of `validator`, which would copy the lists).
    pub fn check_sizes(&self) -> Result<(), (String, String)> {
        let over = |path: String, max: u64| Err((path, format!("more than {max} entries")));
        if self.transactions.len() as u64 > MAX_LINES {
            return over("transactions".into(), MAX_LINES);
        }
        if self.payments.len() as u64 > MAX_PAYMENTS {
            return over("payments".into(), MAX_PAYMENTS);
        }
        for (i, line) in self.transactions.iter().enumerate() {
            if line.tax_lines.len() as u64 > MAX_TAX_LINES {
                return over(format!("transactions[{i}].taxLines"), MAX_TAX_LINES);
            }
        }
        Ok(())
    }

    /// The receipt's identifier, with the documented fallback for `identifier`.
    pub fn receipt_identifier(&self) -> Option<&str> {
        super::receipt_identifier([&self.fisc_id, &self.uuid, &self.identifier])
    }
}

impl fmt::Debug for ChargeTransaction {
    // Hand-written so `apiKey` (and guest-facing free text) never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChargeTransaction")
            .field(
                "business_external_reference",
                &self.business_external_reference,
            )
            .field("api_key", &"[redacted]")
            .field("fisc_id", &self.fisc_id)
            .field("receipt_id", &self.receipt_id)
            .field("transactions", &self.transactions.len())
            .field("payments", &self.payments.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct TransactionLine {
    #[serde(default, deserialize_with = "opt_decimal")]
    pub unit_amount: Option<Decimal>,
    /// Deprecated but still sent; negative means refund, cancellation or void.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub quantity: Option<Decimal>,
    /// Pre-tax line total (Lightspeed's documents also describe it as including tax).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub amount: Option<Decimal>,
    #[validate(length(max = MAX_TEXT))]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub staff_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub staff_name: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub group_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub group_name: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    pub tax_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub tax_name: Option<String>,
    /// A multiplier in Lightspeed's example (`1.1` for 10 %).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub tax_rate: Option<Decimal>,
    pub tax_included: Option<bool>,
    #[validate(length(max = MAX_REF))]
    pub sku: Option<String>,
    #[serde(rename = "type")]
    pub line_type: Option<LineType>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub service_charge_contribution: Option<Decimal>,
    #[serde(default, deserialize_with = "one_or_many")]
    #[validate(nested)]
    pub tax_lines: Vec<TaxLine>,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct TaxLine {
    #[serde(default, deserialize_with = "opt_id")]
    pub tax_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub tax_name: Option<String>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub tax_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub tax_rate: Option<Decimal>,
    pub tax_included: Option<bool>,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub payment_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_id")]
    pub staff_id: Option<Id>,
    #[validate(length(max = MAX_TEXT))]
    pub staff_name: Option<String>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub gratuity: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub amount: Option<Decimal>,
    #[validate(length(max = MAX_TEXT))]
    pub method_name: Option<String>,
    #[validate(length(max = MAX_REF))]
    pub method_code: Option<String>,
    /// Deprecated in the docs but the only link to the guest's stay.
    #[serde(default, deserialize_with = "opt_id")]
    pub reservation_id: Option<Id>,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCharge {
    #[serde(default, deserialize_with = "opt_decimal")]
    pub amount: Option<Decimal>,
    #[serde(rename = "type")]
    pub charge_type: Option<ServiceChargeType>,
}

/// `transactions[].type`. Values Lightspeed adds later are kept, not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineType {
    Sale,
    LineDiscount,
    AccountDiscount,
    PercentItem,
    Other(String),
}

impl LineType {
    pub fn as_str(&self) -> &str {
        match self {
            LineType::Sale => "Sale",
            LineType::LineDiscount => "LineDiscount",
            LineType::AccountDiscount => "AccountDiscount",
            LineType::PercentItem => "PercentItem",
            LineType::Other(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for LineType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "Sale" => LineType::Sale,
            "LineDiscount" => LineType::LineDiscount,
            "AccountDiscount" => LineType::AccountDiscount,
            "PercentItem" => LineType::PercentItem,
            _ => LineType::Other(s),
        })
    }
}

/// `serviceCharge.type`. Unknown values are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChargeType {
    Untaxed,
    Apportioned,
    Other(String),
}

impl ServiceChargeType {
    pub fn as_str(&self) -> &str {
        match self {
            ServiceChargeType::Untaxed => "UNTAXED",
            ServiceChargeType::Apportioned => "APPORTIONED",
            ServiceChargeType::Other(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for ServiceChargeType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "UNTAXED" => ServiceChargeType::Untaxed,
            "APPORTIONED" => ServiceChargeType::Apportioned,
            _ => ServiceChargeType::Other(s),
        })
    }
}

/// Lightspeed may send `null` for a list; treat it as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}
