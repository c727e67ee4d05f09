//! The YAML document as a generic tree that remembers where every node came from, so that
//! validation can point at the exact line and column of each problem.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node with its position.
pub(crate) type Node = Spanned<Kind>;

/// The shape of a YAML node, independent of what the config expects there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u64,
    pub column: u64,
}

/// Position of a node (where it is used, which for an alias is the alias itself).
pub(crate) fn pos(node: &Node) -> Pos {
    Pos {
        line: node.referenced.line(),
        column: node.referenced.column(),
    }
}

/// A short description of a node for "found ..." in messages.
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Kind::Null => "nothing (null)".into(),
        Kind::Bool(b) => format!("the boolean {b}"),
        Kind::Int(i) => format!("the number {i}"),
        Kind::Float(f) => format!("the number {f}"),
        Kind::Str(s) => {
            // Long values would drown the message; the position already locates them.
            let shown: String = s.chars().take(60).collect();
            if shown.len() < s.len() {
                format!("{:?}...", shown)
            } else {
                format!("{shown:?}")
            }
        }
        Kind::Seq(_) => "a list".into(),
        Kind::Map(_) => "a mapping".into(),
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        // Values beyond i64 are never valid config numbers; keep them as text so the
        // validator reports them with their spelling instead of failing the whole parse.
        Ok(i64::try_from(v).map_or_else(|_| Kind::Str(v.to_string()), Kind::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or_else(|_| Kind::Str(v.to_string()), Kind::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or_else(|_| Kind::Str(v.to_string()), Kind::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
        Ok(Kind::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Kind::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

/// Nesting deeper than this is never a real config; the budget turns it into an error
/// before recursion can exhaust the stack.
const MAX_DEPTH: usize = 32;

/// A YAML syntax (or budget) error with its position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Option<Pos>,
    pub message: String,
}

/// Parse `src` into a spanned tree.
pub(crate) fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_nodes = 100_000;
    budget.max_documents = 1;
    let mut opts = serde_saphyr::Options::default();
    // Without this `n`, `y`, `yes`, `no`, `on`, `off` silently become booleans.
    opts.strict_booleans = true;
    opts.with_snippet = false;
    // Duplicates are passed through so the validator can report all of them at once.
    opts.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    opts.budget = Some(budget);
    serde_saphyr::from_str_with_options::<Node>(src, opts).map_err(|e| {
        let pos = e.location().map(|l| Pos {
            line: l.line(),
            column: l.column(),
        });
        SyntaxError {
            pos: pos.filter(|p| p.line > 0),
            message: short_message(&e.to_string()),
        }
    })
}

/// First line of an error text without the trailing " at line N, column M" (the diagnostic
/// carries the position separately).
fn short_message(text: &str) -> String {
    // Budget breaches print as Rust debug structs; say what they mean instead.
    if text.contains("Depth {") || text.starts_with("recursion limit") {
        return format!("the document is nested deeper than {MAX_DEPTH} levels");
    }
    if text.contains("Documents {") {
        return "only one YAML document is allowed (remove the `---` separator)".into();
    }
    if text.contains("budget breached") {
        return "the document is too large or complex for a config file".into();
    }
    let first = text.lines().next().unwrap_or("").trim();
    let trimmed = match first.rfind(" at line ") {
        Some(i) if first[i..].contains("column") => &first[..i],
        _ => first,
    };
    if trimmed.is_empty() {
        "invalid YAML".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(n: &Node) -> Vec<String> {
        match &n.value {
            Kind::Map(m) => m
                .iter()
                .map(|(k, _)| match &k.value {
                    Kind::Str(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn parses_scalars_with_positions() {
        let n = parse("a: 1\nb:\n  c: [1.5, x]\n  n: yes\n  d: ~\n").unwrap();
        assert_eq!(map_keys(&n), ["a", "b"]);
        let Kind::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].1.value, Kind::Int(1));
        assert_eq!(pos(&m[0].1), Pos { line: 1, column: 4 });
        let Kind::Map(inner) = &m[1].1.value else {
            panic!()
        };
        // strict booleans: `n` is a key and `yes` a string
        assert_eq!(inner[1].0.value, Kind::Str("n".into()));
        assert_eq!(inner[1].1.value, Kind::Str("yes".into()));
        assert_eq!(inner[2].1.value, Kind::Null);
        let Kind::Seq(s) = &inner[0].1.value else {
            panic!()
        };
        assert_eq!(s[0].value, Kind::Float(1.5));
        assert_eq!(
            pos(&s[1]),
            Pos {
                line: 3,
                column: 12
            }
        );
    }

    #[test]
    fn syntax_error_has_position_and_short_message() {
        let e = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, column: 2 }));
        assert!(!e.message.contains("line 2"), "{}", e.message);
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let deep = format!("a: {}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse(&deep).is_err());
        let block = format!("{}x", "- ".repeat(300));
        assert!(parse(&block).is_err());
    }

    #[test]
    fn duplicates_pass_through() {
        let n = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(map_keys(&n), ["a", "a"]);
    }

    #[test]
    fn huge_integers_become_text() {
        let n = parse("a: 99999999999999999999\n").unwrap();
        let Kind::Map(m) = &n.value else { panic!() };
        assert!(matches!(m[0].1.value, Kind::Str(_) | Kind::Float(_)));
    }
}
