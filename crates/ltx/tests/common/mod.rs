//! Helpers shared by the integration tests: an independent, spec-following
//! builder of raw LTX bytes (so tests can make files the encoder refuses to),
//! and deterministic page contents.

#![allow(dead_code)]

use crc::{Crc, CRC_64_GO_ISO};
use ltx::{Header, CHECKSUM_FLAG};

pub const GO_ISO: Crc<u64> = Crc::<u64>::new(&CRC_64_GO_ISO);

/// The uncompressed page block: frames then a zero page number.
pub fn page_block(frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (pgno, data) in frames {
        b.extend_from_slice(&pgno.to_be_bytes());
        b.extend_from_slice(data);
    }
    b.extend_from_slice(&[0, 0, 0, 0]);
    b
}

/// Builds a file byte by byte from the format description, with a correct
/// file checksum whatever the header and frames say.
pub fn raw_file(header: &Header, frames: &[(u32, Vec<u8>)], post: u64) -> Vec<u8> {
    let hb = header.to_bytes();
    let block = page_block(frames);
    let mut d = GO_ISO.digest();
    d.update(&hb);
    d.update(&block);
    d.update(&post.to_be_bytes());
    let file_checksum = CHECKSUM_FLAG | d.finalize();

    let mut out = hb.to_vec();
    if header.is_compressed() {
        let mut z = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut z, &block).unwrap();
        out.extend(z.finish().unwrap());
    } else {
        out.extend(block);
    }
    out.extend_from_slice(&post.to_be_bytes());
    out.extend_from_slice(&file_checksum.to_be_bytes());
    out
}

/// A page that looks a little like SQLite's: a header, some text, zero fill.
pub fn page(pgno: u32, seed: u8, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    for (i, b) in p.iter_mut().enumerate().take(size / 2) {
        *b = (i as u32)
            .wrapping_mul(31)
            .wrapping_add(pgno)
            .wrapping_add(u32::from(seed)) as u8;
    }
    p
}

pub fn db_checksum_of(pages: &[(u32, Vec<u8>)]) -> u64 {
    let mut sum = ltx::DbChecksum::new();
    for (pgno, data) in pages {
        sum.xor(ltx::page_checksum(*pgno, data));
    }
    sum.value()
}
