//! Text that a supervisor or a service wrote, made safe to print on a terminal.
//!
//! What a server answers (status reasons, inspect details, error lines) and what services
//! write to their logs comes from processes that may be less trusted than the user reading
//! it. Control characters would let them drive that user's terminal: clear it, move the
//! cursor to forge lines, set its title, or send the sequences some terminals answer by
//! typing into the shell. Every C0 control except newline and tab, DEL, and every C1 control
//! (which includes the 8-bit CSI) is removed; with ESC gone, what remains of an escape
//! sequence is inert printable text.

use std::borrow::Cow;

/// True for a character that must not reach a terminal.
fn is_unsafe(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `s` without control characters (newline and tab kept).
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_unsafe) {
        Cow::Owned(s.chars().filter(|c| !is_unsafe(*c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Every string in `v` (keys included) made `terminal_safe`.
pub fn json_terminal_safe(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(clean) = terminal_safe(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json_terminal_safe),
        Value::Object(map) => {
            let dirty = map.keys().any(|k| k.chars().any(is_unsafe));
            if dirty {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    json_terminal_safe(&mut val);
                    map.insert(terminal_safe(&k).into_owned(), val);
                }
            } else {
                map.values_mut().for_each(json_terminal_safe);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_lose_their_escape() {
        assert_eq!(terminal_safe("\x1b[2J\x1b[Hpwned"), "[2J[Hpwned");
        assert_eq!(terminal_safe("\x1b]0;title\x07x"), "]0;titlex");
        // 8-bit CSI and the other C1 controls.
        assert_eq!(terminal_safe("a\u{9b}31mb\u{85}c\u{80}"), "a31mbc");
        assert_eq!(
            terminal_safe("bell\x07 bs\x08 cr\r del\x7f nul\0"),
            "bell bs cr del nul"
        );
    }

    #[test]
    fn newlines_tabs_and_other_text_stay() {
        let s = "line 1\n\tline 2 · ünïcode ✓ 100%";
        assert!(matches!(terminal_safe(s), Cow::Borrowed(_)));
        assert_eq!(terminal_safe(s), s);
    }

    #[test]
    fn every_string_of_a_json_value_is_cleaned() {
        let mut v = serde_json::json!({
            "reason": "\x1b[31mred",
            "list": ["ok", "\x1b]2;t\x07"],
            "n": 1,
            "k\x1bey": {"deep": "\u{9b}x"},
        });
        json_terminal_safe(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "reason": "[31mred",
                "list": ["ok", "]2;t"],
                "n": 1,
                "key": {"deep": "x"},
            })
        );
        assert!(!v.to_string().contains('\x1b'));
    }
}
