//! Finding and reading litefs.yml: `-config PATH`, else the first of
//! `./litefs.yml`, `~/litefs.yml`, `/etc/litefs.yml` that exists.

use std::io;
use std::path::{Path, PathBuf};

use super::expand::{EnvLookup, Undefined};
use super::parse::parse_reporting;
use super::{Config, ConfigError};

/// How `${VAR}` in the file is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// Taken literally (`-no-expand-env`).
    Off,
    /// Expanded; an unset variable becomes the empty string, as in LiteFS,
    /// and is listed in [`Loaded::undefined`] for the caller to warn about.
    Lenient,
    /// Expanded; an unset variable is an error (`-strict-env`).
    Strict,
}

/// A config file read, with what the caller should warn about.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file it came from.
    pub path: PathBuf,
    /// Unset variables the file used (they expanded to empty strings).
    pub undefined: Vec<Undefined>,
}

/// Where litefs.yml is looked for, in order, when no `-config` is given.
/// `cwd` makes the first entry absolute so errors say which directory was
/// meant; `home` is `$HOME`, skipped when unset or empty.
pub fn search_paths(cwd: &Path, home: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = vec![cwd.join("litefs.yml")];
    if let Some(home) = home.filter(|h| !h.as_os_str().is_empty()) {
        paths.push(home.join("litefs.yml"));
    }
    paths.push(PathBuf::from("/etc/litefs.yml"));
    paths
}

impl Config {
    /// Finds, reads, expands (as `expansion` says), parses and validates
    /// litefs.yml, using the process environment and working directory.
    pub fn load(explicit: Option<&Path>, expansion: Expansion) -> Result<Loaded, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let searched = match explicit {
            Some(_) => Vec::new(),
            None => {
                let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
                    path: PathBuf::from("."),
                    source,
                })?;
                let home = std::env::var_os("HOME").map(PathBuf::from);
                search_paths(&cwd, home.as_deref())
            }
        };
        let env = (expansion != Expansion::Off).then_some(&env as EnvLookup<'_>);
        Config::load_from(explicit, &searched, env, expansion == Expansion::Strict)
    }

    /// [`Config::load`] with the search list and environment given, so that
    /// callers (and tests) need not touch the process's cwd or env. `env`
    /// `None` disables expansion; `strict` makes an unset variable an error.
    pub fn load_from(
        explicit: Option<&Path>,
        search: &[PathBuf],
        env: Option<EnvLookup<'_>>,
        strict: bool,
    ) -> Result<Loaded, ConfigError> {
        let (path, text) = match explicit {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => (path.to_path_buf(), text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ConfigError::NotFound {
                        path: path.to_path_buf(),
                    })
                }
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            },
            None => find_first(search)?,
        };
        let label = path.display().to_string();
        let (config, undefined) = parse_reporting(&text, env, &label)?;
        if strict && !undefined.is_empty() {
            return Err(ConfigError::Undefined {
                file: label,
                undefined,
            });
        }
        config.validate_labeled(&label)?;
        Ok(Loaded {
            config,
            path,
            undefined,
        })
    }
}

fn find_first(search: &[PathBuf]) -> Result<(PathBuf, String), ConfigError> {
    for path in search {
        match std::fs::read_to_string(path) {
            Ok(text) => return Ok((path.clone(), text)),
            // Only absence moves on to the next place; an unreadable file is
            // reported, as LiteFS does, rather than silently skipped.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Err(ConfigError::NoneFound {
        searched: search.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn write(dir: &Path, body: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("litefs.yml");
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn search_order() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path().join("cwd");
        let home = tmp.path().join("home");
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(&cwd).unwrap();
        let search = vec![
            cwd.join("litefs.yml"),
            home.join("litefs.yml"),
            etc.join("litefs.yml"),
        ];
        let load = |explicit: Option<&Path>| {
            Config::load_from(explicit, &search, Some(&no_env), false).map(|l| (l.config, l.path))
        };

        let err = load(None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::NoneFound { .. }));
        for p in &search {
            assert!(msg.contains(&p.display().to_string()), "{msg}");
        }

        let body = |host: &str| {
            format!("fuse: {{ dir: /m }}\ndata: {{ dir: /d }}\nlease: {{ type: static, hostname: {host} }}\n")
        };
        let etc_file = write(&etc, &body("etc"));
        let (c, from) = load(None).unwrap();
        assert_eq!((c.lease.hostname.as_str(), from), ("etc", etc_file.clone()));

        let home_file = write(&home, &body("home"));
        let (c, from) = load(None).unwrap();
        assert_eq!((c.lease.hostname.as_str(), from), ("home", home_file));

        let cwd_file = write(&cwd, &body("cwd"));
        let (c, from) = load(None).unwrap();
        assert_eq!((c.lease.hostname.as_str(), from), ("cwd", cwd_file));

        // -config wins over every search location.
        let (c, from) = load(Some(&etc_file)).unwrap();
        assert_eq!((c.lease.hostname.as_str(), from), ("etc", etc_file));

        let missing = tmp.path().join("nope.yml");
        let err = load(Some(&missing)).unwrap_err();
        assert!(matches!(err, ConfigError::NotFound { .. }));
        assert!(err.to_string().contains("nope.yml"), "{err}");

        // Errors from a found file name that file.
        let bad = write(&tmp.path().join("bad"), "fuze: {}\n");
        let msg = load(Some(&bad)).unwrap_err().to_string();
        assert!(
            msg.starts_with(&bad.display().to_string()) && msg.contains("`fuze`"),
            "{msg}"
        );
        let invalid = write(&tmp.path().join("invalid"), "fuse: { dir: \"\" }\n");
        let msg = load(Some(&invalid)).unwrap_err().to_string();
        assert!(msg.contains("fuse directory required"), "{msg}");

        // A directory where the file should be is reported, not skipped.
        std::fs::remove_file(cwd.join("litefs.yml")).unwrap();
        std::fs::create_dir(cwd.join("litefs.yml")).unwrap();
        assert!(matches!(load(None).unwrap_err(), ConfigError::Read { .. }));
    }

    #[test]
    fn search_paths_list() {
        let paths = search_paths(Path::new("/srv/app"), Some(Path::new("/home/me")));
        assert_eq!(
            paths,
            [
                PathBuf::from("/srv/app/litefs.yml"),
                PathBuf::from("/home/me/litefs.yml"),
                PathBuf::from("/etc/litefs.yml"),
            ]
        );
        assert_eq!(
            search_paths(Path::new("/srv"), Some(Path::new(""))).len(),
            2
        );
        assert_eq!(search_paths(Path::new("/srv"), None).len(), 2);
    }

    #[test]
    fn load_uses_explicit_path_and_process_env() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(
            tmp.path(),
            "fuse: { dir: /m }\ndata: { dir: /d }\n\
             lease: { type: static, hostname: \"h${LITEFS_RS_TEST_SURELY_UNSET}\" }\n",
        );
        let l = Config::load(Some(&path), Expansion::Lenient).unwrap();
        assert_eq!(
            (l.config.lease.hostname.as_str(), l.path.as_path()),
            ("h", path.as_path())
        );
        assert_eq!(
            l.undefined,
            [Undefined {
                name: "LITEFS_RS_TEST_SURELY_UNSET".into(),
                line: 3
            }]
        );
        let l = Config::load(Some(&path), Expansion::Off).unwrap();
        assert_eq!(l.config.lease.hostname, "h${LITEFS_RS_TEST_SURELY_UNSET}");
        assert!(l.undefined.is_empty());

        let msg = Config::load(Some(&path), Expansion::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&path.display().to_string())
                && msg.contains("line 3: ${LITEFS_RS_TEST_SURELY_UNSET} is not set")
                && msg.contains("-strict-env"),
            "{msg}"
        );
    }
}
