//! The replication wire format, byte-compatible with LiteFS 0.5: the
//! position map a replica sends in `POST /stream`, and the frames the
//! primary answers with. Big-endian throughout. An LTX frame is followed by
//! the LTX file as a chunked stream (u16 length + bytes, a zero length
//! ends it). Pure: reads from `io::Read`, writes to `io::Write`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::store::Pos;

/// Longest database name accepted from the wire; names become directories.
pub const MAX_NAME_LEN: u32 = 1024;
/// Most databases one position map may carry.
pub const MAX_POS_MAP_ENTRIES: u32 = 65_536;
const CHUNK_MAX: usize = u16::MAX as usize;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unknown stream frame type {0}")]
    UnknownType(u32),
    #[error("database name of {0} bytes is too long")]
    NameTooLong(u32),
    #[error("database name is not UTF-8")]
    NameNotUtf8,
    #[error("position map with {0} entries is too large")]
    PosMapTooLarge(u32),
    #[error("stream ended in the middle of a frame")]
    Truncated,
    #[error("stream: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    fn from_read(e: io::Error) -> FrameError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An LTX file for `name` follows, chunked. `size` is informational
    /// (LiteFS sends 0).
    Ltx { size: u64, name: String },
    /// The replica has been sent everything the primary had at connect.
    Ready,
    /// The primary is closing the stream.
    End,
    /// The database no longer exists on the primary.
    DropDb { name: String },
    /// The primary hands its lease to this replica.
    Handoff { lease_id: String },
    /// High-water mark: the primary's backup position.
    Hwm { txid: u64, name: String },
    /// Nothing happened for a while; milliseconds since the epoch.
    Heartbeat { timestamp: i64 },
}

impl Frame {
    fn type_id(&self) -> u32 {
        match self {
            Frame::Ltx { .. } => 1,
            Frame::Ready => 2,
            Frame::End => 3,
            Frame::DropDb { .. } => 4,
            Frame::Handoff { .. } => 5,
            Frame::Hwm { .. } => 6,
            Frame::Heartbeat { .. } => 7,
        }
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.type_id().to_be_bytes())?;
        match self {
            Frame::Ltx { size, name } => {
                w.write_all(&size.to_be_bytes())?;
                write_str(w, name)
            }
            Frame::Ready | Frame::End => Ok(()),
            Frame::DropDb { name } => write_str(w, name),
            Frame::Handoff { lease_id } => write_str(w, lease_id),
            Frame::Hwm { txid, name } => {
                w.write_all(&txid.to_be_bytes())?;
                write_str(w, name)
            }
            Frame::Heartbeat { timestamp } => w.write_all(&timestamp.to_be_bytes()),
        }
    }

    /// Reads one frame; `Ok(None)` on a clean end of stream between frames.
    pub fn read_from(r: &mut impl Read) -> Result<Option<Frame>, FrameError> {
        let mut t = [0u8; 4];
        match r.read(&mut t[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => r.read_exact(&mut t[1..]).map_err(FrameError::from_read)?,
            Err(e) => return Err(FrameError::from_read(e)),
        }
        let frame = match u32::from_be_bytes(t) {
            1 => Frame::Ltx {
                size: read_u64(r)?,
                name: read_str(r)?,
            },
            2 => Frame::Ready,
            3 => Frame::End,
            4 => Frame::DropDb { name: read_str(r)? },
            5 => Frame::Handoff {
                lease_id: read_str(r)?,
            },
            6 => Frame::Hwm {
                txid: read_u64(r)?,
                name: read_str(r)?,
            },
            7 => Frame::Heartbeat {
                timestamp: read_u64(r)? as i64,
            },
            other => return Err(FrameError::UnknownType(other)),
        };
        Ok(Some(frame))
    }
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u32).to_be_bytes())?;
    w.write_all(s.as_bytes())
}

fn read_u32(r: &mut impl Read) -> Result<u32, FrameError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(FrameError::from_read)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, FrameError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(FrameError::from_read)?;
    Ok(u64::from_be_bytes(b))
}

fn read_str(r: &mut impl Read) -> Result<String, FrameError> {
    let n = read_u32(r)?;
    if n > MAX_NAME_LEN {
        return Err(FrameError::NameTooLong(n));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b).map_err(FrameError::from_read)?;
    String::from_utf8(b).map_err(|_| FrameError::NameNotUtf8)
}

/// The body of `POST /stream`: each database the replica has, with its
/// position, sorted by name.
pub fn write_pos_map(w: &mut impl Write, m: &BTreeMap<String, Pos>) -> io::Result<()> {
    w.write_all(&(m.len() as u32).to_be_bytes())?;
    for (name, pos) in m {
        write_str(w, name)?;
        w.write_all(&pos.txid.to_be_bytes())?;
        w.write_all(&pos.post_apply_checksum.to_be_bytes())?;
    }
    Ok(())
}

pub fn read_pos_map(r: &mut impl Read) -> Result<BTreeMap<String, Pos>, FrameError> {
    let n = read_u32(r)?;
    if n > MAX_POS_MAP_ENTRIES {
        return Err(FrameError::PosMapTooLarge(n));
    }
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let name = read_str(r)?;
        let txid = read_u64(r)?;
        let checksum = read_u64(r)?;
        m.insert(name, Pos::new(txid, checksum));
    }
    Ok(m)
}

/// Writes `data` as LiteFS's chunked stream, terminator included.
pub fn write_chunked(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(CHUNK_MAX) {
        w.write_all(&(chunk.len() as u16).to_be_bytes())?;
        w.write_all(chunk)?;
    }
    w.write_all(&0u16.to_be_bytes())
}

/// Reads a chunked stream to its terminator into `out`, refusing more than
/// `limit` bytes (a peer cannot make us buffer without bound).
pub fn read_chunked(
    r: &mut impl Read,
    out: &mut impl Write,
    limit: u64,
) -> Result<u64, FrameError> {
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK_MAX];
    loop {
        let mut n = [0u8; 2];
        r.read_exact(&mut n).map_err(FrameError::from_read)?;
        let n = u16::from_be_bytes(n) as usize;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > limit {
            return Err(FrameError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chunked stream longer than {limit} bytes"),
            )));
        }
        r.read_exact(&mut buf[..n]).map_err(FrameError::from_read)?;
        out.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::Ltx {
                size: 0,
                name: "db".into(),
            },
            Frame::Ready,
            Frame::End,
            Frame::DropDb { name: "x".into() },
            Frame::Handoff {
                lease_id: "l".into(),
            },
            Frame::Hwm {
                txid: 7,
                name: "db".into(),
            },
            Frame::Heartbeat { timestamp: -5 },
        ]
    }

    #[test]
    fn frames_round_trip_and_match_litefs_bytes() {
        let mut buf = Vec::new();
        for f in all_frames() {
            f.write_to(&mut buf).unwrap();
        }
        // LiteFS: LTX frame = type u32, size u64, name len u32, name.
        assert_eq!(
            &buf[..18],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'd', b'b']
        );
        let mut r = &buf[..];
        for f in all_frames() {
            assert_eq!(Frame::read_from(&mut r).unwrap(), Some(f));
        }
        assert_eq!(Frame::read_from(&mut r).unwrap(), None);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        for f in all_frames() {
            f.write_to(&mut buf).unwrap();
        }
        let mut boundaries = vec![0];
        let mut r = &buf[..];
        while Frame::read_from(&mut r).unwrap().is_some() {
            boundaries.push(buf.len() - r.len());
        }
        for cut in 0..buf.len() {
            let mut r = &buf[..cut];
            let mut res = Ok(Some(Frame::End));
            while let Ok(Some(_)) = res {
                res = Frame::read_from(&mut r);
            }
            if boundaries.contains(&cut) {
                assert!(matches!(res, Ok(None)), "cut at {cut}");
            } else {
                assert!(
                    matches!(res, Err(FrameError::Truncated)),
                    "cut at {cut}: {res:?}"
                );
            }
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let mut r = &[0u8, 0, 0, 99][..];
        assert!(matches!(
            Frame::read_from(&mut r),
            Err(FrameError::UnknownType(99))
        ));
        let mut r = &[0u8, 0, 0, 4, 0xff, 0xff, 0xff, 0xff][..];
        assert!(matches!(
            Frame::read_from(&mut r),
            Err(FrameError::NameTooLong(_))
        ));
        let mut r = &[0xffu8, 0xff, 0xff, 0xff][..];
        assert!(matches!(
            read_pos_map(&mut r),
            Err(FrameError::PosMapTooLarge(_))
        ));
    }

    #[test]
    fn pos_map_and_chunks_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("a.db".to_string(), Pos::new(3, 0x8000_0000_0000_0001));
        m.insert("b.db".to_string(), Pos::new(0, 0));
        let mut buf = Vec::new();
        write_pos_map(&mut buf, &m).unwrap();
        assert_eq!(read_pos_map(&mut &buf[..]).unwrap(), m);

        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut buf = Vec::new();
        write_chunked(&mut buf, &data).unwrap();
        let mut out = Vec::new();
        read_chunked(&mut &buf[..], &mut out, 1 << 20).unwrap();
        assert_eq!(out, data);
        assert!(read_chunked(&mut &buf[..], &mut Vec::new(), 1000).is_err());
        assert!(matches!(
            read_chunked(&mut &buf[..buf.len() - 1], &mut Vec::new(), 1 << 20),
            Err(FrameError::Truncated)
        ));
    }
}
