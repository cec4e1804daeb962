//! Plain-text tables for the operator commands (`lightspeed`, `postings`,
//! `report`): columns padded to their widest cell, two spaces apart.

/// A cell on one line: control characters (line breaks, escapes from a PMS
/// message) become spaces.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(
            rows.iter()
                .map(|r| r.iter().map(|c| one_line(c)).collect::<Vec<_>>()),
        )
        .collect();
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_cells_stay_on_one_line() {
        let text = table(
            &["A", "LONGER"],
            &[
                vec!["x\ny".into(), "1".into()],
                vec!["wide cell".into(), "2".into()],
            ],
        );
        assert_eq!(text, "A          LONGER\nx y        1\nwide cell  2\n");
    }
}
