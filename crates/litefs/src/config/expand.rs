//! `${VAR}` / `$VAR` expansion over the text of litefs.yml, with LiteFS's
//! comparison expressions (`${A == "x"}`, `${A != 'x'}`, `${A == B}`).
//!
//! Follows Go's `os.Expand` where LiteFS relies on it (an unset variable is
//! the empty string, a `$` not followed by a name stays as it is) but refuses
//! what Go would silently turn into an empty string: an unterminated `${`,
//! an empty `${}`, and anything inside braces that is neither a name nor one
//! of the comparisons (`${VAR:-default}` is a common one).
//!
//! An unset variable is reported ([`expand_env_reporting`]) with the line it
//! is on, so the caller can warn (LiteFS's behaviour, kept by default) or
//! refuse the file (`litefs mount -strict-env`). A variable set to the empty
//! string is not reported: that is a value someone chose.

use std::cell::RefCell;
use std::fmt;

/// Looks a variable up; `None` means unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A `${...}` that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// The text as written, `${` and `}` included.
    pub expr: String,
    /// 1-based line of the file the expression starts on.
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} in `{}`", self.line, self.reason, self.expr)
    }
}

impl std::error::Error for ExpandError {}

const MALFORMED: &str = "malformed expression (expected a variable name, \
    or a comparison such as `A == \"x\"`, `A != 'x'` or `A == B`)";

/// A variable the text refers to that the environment does not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    pub name: String,
    /// 1-based line of the reference.
    pub line: usize,
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ${{{}}} is not set", self.line, self.name)
    }
}

/// Expands every variable and expression in `text`; unset variables become
/// empty strings.
pub fn expand_env(text: &str, env: EnvLookup<'_>) -> Result<String, ExpandError> {
    expand_env_reporting(text, env).map(|(text, _)| text)
}

/// [`expand_env`], also returning the unset variables it met, once per
/// name and line, in the order they appear.
pub fn expand_env_reporting(
    text: &str,
    env: EnvLookup<'_>,
) -> Result<(String, Vec<Undefined>), ExpandError> {
    let misses = RefCell::new(Vec::<String>::new());
    let recording = |name: &str| {
        let value = env(name);
        if value.is_none() {
            misses.borrow_mut().push(name.to_string());
        }
        value
    };
    let mut undefined: Vec<Undefined> = Vec::new();
    let expanded = expand_inner(text, &recording, &mut |line| {
        for name in misses.borrow_mut().drain(..) {
            let u = Undefined { name, line };
            if !undefined.contains(&u) {
                undefined.push(u);
            }
        }
    })?;
    Ok((expanded, undefined))
}

/// The expansion itself; `expanded(line)` is called after each reference.
fn expand_inner(
    text: &str,
    env: EnvLookup<'_>,
    expanded: &mut dyn FnMut(usize),
) -> Result<String, ExpandError> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        out.push_str(&text[copied..i]);
        let rest = &text[i + 1..];
        let consumed = if let Some(inner) = rest.strip_prefix('{') {
            let line = text[..i].matches('\n').count() + 1;
            let Some(close) = inner.find('}') else {
                let shown: String = text[i..].chars().take(40).collect();
                return Err(ExpandError {
                    expr: shown,
                    line,
                    reason: "unterminated `${` (no closing `}`)",
                });
            };
            let body = &inner[..close];
            let value = eval_braced(body, env).map_err(|reason| ExpandError {
                expr: format!("${{{body}}}"),
                line,
                reason,
            })?;
            out.push_str(&value);
            expanded(line);
            1 + close + 1
        } else {
            let first = rest.as_bytes()[0];
            let name_len = if is_special(first) {
                1
            } else {
                rest.bytes().take_while(|&b| is_word(b)).count()
            };
            if name_len == 0 {
                // Not a variable reference; Go keeps the dollar sign.
                out.push('$');
            } else {
                out.push_str(&lookup(env, &rest[..name_len]));
                expanded(text[..i].matches('\n').count() + 1);
            }
            name_len
        };
        i += 1 + consumed;
        copied = i;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

fn lookup(env: EnvLookup<'_>, name: &str) -> String {
    env(name).unwrap_or_default()
}

/// `\w` in Go's RE2: ASCII letters, digits and underscore.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Go's `os.Expand` treats these as one-character shell variable names.
fn is_special(b: u8) -> bool {
    matches!(
        b,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

fn eval_braced(body: &str, env: EnvLookup<'_>) -> Result<String, &'static str> {
    let body = body.trim();
    if body.is_empty() {
        return Err("empty `${}`");
    }
    if body.bytes().all(is_word) || (body.len() == 1 && is_special(body.as_bytes()[0])) {
        return Ok(lookup(env, body));
    }

    let (left, rest) = operand(body, env).ok_or(MALFORMED)?;
    let rest = rest.trim_start();
    let (equal, rest) = if let Some(r) = rest.strip_prefix("==") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (false, r)
    } else {
        return Err(MALFORMED);
    };
    let right = last_operand(rest.trim_start(), env).ok_or(MALFORMED)?;
    Ok(((left == right) == equal).to_string())
}

/// A leading operand: a variable name or a quoted string (no escapes, as in
/// LiteFS). Returns its value and the text after it.
fn operand<'t>(s: &'t str, env: EnvLookup<'_>) -> Option<(String, &'t str)> {
    let first = *s.as_bytes().first()?;
    if first == b'"' || first == b'\'' {
        let end = s[1..].find(first as char)? + 1;
        return Some((s[1..end].to_string(), &s[end + 1..]));
    }
    let len = s.bytes().take_while(|&b| is_word(b)).count();
    if len == 0 {
        return None;
    }
    Some((lookup(env, &s[..len]), &s[len..]))
}

/// The operand that ends the expression. A quoted one runs to the last
/// character, so `'it's'` is `it's`, as LiteFS's greedy `'(.*)'$` reads it.
fn last_operand(s: &str, env: EnvLookup<'_>) -> Option<String> {
    let first = *s.as_bytes().first()?;
    if first == b'"' || first == b'\'' {
        let inner = s[1..].strip_suffix(first as char)?;
        return Some(inner.to_string());
    }
    s.bytes().all(is_word).then(|| lookup(env, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REGION" => Some("sjc".into()),
            "PRIMARY" => Some("sjc".into()),
            "OTHER" => Some("ams".into()),
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ex(text: &str) -> String {
        expand_env(text, &env).unwrap()
    }

    fn err(text: &str) -> ExpandError {
        expand_env(text, &env).unwrap_err()
    }

    #[test]
    fn plain_variables() {
        assert_eq!(ex("addr: \":${PORT}\""), "addr: \":8080\"");
        assert_eq!(ex("addr: :$PORT/x"), "addr: :8080/x");
        assert_eq!(ex("${ PORT }"), "8080");
        assert_eq!(ex("a${UNSET}b$UNSET.c"), "ab.c");
        assert_eq!(ex("${EMPTY}"), "");
        assert_eq!(ex("no vars here"), "no vars here");
        assert_eq!(ex("ünïcödé ${PORT} ✓"), "ünïcödé 8080 ✓");
    }

    #[test]
    fn unset_variables_are_reported_with_their_line() {
        let text = "a: ${PORT}\nb: ${HOSTNAME}\nc: $UNSET/${UNSET}\nd: ${EMPTY}\n\
                    e: ${REGION == NOPE}\nf: ${HOSTNAME}\n";
        let (out, undefined) = expand_env_reporting(text, &env).unwrap();
        assert_eq!(out, "a: 8080\nb: \nc: /\nd: \ne: false\nf: \n");
        let got: Vec<(&str, usize)> = undefined
            .iter()
            .map(|u| (u.name.as_str(), u.line))
            .collect();
        assert_eq!(
            got,
            [("HOSTNAME", 2), ("UNSET", 3), ("NOPE", 5), ("HOSTNAME", 6)]
        );
        assert_eq!(undefined[0].to_string(), "line 2: ${HOSTNAME} is not set");
    }

    #[test]
    fn dollar_without_name_is_kept() {
        assert_eq!(ex("cost: 5$"), "cost: 5$");
        assert_eq!(ex("a $ b"), "a $ b");
        assert_eq!(ex("$."), "$.");
        // Go's shell specials are variables, normally unset.
        assert_eq!(ex("pa$$word"), "paword");
        assert_eq!(ex("$1x"), "x");
    }

    #[test]
    fn comparisons() {
        assert_eq!(ex(r#"${REGION == "sjc"}"#), "true");
        assert_eq!(ex(r#"${REGION == "ams"}"#), "false");
        assert_eq!(ex("${REGION != 'ams'}"), "true");
        assert_eq!(ex("${REGION != 'sjc'}"), "false");
        assert_eq!(ex("${REGION == PRIMARY}"), "true");
        assert_eq!(ex("${REGION==OTHER}"), "false");
        assert_eq!(ex("${REGION != OTHER}"), "true");
        assert_eq!(ex("${UNSET == EMPTY}"), "true");
        assert_eq!(ex(r#"${UNSET == ""}"#), "true");
        assert_eq!(ex(r#"${"sjc" == REGION}"#), "true");
        assert_eq!(ex(r#"${'x' != "x"}"#), "false");
        assert_eq!(ex("${UNSET == 'it's'}"), "false");
        assert_eq!(
            ex("candidate: ${ REGION  ==  \"sjc\" }\n"),
            "candidate: true\n"
        );
    }

    #[test]
    fn malformed_expressions_are_errors_naming_them() {
        let e = err("a: 1\nb: ${REGION == }\n");
        assert_eq!(e.expr, "${REGION == }");
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("${REGION == }"), "{e}");

        for text in [
            "${VAR:-default}",
            "${A = 'x'}",
            "${A == 'x}",
            "${A == \"x\" extra}",
            "${A == B C}",
            "${== B}",
            "${A B}",
        ] {
            let e = err(text);
            assert_eq!(e.expr, text);
            assert!(e.reason.contains("malformed"), "{text}: {e}");
        }
        assert!(err("${}").reason.contains("empty"));
        let e = err("x\ny\nz: ${REGION");
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("unterminated"), "{e}");
    }
}
