//! Small pieces of the vendors' JSON shared by the adapters (the HTTP exchange
//! itself is [`super::transport`]): exact decimals on the wire, ids that arrive as
//! numbers or strings, error text fit for staff, and the origin of each folio
//! item (which mapping key it came from).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::itemize::{FolioItem, ItemKind};
use crate::domain::Charge;

/// An exact decimal as a JSON number (`serde_json`'s `arbitrary_precision` keeps
/// the digits as written: `66.0` stays `66.0`, never a binary float).
pub(crate) fn json_decimal(value: Decimal) -> Result<Value, String> {
    serde_json::Number::from_str(&value.to_string())
        .map(Value::Number)
        .map_err(|_| format!("{value} is not a JSON number"))
}

/// An unsigned integer from a JSON number or numeric string.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| n.to_string().parse().ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON scalar as text (ids arrive as numbers or strings).
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// PMS error text made fit for a POS screen: one line, no control characters,
/// no trailing period, bounded length (the API layer cuts it to 50 characters).
pub(crate) fn staff_text(raw: &str) -> String {
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let collapsed = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = collapsed.trim_end_matches(['.', ' ']);
    trimmed.chars().take(200).collect()
}

/// Where a folio item's codes come from, for messages and logs that name the
/// mapping key an operator has to add.
pub(crate) struct ItemOrigin {
    /// What staff call it: the accounting group ("Food"), "tips", …
    pub label: String,
    /// The tenant mapping key of its revenue / transaction code.
    pub revenue_key: String,
    /// The tenant mapping key of its tax code.
    pub tax_key: String,
}

/// The origin of each item of `folio_items(charge)`, in the same order.
pub(crate) fn item_origins(charge: &Charge, items: &[FolioItem]) -> Vec<ItemOrigin> {
    let line_origin = |line: &crate::domain::Line| {
        let group = line.accounting_group.as_ref();
        let group_key = group.and_then(|g| g.id.clone().or_else(|| g.name.clone()));
        let label = group
            .and_then(|g| g.name.clone().or_else(|| g.id.clone()))
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "restaurant sales".to_string());
        let revenue_key = match group_key {
            Some(k) => {
                format!("tenants.mapping.accounting_groups.\"{k}\" (or default_accounting_group)")
            }
            None => "tenants.mapping.default_accounting_group".to_string(),
        };
        let tax_key = match line
            .tax_lines
            .first()
            .and_then(|t| t.tax_id.clone().or_else(|| t.name.clone()))
        {
            Some(k) => format!("tenants.mapping.taxes.\"{k}\" (or default_tax)"),
            None => "tenants.mapping.default_tax".to_string(),
        };
        ItemOrigin {
            label,
            revenue_key,
            tax_key,
        }
    };
    let mut sale_lines = charge.lines.iter();
    items
        .iter()
        .map(|item| match item.kind {
            ItemKind::Sale => sale_lines
                .next()
                .map(line_origin)
                .unwrap_or_else(unmapped_sales),
            ItemKind::Consolidated => {
                let first = charge
                    .lines
                    .iter()
                    .find(|l| l.revenue_code.is_some())
                    .or_else(|| charge.lines.first());
                match first {
                    Some(line) => line_origin(line),
                    None => unmapped_sales(),
                }
            }
            ItemKind::ServiceCharge => ItemOrigin {
                label: "service charge".into(),
                revenue_key: "tenants.mapping.service_charge_code".into(),
                tax_key: "tenants.mapping.default_tax".into(),
            },
            ItemKind::Tip => ItemOrigin {
                label: "tips".into(),
                revenue_key: "tenants.mapping.gratuity_code".into(),
                tax_key: "tenants.mapping.default_tax".into(),
            },
        })
        .collect()
}

fn unmapped_sales() -> ItemOrigin {
    ItemOrigin {
        label: "restaurant sales".into(),
        revenue_key: "tenants.mapping.default_accounting_group".into(),
        tax_key: "tenants.mapping.default_tax".into(),
    }
}

/// Room numbers are short and start with a digit ("101", "12B"); names do not.
pub(crate) fn looks_like_room(term: &str) -> bool {
    term.len() <= 10
        && !term.contains(char::is_whitespace)
        && term.chars().next().is_some_and(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_travel_as_exact_json_numbers() {
        let v = json_decimal(Decimal::new(-660, 1)).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "-66.0");
        let v = json_decimal(Decimal::from_str("0.10000000000000000001").unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "0.10000000000000000001");
    }

    #[test]
    fn staff_text_is_one_clean_line() {
        assert_eq!(
            staff_text("  Folio is\nclosed.\t "),
            "Folio is closed".to_string()
        );
    }

    #[test]
    fn room_numbers_and_names_are_told_apart() {
        assert!(looks_like_room("101"));
        assert!(looks_like_room("12B"));
        assert!(!looks_like_room("Doe"));
        assert!(!looks_like_room("Jane Doe"));
    }
}
