//! How a receipt becomes folio items, the same way for every PMS.
//!
//! The folio must carry exactly the room-charge amount (`room.amount`, tip
//! included), whatever else was paid by cash or card. Lightspeed apportions tips
//! and service charges across partial payments, so the sale lines of a receipt
//! only describe the room charge when the room payment covers the whole receipt:
//!
//! * **Itemized** when the lines' gross (amount plus taxes not included in it),
//!   the service charge and the tip add up to the room amount exactly: one item
//!   per line (with its revenue and tax codes), one for the service charge, one for
//!   the tip.
//! * **Consolidated** otherwise (partial payment, or data that do not add up): one
//!   item for the room amount without the tip, under the default revenue code,
//!   plus one tip item. The total is always exact; the detail is what is honest.

use rust_decimal::Decimal;

use crate::domain::Charge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Sale,
    ServiceCharge,
    Tip,
    /// Stands for the whole (partial) room payment.
    Consolidated,
}

/// One folio item, gross (what the guest owes for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolioItem {
    pub kind: ItemKind,
    pub description: String,
    /// Whole units where the receipt has them; a fractional quantity (0.5 kg) is
    /// posted as one unit at the line's gross, never rounded.
    pub quantity: i32,
    pub unit_gross: Decimal,
    pub gross: Decimal,
    /// Mapped PMS revenue / transaction code (`None`: the PMS default).
    pub revenue_code: Option<String>,
    /// Mapped PMS tax code of the line's first tax.
    pub tax_code: Option<String>,
    /// Tax rate as a percentage (10 for 10 %), where known.
    pub tax_percent: Option<Decimal>,
}

/// The items of a room charge; empty when there is nothing to post.
pub fn folio_items(charge: &Charge) -> Vec<FolioItem> {
    let Some(room) = charge.room() else {
        return Vec::new();
    };
    let tip = room.gratuity;
    let mut items = Vec::new();
    for line in &charge.lines {
        let excluded_tax: Decimal = line
            .tax_lines
            .iter()
            .filter(|t| t.included == Some(false))
            .filter_map(|t| t.amount)
            .sum();
        let gross = line.amount + excluded_tax;
        let (quantity, unit_gross) = whole_units(line.quantity, gross, &charge.currency);
        let first_tax = line.tax_lines.first();
        items.push(FolioItem {
            kind: ItemKind::Sale,
            description: if line.description.is_empty() {
                "Restaurant item".to_string()
            } else {
                line.description.clone()
            },
            quantity,
            unit_gross,
            gross,
            revenue_code: line.revenue_code.clone(),
            tax_code: first_tax.and_then(|t| t.pms_tax_code.clone()),
            tax_percent: first_tax.and_then(|t| t.rate).map(rate_to_percent),
        });
    }
    if let Some(sc) = &charge.service_charge
        && !sc.amount.is_zero()
    {
        items.push(FolioItem {
            kind: ItemKind::ServiceCharge,
            description: "Service charge".to_string(),
            quantity: 1,
            unit_gross: sc.amount,
            gross: sc.amount,
            revenue_code: charge.service_charge_code.clone(),
            tax_code: None,
            tax_percent: None,
        });
    }
    let itemized_total: Decimal = items.iter().map(|i| i.gross).sum::<Decimal>() + tip;
    if items.is_empty() || itemized_total != room.amount {
        let rest = room.amount - tip;
        let receipt = charge
            .receipt
            .receipt_id
            .as_deref()
            .or(charge.receipt.fisc_id.as_deref())
            .unwrap_or("");
        items = vec![FolioItem {
            kind: ItemKind::Consolidated,
            description: format!("Restaurant {receipt}").trim_end().to_string(),
            quantity: 1,
            unit_gross: rest,
            gross: rest,
            revenue_code: charge.lines.iter().find_map(|l| l.revenue_code.clone()),
            tax_code: None,
            tax_percent: None,
        }];
    }
    if !tip.is_zero() {
        items.push(FolioItem {
            kind: ItemKind::Tip,
            description: "Tip".to_string(),
            quantity: 1,
            unit_gross: tip,
            gross: tip,
            revenue_code: charge.gratuity_code.clone(),
            tax_code: None,
            tax_percent: None,
        });
    }
    items
}

/// `(2, 10.00)` for 2 × 10.00; `(1, 7.50)` for 0.5 kg at 15.00 (no rounding).
/// A negative quantity (refund) keeps its sign on the count. A unit price the
/// currency cannot show (3 × 10.00/3, 2 × 5.005 EUR) is never rounded: the line
/// posts as one unit at its gross, so the folio total stays exact.
fn whole_units(quantity: Decimal, gross: Decimal, currency: &str) -> (i32, Decimal) {
    use rust_decimal::prelude::ToPrimitive;
    if quantity.fract().is_zero()
        && !quantity.is_zero()
        && let Some(q) = quantity.to_i32()
    {
        let unit = gross / Decimal::from(q);
        let shown = crate::domain::money::round_to_minor_unit(unit, currency);
        if shown == unit && unit * Decimal::from(q) == gross {
            return (q, unit);
        }
    }
    if gross.is_sign_negative() {
        (-1, -gross)
    } else {
        (1, gross)
    }
}

/// Lightspeed's example sends 10 % as the multiplier 1.1; others send 0.1 or 10.
fn rate_to_percent(rate: Decimal) -> Decimal {
    let hundred = Decimal::ONE_HUNDRED;
    if rate > Decimal::ONE && rate < Decimal::TWO {
        ((rate - Decimal::ONE) * hundred).normalize()
    } else if rate <= Decimal::ONE {
        (rate * hundred).normalize()
    } else {
        rate.normalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge_of(json: &str) -> Charge {
        crate::pms::demo_charge(json)
    }

    fn total(items: &[FolioItem]) -> Decimal {
        items.iter().map(|i| i.gross).sum()
    }

    #[test]
    fn inconsistent_seed_is_consolidated_to_the_exact_room_amount() {
        let c = charge_of(include_str!("../../fixtures/payloads/seed-example.json"));
        let items = folio_items(&c);
        assert_eq!(total(&items), Decimal::new(670, 1));
        assert_eq!(items[0].kind, ItemKind::Consolidated);
        assert_eq!(items[1].kind, ItemKind::Tip);
        assert_eq!(items[1].gross, Decimal::new(10, 1));
    }

    #[test]
    fn a_receipt_that_adds_up_is_itemized() {
        let json = r#"{"businessExternalReference":"quickbooks-123","apiKey":"k",
          "transactions":[
            {"quantity":2,"amount":20.00,"description":"Fries","taxLines":[{"taxAmount":2.00,"taxRate":1.1,"taxIncluded":false}]},
            {"quantity":0.5,"amount":7.50,"description":"Cheese"}],
          "serviceCharge":{"amount":3.00,"type":"UNTAXED"},
          "payments":[{"amount":32.50,"gratuity":1.50,"methodCode":"IKPMS","reservationId":"001"}]}"#;
        let items = folio_items(&charge_of(json));
        assert_eq!(total(&items), Decimal::new(3400, 2));
        let kinds: Vec<_> = items.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            [
                ItemKind::Sale,
                ItemKind::Sale,
                ItemKind::ServiceCharge,
                ItemKind::Tip
            ]
        );
        assert_eq!(
            (items[0].quantity, items[0].unit_gross),
            (2, Decimal::new(1100, 2))
        );
        assert_eq!(items[0].tax_percent, Some(Decimal::TEN));
        assert_eq!(
            (items[1].quantity, items[1].unit_gross),
            (1, Decimal::new(750, 2))
        );
    }

    #[test]
    fn refunds_keep_their_sign() {
        let c = charge_of(include_str!("../../fixtures/payloads/refund.json"));
        let items = folio_items(&c);
        assert_eq!(total(&items), Decimal::new(-660, 1));
    }

    #[test]
    fn unit_prices_are_whole_minor_units_or_the_line_posts_as_one() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(whole_units(d("2"), d("10.50"), "EUR"), (2, d("5.25")));
        // 10.00 / 3 and 10.01 / 2 cannot be shown in cents: one line, exact total.
        assert_eq!(whole_units(d("3"), d("10.00"), "EUR"), (1, d("10.00")));
        assert_eq!(whole_units(d("2"), d("10.01"), "EUR"), (1, d("10.01")));
        // Three decimals are whole units in a three-decimal currency.
        assert_eq!(whole_units(d("2"), d("10.01"), "KWD"), (2, d("5.005")));
        assert_eq!(whole_units(d("-2"), d("-10.50"), "EUR"), (-2, d("5.25")));
        assert_eq!(whole_units(d("3"), d("1000"), "JPY"), (1, d("1000")));
    }

    #[test]
    fn rates_become_percentages() {
        assert_eq!(rate_to_percent(Decimal::new(11, 1)), Decimal::TEN);
        assert_eq!(rate_to_percent(Decimal::new(21, 2)), Decimal::from(21));
        assert_eq!(rate_to_percent(Decimal::from(20)), Decimal::from(20));
    }
}
