//! Column-aligned tables that fit a width: the elastic column (REASON) is elided first, then
//! the least useful columns are dropped. Without a width (output piped) nothing is cut.
//!
//! The width is a parameter rather than read here, so that fitting is tested without a
//! terminal.

/// Narrowest an elastic column is squeezed to before whole columns are dropped.
const MIN_ELASTIC: usize = 12;
/// Narrowest any column is squeezed to before columns are dropped from the right.
const MIN_NARROW: usize = 4;
/// Space between columns.
const GAP: usize = 2;

/// A table to render.
pub struct Table<'a> {
    pub header: Vec<&'a str>,
    /// Cell text, one row per entry; each row has `header.len()` cells.
    pub rows: Vec<Vec<String>>,
    /// ANSI colour code per cell (`None`: plain).
    pub colors: Vec<Vec<Option<&'static str>>>,
    /// The column that is elided first when too wide.
    pub elastic: Option<usize>,
    /// Columns dropped, in this order, when eliding is not enough.
    pub drop_order: Vec<usize>,
}

/// Visible length in characters.
pub fn visible_len(s: &str) -> usize {
    s.chars().count()
}

/// Cut `s` to `width` characters, marking the cut with `…`.
pub fn elide(s: &str, width: usize) -> String {
    if visible_len(s) <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

fn paint(text: &str, code: Option<&str>, color: bool) -> String {
    match code {
        Some(c) if color && !text.is_empty() => format!("\x1b[{c}m{text}\x1b[0m"),
        _ => text.to_string(),
    }
}

impl Table<'_> {
    /// Render, fitting `width` when given; `color` adds the ANSI codes. Every line ends with
    /// a newline and carries no trailing spaces.
    pub fn render(&self, width: Option<usize>, color: bool) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| visible_len(c)))
                    .chain(std::iter::once(visible_len(self.header[i])))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut shown: Vec<bool> = vec![true; n];
        if let Some(w) = width {
            self.fit(w, &mut widths, &mut shown);
        }
        let cols: Vec<usize> = (0..n).filter(|i| shown[*i]).collect();
        let mut out = String::new();
        let mut line = |cells: Vec<(String, Option<&str>)>| {
            let mut l = String::new();
            for (k, (&i, (text, code))) in cols.iter().zip(cells).enumerate() {
                let text = elide(&text, widths[i]);
                let len = visible_len(&text);
                l.push_str(&paint(&text, code, color));
                if k + 1 < cols.len() {
                    let pad = widths[i] - len + GAP;
                    l.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(
            cols.iter()
                .map(|&i| (self.header[i].to_string(), Some("1")))
                .collect(),
        );
        for (r, row) in self.rows.iter().enumerate() {
            line(
                cols.iter()
                    .map(|&i| {
                        (
                            row.get(i).cloned().unwrap_or_default(),
                            self.colors.get(r).and_then(|c| c.get(i).copied().flatten()),
                        )
                    })
                    .collect(),
            );
        }
        out
    }

    fn total(widths: &[usize], shown: &[bool]) -> usize {
        let cols: Vec<usize> = (0..widths.len()).filter(|i| shown[*i]).collect();
        cols.iter().map(|i| widths[*i]).sum::<usize>() + GAP * cols.len().saturating_sub(1)
    }

    fn fit(&self, width: usize, widths: &mut [usize], shown: &mut [bool]) {
        let mut drops = self.drop_order.iter();
        loop {
            let total = Self::total(widths, shown);
            if total <= width {
                return;
            }
            let over = total - width;
            if let Some(e) = self
                .elastic
                .filter(|e| shown[*e] && widths[*e] > MIN_ELASTIC)
            {
                widths[e] = widths[e].saturating_sub(over).max(MIN_ELASTIC);
                continue;
            }
            match drops.next() {
                Some(&d) => shown[d] = false,
                None => {
                    // Nothing left to drop by preference: narrow the widest column down to a
                    // few characters, then drop from the right; one column is cut to fit.
                    let visible: Vec<usize> = (0..widths.len()).filter(|i| shown[*i]).collect();
                    let Some(&widest) = visible.iter().max_by_key(|i| widths[**i]) else {
                        return;
                    };
                    if widths[widest] > MIN_NARROW {
                        widths[widest] = widths[widest].saturating_sub(over).max(MIN_NARROW);
                    } else if let [only] = visible.as_slice() {
                        widths[*only] = width;
                        return;
                    } else if let Some(&last) = visible.last() {
                        shown[last] = false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table<'static> {
        Table {
            header: vec!["NAME", "STATE", "EXTRA", "REASON"],
            rows: vec![
                vec![
                    "web".into(),
                    "running".into(),
                    "x".into(),
                    "a rather long explanation of what happened".into(),
                ],
                vec!["db".into(), "failed".into(), "y".into(), String::new()],
            ],
            colors: vec![vec![None, Some("32"), None, None]; 2],
            elastic: Some(3),
            drop_order: vec![2],
        }
    }

    fn widest(s: &str) -> usize {
        s.lines().map(visible_len).max().unwrap_or(0)
    }

    #[test]
    fn no_width_never_cuts() {
        let t = table().render(None, false);
        assert!(t.contains("a rather long explanation of what happened"));
        assert!(!t.contains('…'));
        assert!(t.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn narrow_elides_reason_first_then_drops() {
        let full = widest(&table().render(None, false));
        let t = table().render(Some(full - 10), false);
        assert!(widest(&t) <= full - 10, "{t}");
        assert!(t.contains('…'), "{t}");
        assert!(t.contains("EXTRA"), "a column dropped too early: {t}");
        let t = table().render(Some(30), false);
        assert!(widest(&t) <= 30, "{t}");
        assert!(!t.contains("EXTRA"), "{t}");
        assert!(t.contains("running"), "{t}");
        // Absurdly narrow: still never wider than asked.
        for w in [1, 5, 10, 20] {
            let t = table().render(Some(w), false);
            assert!(widest(&t) <= w, "{w}: {t}");
        }
    }

    #[test]
    fn colour_is_added_only_when_asked() {
        assert!(!table().render(None, false).contains('\x1b'));
        let t = table().render(None, true);
        assert!(t.contains("\x1b[32mrunning\x1b[0m"), "{t}");
    }

    #[test]
    fn elide_marks_the_cut() {
        assert_eq!(elide("abcdef", 4), "abc…");
        assert_eq!(elide("abc", 4), "abc");
        assert_eq!(elide("abc", 0), "");
    }
}
