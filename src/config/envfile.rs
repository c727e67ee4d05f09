//! `.env` files: `KEY=value`, `export KEY=value`, comments, quotes.
//!
//! Single quotes are literal; double quotes understand `\n`, `\t`, `\r`, `\"`, `\\` and `\$`;
//! unquoted values end at ` #` (an inline comment). Values are never interpolated, so a
//! file means the same thing wherever it is read. Nothing here touches the process
//! environment: the values are only handed to the services.

/// One malformed line of an env file (1-based position inside the env file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct EnvLineError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Parse an env file's text into `(key, value)` pairs in file order (later duplicates
/// replace earlier ones in place), or every malformed line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Vec<EnvLineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx as u64 + 1;
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((k, v))) => match vars.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => vars.push((k, v)),
            },
            Err((column, message)) => errors.push(EnvLineError {
                line,
                column,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

/// True for a POSIX-style variable name.
pub fn valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

type LineResult = Result<Option<(String, String)>, (u64, String)>;

fn parse_line(raw: &str) -> LineResult {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    // A NUL would cut the `KEY=value` C string the service gets: refused here, not at start.
    if let Some(at) = raw.find('\0') {
        let column = raw[..at].chars().count() as u64 + 1;
        return Err((column, "a NUL character is not allowed".into()));
    }
    let indent = raw.len() - raw.trim_start().len();
    let body = raw.trim_start();
    if body.is_empty() || body.starts_with('#') {
        return Ok(None);
    }
    let (body, offset) = match body.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => {
            let trimmed = rest.trim_start();
            (trimmed, indent + 6 + (rest.len() - trimmed.len()))
        }
        _ => (body, indent),
    };
    let col = |byte: usize| raw[..byte.min(raw.len())].chars().count() as u64 + 1;
    let Some(eq) = body.find('=') else {
        return Err((
            col(offset),
            "expected KEY=value (no `=` on this line)".to_string(),
        ));
    };
    let key = body[..eq].trim_end();
    if !valid_key(key) {
        return Err((
            col(offset),
            format!(
                "invalid variable name {key:?} (use letters, digits and _, not starting with a digit)"
            ),
        ));
    }
    let after_eq = &body[eq + 1..];
    let value_start = offset + eq + 1 + (after_eq.len() - after_eq.trim_start().len());
    let value_text = after_eq.trim_start();
    let value = parse_value(value_text).map_err(|(rel, msg)| (col(value_start + rel), msg))?;
    Ok(Some((key.to_string(), value)))
}

/// Parse the text after `=`; errors carry a byte offset relative to `v`.
fn parse_value(v: &str) -> Result<String, (usize, String)> {
    if let Some(rest) = v.strip_prefix('\'') {
        let Some(end) = rest.find('\'') else {
            return Err((0, "unterminated single quote".into()));
        };
        check_trailing(&rest[end + 1..], end + 2)?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    check_trailing(&rest[i + 1..], i + 2)?;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, e @ ('"' | '\\' | '$'))) => out.push(e),
                    // Unknown escapes stay as written, like most dotenv readers do.
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err((0, "unterminated double quote".into()));
    }
    // Unquoted: an inline comment needs whitespace before `#` so `a#b` stays a value.
    let mut end = v.len();
    let bytes = v.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            end = i;
            break;
        }
    }
    Ok(v[..end].trim_end().to_string())
}

/// After a closing quote only whitespace and a comment may follow.
fn check_trailing(rest: &str, rest_offset: usize) -> Result<(), (usize, String)> {
    let t = rest.trim_start();
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err((
            rest_offset + (rest.len() - t.len()),
            "unexpected text after the closing quote".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_forms() {
        let text = "# comment\n\nA=1\nexport B=two words\nC='lit $x \\n'\nD=\"a\\nb \\\"q\\\" \\\\\"\nE=\nF=val # note\nG=a#b\n  H = spaced \r\nI=\"x\" # c\n";
        assert_eq!(
            parse(text).unwrap(),
            kv(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "lit $x \\n"),
                ("D", "a\nb \"q\" \\"),
                ("E", ""),
                ("F", "val"),
                ("G", "a#b"),
                ("H", "spaced"),
                ("I", "x"),
            ])
        );
    }

    #[test]
    fn later_duplicate_wins_in_place() {
        assert_eq!(
            parse("A=1\nB=2\nA=3\n").unwrap(),
            kv(&[("A", "3"), ("B", "2")])
        );
    }

    #[test]
    fn reports_every_bad_line_with_position() {
        let errs = parse("OK=1\nnot a line\n1X=2\nQ='open\nR=\"x\" junk\n").unwrap_err();
        let got: Vec<(u64, u64)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(got, [(2, 1), (3, 1), (4, 3), (5, 7)]);
        assert!(errs[1].message.contains("1X"));
    }

    #[test]
    fn export_prefix_positions() {
        let errs = parse("export 9=1\n").unwrap_err();
        assert_eq!((errs[0].line, errs[0].column), (1, 8));
        // `exported=1` is a key, not the export keyword
        assert_eq!(parse("exported=1").unwrap(), kv(&[("exported", "1")]));
    }

    #[test]
    fn nul_is_refused_with_its_column() {
        let errs = parse("A=1\nB=x\0y\n").unwrap_err();
        assert_eq!((errs[0].line, errs[0].column), (2, 4));
        assert!(errs[0].message.contains("NUL"));
    }

    #[test]
    fn key_names() {
        assert!(valid_key("_A1"));
        assert!(!valid_key("1A"));
        assert!(!valid_key(""));
        assert!(!valid_key("A-B"));
    }
}
