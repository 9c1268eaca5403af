//! What each name and inode in the mount is. Inodes are derived from the
//! database's store ID so nothing has to be remembered per lookup.

use litefs::store::FileKind;

pub const ROOT: u64 = fuser::FUSE_ROOT_ID;
const PRIMARY: u64 = 2;
const LAG: u64 = 3;
const DB_BASE: u64 = 16;
const PER_DB: u64 = 8;

pub const PRIMARY_NAME: &str = ".primary";
pub const LAG_NAME: &str = ".lag";
const POS_SUFFIX: &str = "-pos";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Root,
    /// `.primary`: the primary's hostname, on replicas only.
    Primary,
    /// `.lag`: milliseconds behind the primary.
    Lag,
    /// One of the four SQLite files of a database.
    File(u32, FileKind),
    /// `<db>-pos`: the database's replication position.
    Pos(u32),
}

impl Node {
    pub fn ino(self) -> u64 {
        match self {
            Node::Root => ROOT,
            Node::Primary => PRIMARY,
            Node::Lag => LAG,
            Node::File(id, kind) => DB_BASE + id as u64 * PER_DB + kind_slot(kind),
            Node::Pos(id) => DB_BASE + id as u64 * PER_DB + 4,
        }
    }

    pub fn from_ino(ino: u64) -> Option<Node> {
        match ino {
            ROOT => Some(Node::Root),
            PRIMARY => Some(Node::Primary),
            LAG => Some(Node::Lag),
            i if i >= DB_BASE => {
                let id = u32::try_from((i - DB_BASE) / PER_DB).ok()?;
                Some(match (i - DB_BASE) % PER_DB {
                    0 => Node::File(id, FileKind::Database),
                    1 => Node::File(id, FileKind::Journal),
                    2 => Node::File(id, FileKind::Wal),
                    3 => Node::File(id, FileKind::Shm),
                    4 => Node::Pos(id),
                    _ => return None,
                })
            }
            _ => None,
        }
    }
}

fn kind_slot(kind: FileKind) -> u64 {
    match kind {
        FileKind::Database => 0,
        FileKind::Journal => 1,
        FileKind::Wal => 2,
        FileKind::Shm => 3,
    }
}

/// A name in the mount's root, split into database name and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name<'a> {
    Primary,
    Lag,
    File(&'a str, FileKind),
    Pos(&'a str),
}

pub fn parse_name(name: &str) -> Name<'_> {
    match name {
        PRIMARY_NAME => return Name::Primary,
        LAG_NAME => return Name::Lag,
        _ => {}
    }
    if let Some(db) = name.strip_suffix(POS_SUFFIX) {
        return Name::Pos(db);
    }
    for kind in [FileKind::Journal, FileKind::Wal, FileKind::Shm] {
        if let Some(db) = name.strip_suffix(kind.mount_suffix()) {
            return Name::File(db, kind);
        }
    }
    Name::File(name, FileKind::Database)
}

pub fn pos_name(db: &str) -> String {
    format!("{db}{POS_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_round_trip() {
        let nodes = [
            Node::Root,
            Node::Primary,
            Node::Lag,
            Node::File(0, FileKind::Database),
            Node::File(7, FileKind::Shm),
            Node::File(3, FileKind::Journal),
            Node::Pos(9),
        ];
        for n in nodes {
            assert_eq!(Node::from_ino(n.ino()), Some(n));
        }
        assert_eq!(Node::from_ino(DB_BASE + 5), None);
    }

    #[test]
    fn names() {
        assert_eq!(
            parse_name("app.db"),
            Name::File("app.db", FileKind::Database)
        );
        assert_eq!(
            parse_name("app.db-wal"),
            Name::File("app.db", FileKind::Wal)
        );
        assert_eq!(
            parse_name("app.db-journal"),
            Name::File("app.db", FileKind::Journal)
        );
        assert_eq!(parse_name("app.db-pos"), Name::Pos("app.db"));
        assert_eq!(parse_name(".primary"), Name::Primary);
    }
}
