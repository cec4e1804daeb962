//! A charge as chargebridge understands it: what goes on the guest's folio.
//!
//! Built in one place ([`Charge::from_wire`]) from the wire model and the tenant;
//! the rest of the code only sees checked values.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::money::{moved_beyond_float_noise, round_fine, round_to_minor_unit};
use super::{IdempotencyKey, Tenant};
use crate::config::MappingSettings;
use crate::error::{ApiError, Problem};
use crate::lightspeed::v1;

/// Largest magnitude of any money value (well above any receipt, far below overflow).
const MAX_MONEY: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0); // 10^15

/// The reference every posting carries so the PMS can find it again: derived from
/// tenant and idempotency key, so a retry (or a lost Redis record) yields the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PostingReference(String);

impl PostingReference {
    /// `cb-` and 29 hex digits of SHA-256(tenant NUL key): 32 characters, which fits
    /// the reference fields of the PMSs we post to.
    pub fn derive(tenant: &str, key: &IdempotencyKey) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(tenant.as_bytes());
        hasher.update([0u8]);
        hasher.update(key.as_str().as_bytes());
        let hex = hex::encode(hasher.finalize());
        PostingReference(format!("cb-{}", &hex[..29]))
    }

    /// The reference of one reservation's posting when a receipt charges several
    /// rooms (MULTI_PAYMENTS): each posting must be found again on its own.
    pub fn derive_for_reservation(tenant: &str, key: &IdempotencyKey, reservation: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(tenant.as_bytes());
        hasher.update([0u8]);
        hasher.update(key.as_str().as_bytes());
        hasher.update([0u8]);
        hasher.update(reservation.as_bytes());
        let hex = hex::encode(hasher.finalize());
        PostingReference(format!("cb-{}", &hex[..29]))
    }

    /// The reference of the payment (in PMS method `method`) that settles the
    /// revenue part whose reference is `charge`.
    pub fn for_settlement(charge: &PostingReference, method: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"settlement");
        hasher.update([0u8]);
        hasher.update(charge.0.as_bytes());
        hasher.update([0u8]);
        hasher.update(method.as_bytes());
        let hex = hex::encode(hasher.finalize());
        PostingReference(format!("cb-{}", &hex[..29]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostingReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id with its display name (revenue center, staff, accounting group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Named {
    fn from_parts(
        id: Option<&crate::lightspeed::shapes::Id>,
        name: Option<&String>,
    ) -> Option<Named> {
        if id.is_none() && name.is_none() {
            return None;
        }
        Some(Named {
            id: id.map(|i| i.as_str().to_string()),
            name: name.cloned(),
        })
    }
}

/// The part of the receipt paid "to room".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomCharge {
    pub reservation_id: String,
    /// Total to put on the folio, tip included.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The tip part of `amount`.
    #[serde(with = "rust_decimal::serde::str")]
    pub gratuity: Decimal,
    pub payment_method: String,
    /// A receipt's non-room revenue, addressed to a house account
    /// (`revenue_posting`), not a guest's room charge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revenue: bool,
    /// `revenue_posting = "daily"`: this revenue part is not posted on its own
    /// but summed into the daily summary of its business date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_date: Option<chrono::NaiveDate>,
    /// On a revenue part: the receipt's non-room payments, posted as payments
    /// against the same house account so it balances to zero (the tenant maps
    /// `payment_methods`); one settlement part each ([`Charge::parts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<RevenuePayment>,
    /// This part is a payment (method `payment_method`, `amount`) against the
    /// house account `reservation_id`, not a charge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settlement: bool,
    /// On a settlement: the reference of the revenue charge it settles (posted
    /// before it), so an adapter can tell how far back to look for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles: Option<PostingReference>,
}

impl RoomCharge {
    /// What tells one posting of a receipt from another: the reservation (or
    /// house account), and for a settlement its payment method.
    pub fn part_payment(&self) -> Option<&str> {
        self.settlement.then_some(self.payment_method.as_str())
    }
}

/// One of a receipt's payments that settles its revenue part on the house
/// account, summed per PMS payment method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevenuePayment {
    /// The PMS's payment method (tenant mapping `payment_methods`).
    pub method: String,
    /// The Lightspeed method code(s) it comes from, `+`-joined.
    pub lightspeed: String,
    /// Tip included, like the revenue part; negative for a refund.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<Decimal>,
    /// As Lightspeed sends it (its example uses a multiplier: 1.1 for 10 %).
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included: Option<bool>,
    /// The tenant's PMS tax code for this tax (`[tenants.mapping] taxes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pms_tax_code: Option<String>,
}

/// One itemized sale line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub unit_amount: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub line_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting_group: Option<Named>,
    /// The tenant's PMS revenue / transaction code for the accounting group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<Named>,
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_charge_contribution: Option<Decimal>,
    pub tax_lines: Vec<TaxItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChargeItem {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// `UNTAXED`, `APPORTIONED`, or whatever Lightspeed adds later.
    pub kind: String,
}

/// The receipt's identifiers, kept for the PMS and for people reading logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptRefs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
    /// `fiscId`, else `uuid`, else the deprecated `identifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fisc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_account_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub tenant: String,
    pub idempotency_key: String,
    pub reference: PostingReference,
    pub receipt: ReceiptRefs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub currency: String,
    /// One per reservation the receipt is charged to, in the order the payments
    /// first name them. Empty: no room-charge payment, nothing to post. A charge
    /// handed to a PMS adapter always has exactly one ([`Charge::postings`]).
    pub rooms: Vec<RoomCharge>,
    /// A refund or void (negative room amount); `receipt.initial_account_id` links
    /// it to the original sale.
    pub refund: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_center: Option<Named>,
    /// The tenant's PMS outlet / service for the revenue center.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
    /// PMS codes for the tip and service-charge parts, where the tenant maps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gratuity_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_charge_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<u32>,
    pub lines: Vec<Line>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_charge: Option<ServiceChargeItem>,
}

fn check_money(path: impl Fn() -> String, value: Decimal) -> Result<Decimal, ApiError> {
    // Any number of decimals is accepted (float residue from the POS is
    // common); money is rounded to the currency's minor unit where it is
    // posted (`Charge::postings`), while the journal keeps what was sent.
    if value.abs() > MAX_MONEY {
        return Err(ApiError::invalid(path(), "amount out of range"));
    }
    Ok(value)
}

fn check_opt_money(
    path: impl Fn() -> String,
    value: Option<Decimal>,
) -> Result<Option<Decimal>, ApiError> {
    value.map(|v| check_money(path, v)).transpose()
}

impl Charge {
    /// The one conversion from the wire model: applies the tenant's room-charge
    /// codes and the business rules, naming the field of any failure.
    pub fn from_wire(
        wire: &v1::ChargeTransaction,
        tenant: &Tenant,
        key: &IdempotencyKey,
        received_at: DateTime<Utc>,
    ) -> Result<Charge, ApiError> {
        if let (Some(open), Some(close)) = (wire.open_date, wire.close_date)
            && close < open
        {
            return Err(ApiError::invalid("closeDate", "before openDate"));
        }

        let latest_payment = wire.payments.iter().filter_map(|p| p.payment_date).max();
        let closed_at = wire.close_date.or(latest_payment).unwrap_or(received_at);
        let mut rooms = room_charges(wire, tenant)?;
        if let Some(revenue) = revenue_part(wire, tenant, closed_at)? {
            rooms.push(revenue);
        }
        let mapping = &tenant.mapping;
        let lines = wire
            .transactions
            .iter()
            .enumerate()
            .map(|(i, line)| convert_line(i, line, mapping))
            .collect::<Result<Vec<_>, _>>()?;
        let service_charge = match &wire.service_charge {
            Some(sc) => {
                check_opt_money(|| "serviceCharge.amount".into(), sc.amount)?.map(|amount| {
                    ServiceChargeItem {
                        amount,
                        kind: sc
                            .charge_type
                            .as_ref()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_else(|| "UNTAXED".to_string()),
                    }
                })
            }
            None => None,
        };

        warn_if_tip_reading_contradicts(wire, tenant, &rooms, &lines, service_charge.as_ref());
        let total: Decimal = rooms.iter().map(|r| r.amount).sum();
        let refund = total.is_sign_negative() && !total.is_zero();

        Ok(Charge {
            tenant: tenant.id.clone(),
            idempotency_key: key.as_str().to_string(),
            reference: PostingReference::derive(&tenant.id, key),
            receipt: ReceiptRefs {
                receipt_id: wire.receipt_id.clone(),
                fisc_id: wire.receipt_identifier().map(str::to_string),
                uuid: wire.uuid.clone(),
                initial_account_id: wire.initial_account_id.clone(),
            },
            name: wire.name.clone(),
            currency: tenant.currency.clone(),
            rooms,
            refund,
            opened_at: wire.open_date,
            closed_at,
            revenue_center: Named::from_parts(
                wire.revenue_center_id.as_ref(),
                wire.revenue_center_name.as_ref(),
            ),
            outlet: lookup(
                &mapping.revenue_centers,
                wire.revenue_center_id.as_ref().map(|i| i.as_str()),
                wire.revenue_center_name.as_deref(),
            )
            .or_else(|| mapping.default_revenue_center.clone()),
            gratuity_code: mapping.gratuity_code.clone(),
            service_charge_code: mapping.service_charge_code.clone(),
            owner: Named::from_parts(wire.owner_id.as_ref(), wire.owner_name.as_ref()),
            device_id: wire.device_id.as_ref().map(|d| d.as_str().to_string()),
            covers: wire.covers,
            lines,
            service_charge,
        })
    }

    /// A part that goes into a daily revenue summary instead of to the PMS.
    fn is_deferred(&self) -> bool {
        self.room().is_some_and(|r| r.summary_date.is_some())
    }

    /// Whether anything is to be posted to the PMS.
    pub fn needs_posting(&self) -> bool {
        !self.rooms.is_empty()
    }

    /// Room charges that all come to zero: nothing a PMS should be asked to post
    /// (most refuse zero postings); acknowledged and kept in the journal.
    pub fn charges_nothing(&self) -> bool {
        !self.rooms.is_empty()
            && self
                .rooms
                .iter()
                .all(|r| round_to_minor_unit(r.amount, &self.currency).is_zero())
    }

    /// The room of a charge that goes to one reservation (every charge an
    /// adapter receives); `None` when there are none or several.
    pub fn room(&self) -> Option<&RoomCharge> {
        match self.rooms.as_slice() {
            [room] => Some(room),
            _ => None,
        }
    }

    /// The postings this receipt asks for: itself when it charges one
    /// reservation; one charge per reservation otherwise, each with its own
    /// reference and its share of the items ([`apportion`]).
    /// Money in them is rounded to the currency's minor unit ([`Charge::rounded`]).
    /// Revenue parts deferred to a daily summary are not among them
    /// ([`Charge::parts`]).
    pub fn postings(self) -> Vec<Charge> {
        self.parts().0
    }

    /// [`Charge::postings`], and the revenue parts that go into a daily
    /// revenue summary instead (`revenue_posting = "daily"`).
    pub fn parts(self) -> (Vec<Charge>, Vec<Charge>) {
        let this = self.rounded();
        let all = if this.rooms.len() <= 1 {
            vec![this]
        } else {
            this.split_by_reservation()
        };
        let (postings, deferred): (Vec<Charge>, Vec<Charge>) =
            all.into_iter().partition(|p| !p.is_deferred());
        let postings = postings
            .into_iter()
            .flat_map(|p| {
                let settlements = p.settlements();
                std::iter::once(p).chain(settlements)
            })
            .collect();
        (postings, deferred)
    }

    /// The payments that settle this revenue part on its house account, one
    /// posting each (posted after the charge, found again by their own
    /// reference).
    fn settlements(&self) -> Vec<Charge> {
        let Some(room) = self.room().filter(|r| r.revenue && !r.settlement) else {
            return Vec::new();
        };
        // Each payment is rounded on its own: what rounding leaves over goes
        // onto the largest, so the account still balances to zero.
        let mut payments = room.payments.clone();
        let left = room.amount - payments.iter().map(|p| p.amount).sum::<Decimal>();
        if let Some(largest) = payments.iter_mut().max_by_key(|p| p.amount.abs()) {
            largest.amount += left;
        }
        payments
            .iter()
            .filter(|p| !p.amount.is_zero())
            .map(|p| Charge {
                reference: PostingReference::for_settlement(&self.reference, &p.method),
                rooms: vec![RoomCharge {
                    reservation_id: room.reservation_id.clone(),
                    amount: p.amount,
                    gratuity: Decimal::ZERO,
                    payment_method: p.method.clone(),
                    revenue: true,
                    summary_date: None,
                    payments: Vec::new(),
                    settlement: true,
                    settles: Some(self.reference.clone()),
                }],
                refund: p.amount.is_sign_negative(),
                lines: Vec::new(),
                service_charge: None,
                ..self.clone()
            })
            .collect()
    }

    /// What a folio can hold: room amounts, tips, line and tax amounts and the
    /// service charge rounded half to even at the currency's minor unit;
    /// quantities, unit amounts and rates at 8 places (they may be finer than a
    /// cent). Exact values Lightspeed sent have at most that many decimals and
    /// come through unchanged.
    pub fn rounded(mut self) -> Charge {
        let currency = self.currency.clone();
        let money = |v: &mut Decimal| *v = round_to_minor_unit(*v, &currency);
        for room in &mut self.rooms {
            money(&mut room.amount);
            money(&mut room.gratuity);
            for payment in &mut room.payments {
                money(&mut payment.amount);
            }
        }
        for line in &mut self.lines {
            money(&mut line.amount);
            line.quantity = round_fine(line.quantity);
            line.unit_amount = line.unit_amount.map(round_fine);
            line.service_charge_contribution = line.service_charge_contribution.map(round_fine);
            for tax in &mut line.tax_lines {
                if let Some(amount) = tax.amount.as_mut() {
                    money(amount);
                }
                tax.rate = tax.rate.map(round_fine);
            }
        }
        if let Some(sc) = self.service_charge.as_mut() {
            money(&mut sc.amount);
        }
        self
    }

    fn split_by_reservation(self) -> Vec<Charge> {
        let key = IdempotencyKey::parse(self.idempotency_key.as_bytes());
        let bases: Vec<Decimal> = self.rooms.iter().map(|r| r.amount - r.gratuity).collect();
        let items = self.shareable_items();
        let shares = apportion(&items, &bases);
        self.rooms
            .iter()
            .zip(shares)
            .map(|(room, share)| {
                let mut part = self.clone();
                if let Ok(key) = &key {
                    part.reference = PostingReference::derive_for_reservation(
                        &self.tenant,
                        key,
                        &room.reservation_id,
                    );
                }
                part.refund = room.amount.is_sign_negative() && !room.amount.is_zero();
                part.rooms = vec![room.clone()];
                part.take_share(&share);
                part
            })
            .collect()
    }

    /// Gross of every line (amount plus taxes not included in it), then the
    /// service charge: the values [`Charge::postings`] shares out.
    fn shareable_items(&self) -> Vec<Decimal> {
        let mut items: Vec<Decimal> = self.lines.iter().map(Line::gross).collect();
        if let Some(sc) = &self.service_charge {
            items.push(sc.amount);
        }
        items
    }

    /// Rewrites lines and service charge to this posting's `share` (in the
    /// order of [`Charge::shareable_items`]). A shared line is gross: its taxes
    /// are marked included and shared in the same proportion.
    fn take_share(&mut self, share: &[Decimal]) {
        let mut share = share.iter().copied();
        for line in &mut self.lines {
            let gross = line.gross();
            let part = share.next().unwrap_or_default();
            for tax in &mut line.tax_lines {
                if let Some(amount) = tax.amount.as_mut()
                    && !gross.is_zero()
                {
                    let scale = amount.scale().max(2);
                    *amount = amount
                        .checked_mul(part)
                        .and_then(|x| x.checked_div(gross))
                        .unwrap_or_default()
                        .round_dp(scale);
                }
                tax.included = Some(true);
            }
            line.amount = part;
            line.unit_amount = None;
        }
        if let Some(sc) = self.service_charge.as_mut() {
            sc.amount = share.next().unwrap_or_default();
        }
    }
}

impl Line {
    /// What the guest owes for the line: its amount plus any tax not included.
    pub fn gross(&self) -> Decimal {
        let excluded: Decimal = self
            .tax_lines
            .iter()
            .filter(|t| t.included == Some(false))
            .filter_map(|t| t.amount)
            .sum();
        self.amount + excluded
    }
}

/// Shares `items` out over postings whose amounts are `bases`, so that each
/// posting's items add up to its base whenever the items add up to the total:
///
/// * every posting but the largest (the first of equal ones) gets each item
///   times its share of the total, rounded half-even to the item's decimals
///   (at least cents); what rounding leaves over goes onto its largest item;
/// * the largest posting gets, item by item, what the others left.
///
/// When the items do not add up to the total (a receipt also paid by cash or
/// card), the shares are proportional but not exact, and the folio of such a
/// posting is consolidated (see `pms::itemize`).
pub fn apportion(items: &[Decimal], bases: &[Decimal]) -> Vec<Vec<Decimal>> {
    let total: Decimal = bases.iter().copied().sum();
    let n = bases.len();
    let mut shares = vec![vec![Decimal::ZERO; items.len()]; n];
    if n == 0 {
        return shares;
    }
    let largest = (0..n).fold(0, |best, i| {
        if bases[i].abs() > bases[best].abs() {
            i
        } else {
            best
        }
    });
    if total.is_zero() {
        shares[largest] = items.to_vec();
        return shares;
    }
    let items_total: Decimal = items.iter().copied().sum();
    for (i, base) in bases.iter().enumerate() {
        if i == largest {
            continue;
        }
        let row = &mut shares[i];
        for (j, item) in items.iter().enumerate() {
            let part = item.checked_mul(*base).and_then(|x| x.checked_div(total));
            row[j] = part.unwrap_or_default().round_dp(item.scale().max(2));
        }
        let rest = *base - row.iter().copied().sum::<Decimal>();
        if items_total == total
            && !rest.is_zero()
            && let Some(j) = (0..row.len()).max_by_key(|&j| row[j].abs())
        {
            row[j] += rest;
        }
    }
    for (j, item) in items.iter().enumerate() {
        let others: Decimal = (0..n).filter(|&i| i != largest).map(|i| shares[i][j]).sum();
        shares[largest][j] = *item - others;
    }
    shares
}

/// Lightspeed's documents disagree on whether a payment's `amount` holds the tip.
/// On a receipt paid to room in full, the arithmetic tells: lines plus service
/// charge equal `amount` (tip on top) or `amount` minus the tips (tip inside).
/// A receipt that fits only the other reading is logged, naming the setting.
fn warn_if_tip_reading_contradicts(
    wire: &v1::ChargeTransaction,
    tenant: &Tenant,
    rooms: &[RoomCharge],
    lines: &[Line],
    service_charge: Option<&ServiceChargeItem>,
) {
    if let Some(setting) = tip_reading_contradiction(wire, tenant, rooms, lines, service_charge) {
        tracing::warn!(
            tenant = %tenant.id,
            "this receipt adds up only if the tip is read the other way: check the tenant's {setting}"
        );
    }
}

/// The setting that would make this receipt add up, when the tenant's does not.
fn tip_reading_contradiction(
    wire: &v1::ChargeTransaction,
    tenant: &Tenant,
    rooms: &[RoomCharge],
    lines: &[Line],
    service_charge: Option<&ServiceChargeItem>,
) -> Option<&'static str> {
    let fully_room_charged = !wire.payments.is_empty()
        && wire.payments.iter().all(|p| {
            p.method_code
                .as_deref()
                .is_some_and(|c| tenant.is_room_charge_code(c))
        });
    let tips: Decimal = rooms.iter().map(|r| r.gratuity).sum();
    if !fully_room_charged || tips.is_zero() || lines.is_empty() {
        return None;
    }
    let items: Decimal = lines.iter().map(Line::gross).sum::<Decimal>()
        + service_charge.map_or(Decimal::ZERO, |s| s.amount);
    let paid: Decimal = wire.payments.iter().filter_map(|p| p.amount).sum();
    if tenant.gratuity_included {
        (paid == items).then_some("gratuity_included = false")
    } else {
        (paid == items + tips).then_some("gratuity_included = true")
    }
}

/// Sums the payments made with one of the tenant's room-charge codes, per
/// reservation (several reservations on one receipt: MULTI_PAYMENTS).
fn room_charges(
    wire: &v1::ChargeTransaction,
    tenant: &Tenant,
) -> Result<Vec<RoomCharge>, ApiError> {
    let mut rooms: Vec<RoomCharge> = Vec::new();
    for (i, p) in wire.payments.iter().enumerate() {
        let gratuity =
            check_opt_money(|| format!("payments[{i}].gratuity"), p.gratuity)?.unwrap_or_default();
        let amount = check_opt_money(|| format!("payments[{i}].amount"), p.amount)?;
        let Some(code) = p.method_code.as_deref() else {
            continue;
        };
        if !tenant.is_room_charge_code(code) {
            continue;
        }
        let amount = amount.ok_or_else(|| {
            ApiError::payload(Problem::Missing, format!("payments[{i}].amount"), "missing")
        })?;
        warn_if_rounding_moves(tenant, || format!("payments[{i}].amount"), amount);
        warn_if_rounding_moves(tenant, || format!("payments[{i}].gratuity"), gratuity);
        let reservation = p
            .reservation_id
            .as_ref()
            .map(|r| r.as_str().trim())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                ApiError::payload(
                    Problem::NoReservation,
                    format!("payments[{i}].reservationId"),
                    "missing for a room charge",
                )
            })?;
        let total = if tenant.gratuity_included {
            amount
        } else {
            amount + gratuity
        };
        match rooms.iter_mut().find(|r| r.reservation_id == reservation) {
            Some(r) => {
                r.amount += total;
                r.gratuity += gratuity;
            }
            None => rooms.push(RoomCharge {
                reservation_id: reservation.to_string(),
                amount: total,
                gratuity,
                payment_method: code.trim().to_string(),
                revenue: false,
                summary_date: None,
                payments: Vec::new(),
                settlement: false,
                settles: None,
            }),
        }
    }
    for r in &rooms {
        check_money(|| "payments".into(), r.amount)?;
    }
    Ok(rooms)
}

/// With `revenue_posting = "per_receipt"` or `"daily"`: the receipt's payments that are not
/// room charges (cash, card, …), as one more posting to the house account mapped
/// for its revenue center. It is split from the room parts like a second
/// reservation (its own reference, its share of the items), so a receipt paid
/// partly to a room posts the room's part to the guest and the rest to the
/// outlet's account. `None` when off, when nothing is paid otherwise, or when no
/// account is mapped (logged: the receipt's revenue then stays out of the PMS).
/// `daily`: the part carries its business date and goes into that day's summary.
fn revenue_part(
    wire: &v1::ChargeTransaction,
    tenant: &Tenant,
    closed_at: DateTime<Utc>,
) -> Result<Option<RoomCharge>, ApiError> {
    use crate::config::RevenuePosting;
    let summary_date = match tenant.revenue_posting {
        RevenuePosting::Off => return Ok(None),
        RevenuePosting::PerReceipt => None,
        RevenuePosting::Daily => Some(tenant.business_date(closed_at)),
    };
    let mut amount = Decimal::ZERO;
    let mut gratuity = Decimal::ZERO;
    let mut methods: Vec<String> = Vec::new();
    let mut payments: Vec<RevenuePayment> = Vec::new();
    for (i, p) in wire.payments.iter().enumerate() {
        let code = p.method_code.as_deref().map(str::trim).unwrap_or("");
        if tenant.is_room_charge_code(code) {
            continue;
        }
        let paid =
            check_opt_money(|| format!("payments[{i}].amount"), p.amount)?.unwrap_or_default();
        let tip =
            check_opt_money(|| format!("payments[{i}].gratuity"), p.gratuity)?.unwrap_or_default();
        let total = if tenant.gratuity_included {
            paid
        } else {
            paid + tip
        };
        amount += total;
        gratuity += tip;
        if !code.is_empty() && !methods.iter().any(|m| m == code) {
            methods.push(code.to_string());
        }
        if let Some(method) = tenant.mapping.payment_method(code) {
            add_payment(&mut payments, method, code, total);
        }
    }
    if amount.is_zero() {
        return Ok(None);
    }
    check_money(|| "payments".into(), amount)?;
    let mapping = &tenant.mapping;
    let account = lookup(
        &mapping.revenue_accounts,
        wire.revenue_center_id.as_ref().map(|i| i.as_str()),
        wire.revenue_center_name.as_deref(),
    )
    .or_else(|| mapping.default_revenue_account.clone());
    let Some(account) = account else {
        tracing::error!(
            tenant = %tenant.id,
            revenue_center_id = wire.revenue_center_id.as_ref().map(|i| i.as_str()).unwrap_or(""),
            revenue_center_name = wire.revenue_center_name.as_deref().unwrap_or(""),
            %amount,
            "revenue posting is on but no house account is mapped for this revenue center: add it to [tenants.mapping] revenue_accounts (or default_revenue_account); this receipt's revenue is not posted"
        );
        return Ok(None);
    };
    Ok(Some(RoomCharge {
        reservation_id: account,
        amount,
        gratuity,
        payment_method: if methods.is_empty() {
            "revenue".to_string()
        } else {
            methods.join("+")
        },
        revenue: true,
        summary_date,
        payments,
        settlement: false,
        settles: None,
    }))
}

/// Sums `amount` into the payment of PMS method `method`.
fn add_payment(payments: &mut Vec<RevenuePayment>, method: &str, code: &str, amount: Decimal) {
    let code = if code.is_empty() { "?" } else { code };
    match payments.iter_mut().find(|p| p.method == method) {
        Some(p) => {
            p.amount += amount;
            if !p.lightspeed.split('+').any(|c| c == code) {
                p.lightspeed = format!("{}+{code}", p.lightspeed);
            }
        }
        None => payments.push(RevenuePayment {
            method: method.to_string(),
            lightspeed: code.to_string(),
            amount,
        }),
    }
}

/// A room-charge payment with more decimals than the currency has, beyond the
/// residue of a binary float: the folio gets the rounded value, and someone
/// should know the POS sent something else.
fn warn_if_rounding_moves(tenant: &Tenant, field: impl Fn() -> String, exact: Decimal) {
    let rounded = round_to_minor_unit(exact, &tenant.currency);
    if moved_beyond_float_noise(exact, rounded) {
        tracing::warn!(
            tenant = %tenant.id,
            field = %field(),
            sent = %exact,
            posted = %rounded,
            currency = %tenant.currency,
            "a room-charge payment has more decimals than its currency: the folio gets it rounded half to even"
        );
    }
}

/// A mapping entry by Lightspeed id, else by display name.
fn lookup(map: &BTreeMap<String, String>, id: Option<&str>, name: Option<&str>) -> Option<String> {
    id.and_then(|id| map.get(id))
        .or_else(|| name.and_then(|n| map.get(n)))
        .cloned()
}

fn convert_line(
    i: usize,
    line: &v1::TransactionLine,
    mapping: &MappingSettings,
) -> Result<Line, ApiError> {
    let at = |field: &str| format!("transactions[{i}].{field}");
    let quantity = check_opt_money(|| at("quantity"), line.quantity)?.unwrap_or(Decimal::ONE);
    let unit_amount = check_opt_money(|| at("unitAmount"), line.unit_amount)?;
    let amount = match check_opt_money(|| at("amount"), line.amount)? {
        Some(a) => a,
        None => match unit_amount {
            Some(u) => check_money(
                || at("amount"),
                u.checked_mul(quantity).unwrap_or(MAX_MONEY * Decimal::TEN),
            )?,
            // A note or modifier line: kept, at zero, for the itemized folio.
            None => Decimal::ZERO,
        },
    };
    let mut tax_lines = Vec::with_capacity(line.tax_lines.len().max(1));
    for (j, t) in line.tax_lines.iter().enumerate() {
        tax_lines.push(TaxItem {
            tax_id: t.tax_id.as_ref().map(|id| id.as_str().to_string()),
            name: t.tax_name.clone(),
            amount: check_opt_money(
                || format!("transactions[{i}].taxLines[{j}].taxAmount"),
                t.tax_amount,
            )?,
            rate: check_opt_money(
                || format!("transactions[{i}].taxLines[{j}].taxRate"),
                t.tax_rate,
            )?,
            included: t.tax_included,
            pms_tax_code: lookup(
                &mapping.taxes,
                t.tax_id.as_ref().map(|i| i.as_str()),
                t.tax_name.as_deref(),
            )
            .or_else(|| mapping.default_tax.clone()),
        });
    }
    // Deprecated per-line tax fields stand in when no taxLines were sent.
    if tax_lines.is_empty()
        && (line.tax_id.is_some() || line.tax_name.is_some() || line.tax_rate.is_some())
    {
        tax_lines.push(TaxItem {
            tax_id: line.tax_id.as_ref().map(|id| id.as_str().to_string()),
            name: line.tax_name.clone(),
            amount: None,
            rate: check_opt_money(|| at("taxRate"), line.tax_rate)?,
            included: line.tax_included,
            pms_tax_code: lookup(
                &mapping.taxes,
                line.tax_id.as_ref().map(|i| i.as_str()),
                line.tax_name.as_deref(),
            )
            .or_else(|| mapping.default_tax.clone()),
        });
    }
    Ok(Line {
        description: line.description.clone().unwrap_or_default(),
        sku: line.sku.clone(),
        quantity,
        unit_amount,
        amount,
        line_type: line
            .line_type
            .as_ref()
            .map(|t| t.as_str().to_string())
            .unwrap_or_else(|| "Sale".to_string()),
        accounting_group: Named::from_parts(line.group_id.as_ref(), line.group_name.as_ref()),
        revenue_code: lookup(
            &mapping.accounting_groups,
            line.group_id.as_ref().map(|i| i.as_str()),
            line.group_name.as_deref(),
        )
        .or_else(|| mapping.default_accounting_group.clone()),
        staff: Named::from_parts(line.staff_id.as_ref(), line.staff_name.as_ref()),
        service_charge_contribution: check_opt_money(
            || at("serviceChargeContribution"),
            line.service_charge_contribution,
        )?,
        tax_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(body: &str, included: bool) -> Option<&'static str> {
        let wire = crate::lightspeed::parse_charge(body.as_bytes()).unwrap();
        let mut tenant = Tenant::offline("t");
        tenant.gratuity_included = included;
        let key = IdempotencyKey::parse(b"k").unwrap();
        let c = Charge::from_wire(&wire, &tenant, &key, Utc::now()).unwrap();
        tip_reading_contradiction(
            &wire,
            &tenant,
            &c.rooms,
            &c.lines,
            c.service_charge.as_ref(),
        )
    }

    #[test]
    fn a_receipt_that_fits_only_the_other_tip_reading_is_flagged() {
        // Lightspeed's example: lines 11, amount 11, tip 1 on top.
        let on_top = r#"{"apiKey":"k","transactions":[{"amount":11}],
            "payments":[{"amount":11,"gratuity":1,"methodCode":"IKPMS","reservationId":"1"}]}"#;
        // The same receipt with the tip inside the amount.
        let inside = r#"{"apiKey":"k","transactions":[{"amount":11}],
            "payments":[{"amount":12,"gratuity":1,"methodCode":"IKPMS","reservationId":"1"}]}"#;
        assert_eq!(reading(on_top, false), None);
        assert_eq!(reading(inside, true), None);
        assert_eq!(reading(inside, false), Some("gratuity_included = true"));
        assert_eq!(reading(on_top, true), Some("gratuity_included = false"));
        // Partly paid by card: the arithmetic proves nothing.
        let partial = r#"{"apiKey":"k","transactions":[{"amount":11}],
            "payments":[{"amount":6,"gratuity":1,"methodCode":"IKPMS","reservationId":"1"},
                        {"amount":6,"methodCode":"CARD"}]}"#;
        assert_eq!(reading(partial, false), None);
    }

    #[test]
    fn max_money_is_ten_to_the_fifteenth() {
        assert_eq!(MAX_MONEY.to_string(), "1000000000000000");
    }

    #[test]
    fn references_are_stable_per_tenant_and_key() {
        let k = IdempotencyKey::parse(b"LS1_abc").unwrap();
        let a = PostingReference::derive("t1", &k);
        assert_eq!(a, PostingReference::derive("t1", &k));
        assert_ne!(a, PostingReference::derive("t2", &k));
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().starts_with("cb-"));
    }
}
