//! Splitting an `exec` command line into argv the way a POSIX shell would
//! (quotes and backslash escapes) without running a shell, and the inverse,
//! quoting an argv so that it splits back unchanged.
//!
//! LiteFS uses go-shellwords, which stops at the first unquoted `;`, `&`,
//! `|`, `<` or `>` and silently drops the rest, so `"migrate && start"` ran
//! only `migrate`. Here those characters are an error that says to wrap the
//! line in `sh -c '...'`.

use std::fmt;

/// Why a command line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// Nothing but whitespace.
    Empty,
    UnterminatedQuote(char),
    TrailingBackslash,
    /// An unquoted shell operator; only a shell could run it.
    ShellOperator(char),
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::Empty => write!(f, "empty command"),
            SplitError::UnterminatedQuote(q) => write!(f, "unterminated {q} quote"),
            SplitError::TrailingBackslash => write!(f, "trailing backslash"),
            SplitError::ShellOperator(c) => write!(
                f,
                "unquoted shell operator `{c}`: commands are run without a shell; \
                 use `sh -c '...'` to run a pipeline or a list"
            ),
        }
    }
}

impl std::error::Error for SplitError {}

/// Splits `line` into words: whitespace separates, `'...'` is literal,
/// `"..."` is literal except for `\"`, `\\`, `\$` and `` \` ``, and an
/// unquoted backslash takes the next character literally. No variable,
/// glob or command expansion happens.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything, even `""`, has been seen for it.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => match chars.next() {
                // A backslash-newline joins lines, as in a shell.
                Some('\n') => {}
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(q) => word.push(q),
                        None => return Err(SplitError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(SplitError::UnterminatedQuote('"')),
                        },
                        Some(q) => word.push(q),
                        None => return Err(SplitError::UnterminatedQuote('"')),
                    }
                }
            }
            ';' | '&' | '|' | '<' | '>' => return Err(SplitError::ShellOperator(c)),
            other => {
                word.push(other);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

/// Quotes `args` into one line that [`split`] turns back into `args`.
pub fn join(args: &[String]) -> String {
    args.iter()
        .map(|arg| quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        return arg.to_string();
    }
    // Inside single quotes nothing is special except the quote itself,
    // which is closed, escaped and reopened.
    format!("'{}'", arg.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(s("node start.js"), ["node", "start.js"]);
        assert_eq!(s("  myapp   -addr :8081 \n"), ["myapp", "-addr", ":8081"]);
        assert_eq!(
            s(r#"sqlite3 /litefs/db "PRAGMA journal_mode = WAL;""#),
            ["sqlite3", "/litefs/db", "PRAGMA journal_mode = WAL;"]
        );
        assert_eq!(s("echo 'a \"b\" c'"), ["echo", "a \"b\" c"]);
        assert_eq!(s(r#"echo "a \"b\" \\ \n""#), ["echo", "a \"b\" \\ \\n"]);
        assert_eq!(s(r"echo a\ b \'"), ["echo", "a b", "'"]);
        assert_eq!(s("echo '' \"\" x"), ["echo", "", "", "x"]);
        assert_eq!(s("a'b'\"c\"d"), ["abcd"]);
        assert_eq!(s("sh -c 'exit 7'"), ["sh", "-c", "exit 7"]);
        assert_eq!(s("a \\\n b"), ["a", "b"]);
        assert_eq!(s("echo $HOME `x`"), ["echo", "$HOME", "`x`"]);
    }

    #[test]
    fn refuses_what_needs_a_shell() {
        assert_eq!(split(""), Err(SplitError::Empty));
        assert_eq!(split("  \t"), Err(SplitError::Empty));
        assert_eq!(split("echo 'x"), Err(SplitError::UnterminatedQuote('\'')));
        assert_eq!(split("echo \"x"), Err(SplitError::UnterminatedQuote('"')));
        assert_eq!(split("echo x\\"), Err(SplitError::TrailingBackslash));
        assert_eq!(split("a && b"), Err(SplitError::ShellOperator('&')));
        assert_eq!(split("a | b"), Err(SplitError::ShellOperator('|')));
        assert_eq!(split("a; b"), Err(SplitError::ShellOperator(';')));
        assert_eq!(split("a > log"), Err(SplitError::ShellOperator('>')));
        let msg = split("a && b").unwrap_err().to_string();
        assert!(msg.contains("sh -c"), "{msg}");
    }

    #[test]
    fn join_round_trips() {
        let cases: Vec<Vec<String>> = vec![
            vec!["node".into(), "start.js".into()],
            vec![
                "sh".into(),
                "-c".into(),
                "trap 'exit 42' TERM; sleep 10 & wait".into(),
            ],
            vec![
                "echo".into(),
                "".into(),
                "it's".into(),
                "a\"b\\c".into(),
                "$X".into(),
            ],
            vec!["ünï".into(), "tab\there".into(), "new\nline".into()],
        ];
        for argv in cases {
            assert_eq!(split(&join(&argv)).unwrap(), argv);
        }
        assert_eq!(join(&["node".into(), "a b".into()]), "node 'a b'");
    }
}
