//! LiteFS's path globs for `passthrough` and `always-forward`: `*` matches
//! any run of characters (slashes included), everything else matches
//! itself, and the pattern must cover the whole path.

/// Whether `path` matches `pattern` as a whole.
pub fn matches(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    // Greedy match with one backtrack point: enough for `*` alone.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether any of `patterns` matches `path`.
pub fn any(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| matches(p, path))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_whole_paths_with_star_only() {
        let cases = [
            ("*.png", "/img/a.png", true),
            ("*.png", "/img/a.png.txt", false),
            ("/build/*", "/build/x/y.js", true),
            ("/build/*", "/builds", false),
            ("/build/*", "/build/", true),
            ("/admin", "/admin", true),
            ("/admin", "/admin/x", false),
            ("/a*b*c", "/aXbYc", true),
            ("/a*b*c", "/aXbY", false),
            ("*", "/anything", true),
            ("/a?", "/ab", false),
            ("/a?", "/a?", true),
            ("", "", true),
            ("", "/", false),
        ];
        for (pat, path, want) in cases {
            assert_eq!(matches(pat, path), want, "{pat:?} vs {path:?}");
        }
    }
}
