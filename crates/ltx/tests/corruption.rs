//! Any damage to a valid file is an error from `verify`: never `Ok`, never a
//! panic. Small files let every byte, every bit and every length be tried.
//!
//! One exception is inherent to the format: the file checksum covers the
//! *uncompressed* page block, and LZ4 can spell the same bytes more than one
//! way (a match offset 2 or 253 back into a run of zeros copies the same
//! zeros). A flip that turns one spelling into another changes no page, no
//! header field and no checksum, so it is accepted. The tests allow exactly
//! that: inside the LZ4 block data, an accepted file must decode to the
//! identical header, pages and trailer.

mod common;

use common::{db_checksum_of, page};
use ltx::{verify, Encoder, Header, CHECKSUM_FLAG, HEADER_FLAG_COMPRESS_LZ4, HEADER_SIZE};

fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, flags) in [("plain", 0), ("lz4", HEADER_FLAG_COMPRESS_LZ4)] {
        let snap: Vec<_> = (1..=3).map(|n| (n, page(n, 3, 512))).collect();
        let h = Header {
            flags,
            page_size: 512,
            commit: 3,
            min_txid: 1,
            max_txid: 4,
            timestamp: 99,
            node_id: 5,
            ..Header::default()
        };
        out.push((name, encode(&h, &snap, db_checksum_of(&snap))));

        let incr = vec![(2, page(2, 8, 512)), (6, page(6, 9, 512))];
        let h = Header {
            min_txid: 5,
            max_txid: 6,
            commit: 6,
            pre_apply_checksum: CHECKSUM_FLAG | 0x1234,
            wal_offset: 32,
            wal_size: 1056,
            wal_salt1: 1,
            wal_salt2: 2,
            ..h
        };
        out.push((name, encode(&h, &incr, CHECKSUM_FLAG | 0x5678)));
    }
    out
}

/// Offset of the first and one past the last byte of LZ4 block data in a
/// compressed file (after the 7-byte frame descriptor and 4-byte block size,
/// before the end mark, content checksum and trailer).
fn lz4_block_data(file: &[u8]) -> std::ops::Range<usize> {
    HEADER_SIZE + 7 + 4..file.len() - 16 - 4 - 4
}

fn decoded(file: &[u8]) -> (Header, Vec<(u32, Vec<u8>)>, ltx::Trailer) {
    let mut dec = ltx::Decoder::new(file).unwrap();
    let h = *dec.header();
    let mut buf = vec![0u8; h.page_size as usize];
    let mut pages = Vec::new();
    while let Some(n) = dec.next_page(&mut buf).unwrap() {
        pages.push((n, buf.clone()));
    }
    (h, pages, dec.finish().unwrap())
}

/// Either `bad` is rejected, or it is an equivalent LZ4 spelling of `good`.
fn check_rejected(name: &str, good: &[u8], bad: &[u8], at: usize, what: &str) -> bool {
    if verify(bad).is_err() {
        return false;
    }
    assert!(
        name == "lz4" && lz4_block_data(good).contains(&at),
        "{name}: {what} at byte {at} was accepted"
    );
    assert_eq!(
        decoded(bad),
        decoded(good),
        "{name}: {what} at {at} changed content"
    );
    true
}

fn encode(h: &Header, frames: &[(u32, Vec<u8>)], post: u64) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    for (pgno, data) in frames {
        enc.encode_page(*pgno, data).unwrap();
    }
    enc.finish(post).unwrap().0
}

#[test]
fn every_byte_flipped_is_rejected() {
    for (name, file) in sample_files() {
        verify(&file[..]).unwrap();
        let mut equivalent = 0;
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0xff;
            equivalent += usize::from(check_rejected(name, &file, &bad, i, "byte flip"));
        }
        // Equivalent spellings are rare; most flips must be caught.
        assert!(
            equivalent * 20 < file.len(),
            "{name}: {equivalent} accepted"
        );
    }
}

#[test]
fn every_bit_flipped_is_rejected() {
    for (name, file) in sample_files() {
        for i in 0..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[i] ^= 1 << bit;
                check_rejected(name, &file, &bad, i, "bit flip");
            }
        }
    }
}

#[test]
fn header_bit_flips_give_specific_errors() {
    // Flips in validated fields fail validation; flips elsewhere in the header
    // (timestamp, node ID, reserved bytes) fail the file checksum.
    let (_, file) = &sample_files()[0];
    for i in 0..HEADER_SIZE {
        for bit in 0..8 {
            let mut bad = file.clone();
            bad[i] ^= 1 << bit;
            let err = verify(&bad[..]).unwrap_err();
            if i < 4 {
                assert!(
                    matches!(err, ltx::Error::InvalidMagic { .. }),
                    "{i}:{bit} {err}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    for (name, file) in sample_files() {
        for len in 0..file.len() {
            match verify(&file[..len]) {
                Ok(_) => panic!("{name}: truncated to {len} bytes was accepted"),
                Err(ltx::Error::Io(e)) => panic!("{name}: truncation at {len} gave I/O error {e}"),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn plain_truncations_say_truncated() {
    let files = sample_files();
    let (_, file) = &files[0];
    for len in 0..file.len() {
        let err = verify(&file[..len]).unwrap_err();
        assert!(
            matches!(err, ltx::Error::Truncated { .. }),
            "at {len}: {err}"
        );
    }
}
