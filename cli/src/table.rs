//! Aligned text tables, the way `ovswire` prints links and nodes.

/// `header` and `rows` as text: columns two spaces apart, each as wide as its widest cell, no
/// trailing spaces.
pub fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(String::from);
    let mut width = [0; N];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(width)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_without_trailing_spaces() {
        let t = super::aligned(
            ["A", "LONGER"],
            &[["xyz".into(), "1".into()], ["q".into(), String::new()]],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq\n");
    }
}
