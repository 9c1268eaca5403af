//! Reading the files a LiteFS mount shows an app: `<db>-pos` (the local
//! transaction position) and `.primary` (who the primary is, present only on
//! replicas). Pure std, no N-API, so it is unit-tested without Node.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The largest integer a JS number holds exactly; a TXID past it cannot be
/// handed to JS as a number without silently changing value.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A parsed `-pos` file: `%016x/%016x\n`, TXID then post-apply checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub txid: u64,
    pub checksum: u64,
}

#[derive(Debug)]
pub enum FileError {
    /// The file exists but does not hold what LiteFS writes there.
    Parse {
        path: PathBuf,
        content: String,
    },
    /// The TXID is valid but too large to be a JS number.
    TooLarge {
        path: PathBuf,
        txid: u64,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Parse { path, content } => write!(
                f,
                "cannot parse {}: expected \"<txid hex>/<checksum hex>\", found {:?}",
                path.display(),
                content
            ),
            FileError::TooLarge { path, txid } => write!(
                f,
                "{}: TXID {txid} is larger than Number.MAX_SAFE_INTEGER",
                path.display()
            ),
            FileError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for FileError {}

/// Hex of 1 to 16 digits. Older LiteFS versions wrote unpadded values, so
/// padding is accepted but not required; signs and `0x` prefixes are not
/// something LiteFS ever wrote, so they are rejected rather than guessed at.
fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parses the text of a `-pos` file. A missing checksum is accepted (the
/// TXID alone is what callers need); anything else that is not hex is not.
pub fn parse_pos(text: &str) -> Option<Pos> {
    let text = text.trim_end_matches(['\n', '\r']);
    let (txid, checksum) = match text.split_once('/') {
        Some((t, c)) => (t, Some(c)),
        None => (text, None),
    };
    Some(Pos {
        txid: parse_hex(txid)?,
        checksum: match checksum {
            Some(c) => parse_hex(c)?,
            None => 0,
        },
    })
}

/// The whole of a small file in as few system calls as a read allows: open,
/// read, close. `std::fs::read` adds a `statx` for a size hint and a second
/// `read` to see EOF, and on a FUSE mount each of those can be a round trip
/// to the LiteFS daemon. A read that returns less than it was asked for is
/// taken as EOF, as Node's `readFile` does once it has the `fstat` size: for
/// a regular file a short read only happens at the end. A file that fills
/// the buffer is read on to EOF.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 512];
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
                buf.resize(buf.len() * 2, 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

pub fn pos_path(dir: &Path, db: &str) -> PathBuf {
    dir.join(format!("{db}-pos"))
}

/// The position of `db` in `dir`. A missing file is position 0: LiteFS has
/// not created the database yet, which is what litefs-js reports too.
pub fn read_pos(dir: &Path, db: &str) -> Result<Pos, FileError> {
    let path = pos_path(dir, db);
    match read_small(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match parse_pos(&text) {
                Some(pos) => Ok(pos),
                None => Err(FileError::Parse {
                    path,
                    content: text.into_owned(),
                }),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Pos {
            txid: 0,
            checksum: 0,
        }),
        Err(source) => Err(FileError::Io { path, source }),
    }
}

/// The TXID of `db` as a value a JS number holds exactly.
pub fn read_tx_number(dir: &Path, db: &str) -> Result<u64, FileError> {
    let pos = read_pos(dir, db)?;
    if pos.txid > MAX_SAFE_INTEGER {
        return Err(FileError::TooLarge {
            path: pos_path(dir, db),
            txid: pos.txid,
        });
    }
    Ok(pos.txid)
}

/// The hostname in `.primary`, or `None` when the file is absent, which
/// LiteFS uses to say "this node is the primary". Only absence means that:
/// any other read error is returned, because treating an I/O error on a
/// replica as "I am primary" would let it run migrations.
pub fn read_primary(dir: &Path) -> Result<Option<String>, FileError> {
    let path = dir.join(".primary");
    match read_small(&path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Io { path, source }),
    }
}

/// The host name as `os.hostname()` reports it (both call gethostname(2)).
pub fn hostname() -> io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates
    // within that length on success (truncation is reported as an error).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub primary_instance: String,
    pub current_instance: String,
    pub current_is_primary: bool,
}

/// Who is primary, from `.primary`. `current` is this instance's name when
/// the caller knows it (`LITEFS_HOSTNAME`, which litefs sets for its exec
/// commands): several nodes on one machine share the OS hostname, and a
/// replica would otherwise take a primary of that name for itself.
/// Without it the OS hostname is used, as litefs-js does.
pub fn read_instance_info(dir: &Path, current: Option<&str>) -> Result<InstanceInfo, FileError> {
    let current = match current.filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None => hostname().map_err(|source| FileError::Io {
            path: PathBuf::from("gethostname()"),
            source,
        })?,
    };
    let primary = read_primary(dir)?.unwrap_or_else(|| current.clone());
    Ok(InstanceInfo {
        current_is_primary: primary == current,
        primary_instance: primary,
        current_instance: current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_accepts_what_any_litefs_wrote() {
        let want = Pos {
            txid: 0x2a,
            checksum: 0x8000_0000_0000_00ff,
        };
        for text in [
            "000000000000002a/80000000000000ff\n",
            "000000000000002a/80000000000000ff",
            "2a/80000000000000ff\n",
            "2A/80000000000000FF\r\n",
        ] {
            assert_eq!(parse_pos(text), Some(want), "{text:?}");
        }
        assert_eq!(
            parse_pos("7"),
            Some(Pos {
                txid: 7,
                checksum: 0
            })
        );
    }

    #[test]
    fn pos_rejects_anything_else() {
        for text in [
            "",
            "\n",
            "/1",
            "x/1",
            "1/",
            "1/zz",
            "0x1/2",
            "-1/2",
            " 1/2",
            "1/2/3",
            "00000000000000001/0",
        ] {
            assert_eq!(parse_pos(text), None, "{text:?}");
        }
    }

    #[test]
    fn missing_pos_is_zero_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_tx_number(dir.path(), "db").unwrap(), 0);
        std::fs::write(dir.path().join("db-pos"), "nope\n").unwrap();
        let err = read_tx_number(dir.path(), "db").unwrap_err().to_string();
        assert!(err.contains("db-pos") && err.contains("nope"), "{err}");
        std::fs::write(dir.path().join("db-pos"), "ffffffffffffffff/0\n").unwrap();
        assert!(matches!(
            read_tx_number(dir.path(), "db"),
            Err(FileError::TooLarge { .. })
        ));
    }

    #[test]
    fn read_small_reads_any_size_whole() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 34, 511, 512, 513, 1024, 5000] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            assert_eq!(read_small(&path).unwrap(), data, "{len}");
        }
    }

    #[test]
    fn primary_file_decides_who_is_primary() {
        let dir = tempfile::tempdir().unwrap();
        let me = hostname().unwrap();
        let info = read_instance_info(dir.path(), None).unwrap();
        assert!(info.current_is_primary);
        assert_eq!(info.primary_instance, me);
        std::fs::write(dir.path().join(".primary"), "other-host\n").unwrap();
        let info = read_instance_info(dir.path(), None).unwrap();
        assert!(!info.current_is_primary);
        assert_eq!(info.primary_instance, "other-host");
        assert_eq!(info.current_instance, me);
        // An empty name counts as not given.
        assert_eq!(read_instance_info(dir.path(), Some("")).unwrap(), info);
    }

    #[test]
    fn a_given_name_is_who_this_instance_is() {
        let dir = tempfile::tempdir().unwrap();
        let info = read_instance_info(dir.path(), Some("node-b")).unwrap();
        assert_eq!(
            (
                info.current_instance.as_str(),
                info.primary_instance.as_str()
            ),
            ("node-b", "node-b")
        );
        assert!(info.current_is_primary);
        // Two nodes on one machine: the replica's `.primary` names the
        // primary, whose name may well be the machine's hostname.
        let me = hostname().unwrap();
        std::fs::write(dir.path().join(".primary"), format!("{me}\n")).unwrap();
        let info = read_instance_info(dir.path(), Some("node-b")).unwrap();
        assert!(!info.current_is_primary);
        assert_eq!(info.primary_instance, me);
        assert_eq!(info.current_instance, "node-b");
    }

    #[test]
    fn unreadable_primary_is_an_error_not_primary() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be makes read(2) fail with EISDIR.
        std::fs::create_dir(dir.path().join(".primary")).unwrap();
        assert!(read_instance_info(dir.path(), None).is_err());
    }
}
