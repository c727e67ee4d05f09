//! Typed reads from the spanned tree that record every problem instead of stopping.

use std::path::PathBuf;
use std::time::Duration;

use super::node::{describe, pos, Kind, Node, Pos};
use super::schema::Size;
use super::{duration, size, DiagKind, Diagnostic};

/// Collects diagnostics for one config file.
pub(crate) struct Ctx {
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub diags: Vec<Diagnostic>,
}

impl Ctx {
    pub fn new(file: PathBuf, base_dir: PathBuf) -> Self {
        Ctx {
            file,
            base_dir,
            diags: Vec::new(),
        }
    }

    /// A configuration problem at `at`.
    pub fn err(&mut self, at: Pos, message: impl Into<String>) {
        let file = self.file.clone();
        self.push(Diagnostic {
            kind: DiagKind::Config,
            file,
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    /// A problem in another file (an env file) or of another kind.
    pub fn push(&mut self, mut d: Diagnostic) {
        d.message = one_line(&d.message);
        self.diags.push(d);
    }

    /// A path from the config, resolved against the config directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        self.base_dir.join(p)
    }
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c.to_ascii_lowercase() == lower {
            return Some(c);
        }
        let dist = strsim::osa_distance(&lower, &c.to_ascii_lowercase());
        let close = dist <= (c.len() / 3).max(1) || strsim::jaro_winkler(&lower, c) >= 0.9;
        if close && best.is_none_or(|(d, _)| dist < d) {
            best = Some((dist, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean `x`?` or nothing.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    suggest(word, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// One value of the config with its dotted path (`services.web.backoff`).
#[derive(Clone)]
pub(crate) struct Field<'n> {
    pub node: &'n Node,
    pub path: String,
    /// Where the key naming this value is (for "missing ..." inside it).
    pub key_pos: Pos,
}

impl<'n> Field<'n> {
    pub fn root(node: &'n Node) -> Self {
        Field {
            node,
            path: String::new(),
            key_pos: pos(node),
        }
    }

    pub fn pos(&self) -> Pos {
        pos(self.node)
    }

    /// Record "<path>: expected <what>, found <value>" and give up on this value.
    pub fn expected<T>(&self, ctx: &mut Ctx, what: &str) -> Option<T> {
        let msg = format!(
            "{}expected {what}, found {}",
            prefix(&self.path),
            describe(self.node)
        );
        ctx.err(self.pos(), msg);
        None
    }

    /// Record "<path>: <message>" at this value.
    pub fn error<T>(&self, ctx: &mut Ctx, message: impl std::fmt::Display) -> Option<T> {
        ctx.err(self.pos(), format!("{}{message}", prefix(&self.path)));
        None
    }

    /// A string that is not blank.
    pub fn text(&self, ctx: &mut Ctx) -> Option<String> {
        match &self.node.value {
            Kind::Str(s) if s.contains('\0') => self.nul(ctx),
            Kind::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => self.expected(ctx, "a non-empty string"),
        }
    }

    /// Every string of the config ends up in a C string (an argument, an environment entry,
    /// a path, a user name), where a NUL would cut it: refused here, not at start.
    fn nul<T>(&self, ctx: &mut Ctx) -> Option<T> {
        self.error(ctx, "must not contain a NUL character (\\0)")
    }

    /// Any scalar rendered as text (env values, slot names).
    pub fn scalar(&self, ctx: &mut Ctx) -> Option<String> {
        match &self.node.value {
            Kind::Str(s) if s.contains('\0') => self.nul(ctx),
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            _ => self.expected(ctx, "a string, number or boolean"),
        }
    }

    pub fn bool(&self, ctx: &mut Ctx) -> Option<bool> {
        match &self.node.value {
            Kind::Bool(b) => Some(*b),
            _ => self.expected(ctx, "true or false"),
        }
    }

    /// An integer within `lo..=hi`.
    pub fn int(&self, ctx: &mut Ctx, lo: i64, hi: i64) -> Option<i64> {
        match &self.node.value {
            Kind::Int(i) if (lo..=hi).contains(i) => Some(*i),
            Kind::Int(_) => self.expected(ctx, &format!("a whole number from {lo} to {hi}")),
            _ => self.expected(ctx, "a whole number"),
        }
    }

    /// A non-negative integer that fits `u32`.
    pub fn u32(&self, ctx: &mut Ctx) -> Option<u32> {
        match &self.node.value {
            Kind::Int(i) => match u32::try_from(*i) {
                Ok(v) => Some(v),
                Err(_) => self.expected(ctx, "a non-negative whole number"),
            },
            _ => self.expected(ctx, "a non-negative whole number"),
        }
    }

    pub fn duration(&self, ctx: &mut Ctx) -> Option<Duration> {
        let parsed = match &self.node.value {
            Kind::Str(s) => duration::parse(s).ok(),
            Kind::Int(i) => duration::from_int(*i).ok(),
            _ => None,
        };
        parsed.or_else(|| self.expected(ctx, duration::EXPECTED))
    }

    /// A duration that must be greater than zero.
    pub fn positive_duration(&self, ctx: &mut Ctx) -> Option<Duration> {
        let d = self.duration(ctx)?;
        if d.is_zero() {
            return self.error(ctx, "must be greater than 0");
        }
        Some(d)
    }

    pub fn size(&self, ctx: &mut Ctx) -> Option<Size> {
        let parsed = match &self.node.value {
            Kind::Str(s) => size::parse(s).ok(),
            Kind::Int(i) => size::from_int(*i).ok(),
            _ => None,
        };
        parsed.or_else(|| self.expected(ctx, size::EXPECTED))
    }

    /// One of `options`, with a suggestion when the value is close to one.
    pub fn choice(&self, ctx: &mut Ctx, options: &[&'static str]) -> Option<&'static str> {
        let list = options
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match &self.node.value {
            Kind::Str(s) => match options.iter().find(|o| **o == s) {
                Some(o) => Some(*o),
                None => {
                    let hint = did_you_mean(s, options.iter().copied());
                    self.error(ctx, format!("expected one of {list}, found {s:?}{hint}"))
                }
            },
            _ => self.expected(ctx, &format!("one of {list}")),
        }
    }

    /// The items of a list.
    pub fn seq(&self, ctx: &mut Ctx) -> Option<Vec<Field<'n>>> {
        match &self.node.value {
            Kind::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Field {
                        node: n,
                        path: format!("{}[{i}]", self.path),
                        key_pos: pos(n),
                    })
                    .collect(),
            ),
            _ => self.expected(ctx, "a list"),
        }
    }

    /// A list of non-empty strings; bad items are reported and skipped.
    pub fn str_list(&self, ctx: &mut Ctx) -> Option<Vec<String>> {
        let items = self.seq(ctx)?;
        Some(items.iter().filter_map(|f| f.text(ctx)).collect())
    }

    pub fn map(&self, ctx: &mut Ctx) -> Option<MapReader<'n>> {
        self.map_as(ctx, "a mapping")
    }

    /// A mapping; `what` describes it in the error when the value is something else.
    pub fn map_as(&self, ctx: &mut Ctx, what: &str) -> Option<MapReader<'n>> {
        MapReader::new(ctx, self, what)
    }
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

struct Entry<'n> {
    key: String,
    key_node: &'n Node,
    value: &'n Node,
    used: bool,
}

/// Takes a mapping's fields by name and reports the unknown ones at `finish`.
pub(crate) struct MapReader<'n> {
    path: String,
    key_pos: Pos,
    entries: Vec<Entry<'n>>,
    known: Vec<&'static str>,
}

impl<'n> MapReader<'n> {
    fn new(ctx: &mut Ctx, field: &Field<'n>, what: &str) -> Option<Self> {
        let Kind::Map(pairs) = &field.node.value else {
            return field.expected(ctx, what);
        };
        let mut entries: Vec<Entry<'n>> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = match &k.value {
                Kind::Str(s) => s.clone(),
                Kind::Int(i) => i.to_string(),
                Kind::Bool(b) => b.to_string(),
                Kind::Float(f) => f.to_string(),
                _ => {
                    ctx.err(
                        pos(k),
                        format!(
                            "{}expected a plain key, found {}",
                            prefix(&field.path),
                            describe(k)
                        ),
                    );
                    continue;
                }
            };
            if let Some(first) = entries.iter().find(|e| e.key == key) {
                let at = pos(first.key_node);
                ctx.err(
                    pos(k),
                    format!(
                        "{}duplicate key `{key}` (first defined at line {}, column {})",
                        prefix(&field.path),
                        at.line,
                        at.column
                    ),
                );
                continue;
            }
            entries.push(Entry {
                key,
                key_node: k,
                value: v,
                used: false,
            });
        }
        Some(MapReader {
            path: field.path.clone(),
            key_pos: field.key_pos,
            entries,
            known: Vec::new(),
        })
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Path of this mapping (`services.web`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where this mapping is named (for "missing" errors).
    pub fn key_pos(&self) -> Pos {
        self.key_pos
    }

    /// Take the value of `key`, if present.
    pub fn take(&mut self, key: &'static str) -> Option<Field<'n>> {
        self.known.push(key);
        let path = self.child(key);
        let e = self.entries.iter_mut().find(|e| e.key == key)?;
        e.used = true;
        Some(Field {
            node: e.value,
            path,
            key_pos: pos(e.key_node),
        })
    }

    /// Take `key` or report it missing.
    pub fn require(&mut self, ctx: &mut Ctx, key: &'static str, what: &str) -> Option<Field<'n>> {
        let f = self.take(key);
        if f.is_none() {
            let msg = format!("{}missing `{key}` ({what})", prefix(&self.path));
            ctx.err(self.key_pos, msg);
        }
        f
    }

    /// Take every entry (for mappings whose keys are names chosen by the user).
    pub fn take_all(&mut self) -> Vec<(String, Pos, Field<'n>)> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            if e.used {
                continue;
            }
            e.used = true;
            let path = if self.path.is_empty() {
                e.key.clone()
            } else {
                format!("{}.{}", self.path, e.key)
            };
            out.push((
                e.key.clone(),
                pos(e.key_node),
                Field {
                    node: e.value,
                    path,
                    key_pos: pos(e.key_node),
                },
            ));
        }
        out
    }

    /// Report every key nobody took.
    pub fn finish(self, ctx: &mut Ctx) {
        for e in self.entries.iter().filter(|e| !e.used) {
            let hint = did_you_mean(&e.key, self.known.iter().copied());
            let known = if hint.is_empty() && !self.known.is_empty() {
                format!(" (known keys: {})", self.known.join(", "))
            } else {
                String::new()
            };
            ctx.err(
                pos(e.key_node),
                format!("{}unknown key `{}`{hint}{known}", prefix(&self.path), e.key),
            );
        }
    }
}

/// A message on one line: control characters quoted from the config (a service named
/// "a\nb") are shown escaped, so every diagnostic stays one `file:line:col: message` line.
pub fn one_line(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_string();
    }
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::node::parse;
    use super::*;

    fn ctx() -> Ctx {
        Ctx::new("/x/c.yaml".into(), "/x".into())
    }

    #[test]
    fn messages_stay_on_one_line() {
        assert_eq!(one_line("plain `x`"), "plain `x`");
        assert_eq!(
            one_line("unknown service `a\nb\t`"),
            "unknown service `a\\nb\\t`"
        );
        let src = "version: '1'\nservices:\n  web:\n    command: x\n    depends_on: [\"a\\nb\"]\n";
        let e = crate::config::load_str(src, std::path::Path::new("/x/c.yaml")).unwrap_err();
        assert!(e.0.iter().all(|d| !d.message.contains('\n')), "{e:?}");
        assert!(e.0[0].message.contains("a\\nb"), "{e:?}");
    }

    #[test]
    fn suggestions() {
        let keys = ["restart_policy", "backoff", "command"];
        assert_eq!(suggest("restart_polcy", keys), Some("restart_policy"));
        assert_eq!(suggest("Command", keys), Some("command"));
        assert_eq!(suggest("zzz", keys), None);
    }

    #[test]
    fn reports_unknown_and_duplicate_keys() {
        let n = parse("a: 1\nbackof: 2\na: 3\n").unwrap();
        let mut c = ctx();
        let root = Field::root(&n);
        let mut r = root.map(&mut c).unwrap();
        assert!(r.take("a").is_some());
        let _ = r.take("backoff");
        r.finish(&mut c);
        assert_eq!(c.diags.len(), 2, "{:?}", c.diags);
        assert_eq!((c.diags[0].line, c.diags[0].column), (3, 1));
        assert!(c.diags[0].message.contains("duplicate key `a`"));
        assert_eq!((c.diags[1].line, c.diags[1].column), (2, 1));
        assert!(c.diags[1].message.contains("did you mean `backoff`?"));
    }

    #[test]
    fn typed_reads_report_path_and_value() {
        let n = parse("s:\n  backoff: 5 parsecs\n  n: -1\n").unwrap();
        let mut c = ctx();
        let root = Field::root(&n);
        let mut r = root.map(&mut c).unwrap();
        let mut s = r.take("s").unwrap().map(&mut c).unwrap();
        assert_eq!(s.take("backoff").unwrap().duration(&mut c), None);
        assert_eq!(s.take("n").unwrap().u32(&mut c), None);
        assert_eq!(
            c.diags[0].message,
            "s.backoff: expected a duration like 100ms, 5s, 2m, 1h or 1.5s, found \"5 parsecs\""
        );
        assert_eq!((c.diags[0].line, c.diags[0].column), (2, 12));
        assert!(c.diags[1]
            .message
            .starts_with("s.n: expected a non-negative whole number"));
    }
}
