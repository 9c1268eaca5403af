//! Decode throughput against a plain file read, measured in one run.
//!
//! `cargo run --release -p ltx --example decode_bench [MiB]`
//!
//! Builds SQLite-like pages (a header, packed cells with text and integers,
//! free space), encodes them as an uncompressed and an LZ4 LTX file, then
//! times decoding each and reading the same number of bytes from a plain file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use ltx::{Decoder, Encoder, Header, HEADER_FLAG_COMPRESS_LZ4};

const PAGE_SIZE: usize = 4096;

fn sqlite_like_page(pgno: u32, rng: &mut u64) -> Vec<u8> {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let mut p = vec![0u8; PAGE_SIZE];
    p[0] = 0x0d; // table leaf
    p[1..5].copy_from_slice(&pgno.to_be_bytes());
    // Cells fill the back ~60% of the page: random keys, repetitive text.
    let words: [&[u8]; 6] = [
        b"alpha ",
        b"litefs ",
        b"replica ",
        b"sqlite ",
        b"primary ",
        b"commit ",
    ];
    let mut i = PAGE_SIZE * 2 / 5;
    while i < PAGE_SIZE - 16 {
        let r = next();
        p[i..i + 8].copy_from_slice(&r.to_be_bytes());
        i += 8;
        for k in 0..(r % 6) as usize {
            let w = words[(r as usize >> (k * 3)) % words.len()];
            let n = w.len().min(PAGE_SIZE - i);
            p[i..i + n].copy_from_slice(&w[..n]);
            i += n;
        }
    }
    p
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn decode(path: &std::path::Path) -> Result<(u64, Duration), ltx::Error> {
    let start = Instant::now();
    let mut dec = Decoder::new(BufReader::with_capacity(1 << 16, File::open(path)?))?;
    let mut buf = vec![0u8; PAGE_SIZE];
    let mut bytes = 0u64;
    while dec.next_page(&mut buf)?.is_some() {
        bytes += PAGE_SIZE as u64;
    }
    dec.finish()?;
    Ok((bytes, start.elapsed()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args().nth(1).map_or(Ok(64), |s| s.parse())?;
    let pages = (mib * 1024 * 1024 / PAGE_SIZE) as u32;
    let dir = tempfile::tempdir()?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<Vec<u8>> = (1..=pages).map(|n| sqlite_like_page(n, &mut rng)).collect();

    let raw_path = dir.path().join("pages.raw");
    let mut raw = BufWriter::new(File::create(&raw_path)?);
    for p in &data {
        raw.write_all(p)?;
    }
    raw.into_inner()?.sync_all()?;

    let mut sizes = Vec::new();
    for (name, flags) in [("plain.ltx", 0), ("lz4.ltx", HEADER_FLAG_COMPRESS_LZ4)] {
        let header = Header {
            flags,
            page_size: PAGE_SIZE as u32,
            commit: pages,
            min_txid: 2,
            max_txid: 2,
            pre_apply_checksum: ltx::CHECKSUM_FLAG | 1,
            ..Header::default()
        };
        let path = dir.path().join(name);
        let start = Instant::now();
        let mut enc = Encoder::new(
            BufWriter::with_capacity(1 << 16, File::create(&path)?),
            &header,
        )?;
        for (i, p) in data.iter().enumerate() {
            enc.encode_page(i as u32 + 1, p)?;
        }
        let (w, _) = enc.finish(ltx::CHECKSUM_FLAG | 2)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let took = start.elapsed();
        let size = std::fs::metadata(&path)?.len();
        println!(
            "encode {name:<10} {:>8.0} MB/s  file {:.1} MiB",
            mbps(u64::from(pages) * PAGE_SIZE as u64, took),
            size as f64 / 1048576.0
        );
        sizes.push(size);
    }
    drop(data);

    // Warm the page cache for all three files so each run reads from memory.
    for name in ["pages.raw", "plain.ltx", "lz4.ltx"] {
        std::io::copy(
            &mut File::open(dir.path().join(name))?,
            &mut std::io::sink(),
        )?;
    }

    let best = |f: &dyn Fn() -> Result<(u64, Duration), Box<dyn std::error::Error>>| {
        let mut best: Option<(u64, Duration)> = None;
        for _ in 0..3 {
            let r = f()?;
            if best.is_none_or(|b| r.1 < b.1) {
                best = Some(r);
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(best.unwrap_or_default())
    };

    let (copy_bytes, copy_t) = best(&|| {
        let start = Instant::now();
        let mut f = File::open(&raw_path)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok((total, start.elapsed()))
    })?;
    let (plain_bytes, plain_t) = best(&|| Ok(decode(&dir.path().join("plain.ltx"))?))?;
    let (lz4_bytes, lz4_t) = best(&|| Ok(decode(&dir.path().join("lz4.ltx"))?))?;

    let copy = mbps(copy_bytes, copy_t);
    let plain = mbps(plain_bytes, plain_t);
    let lz4 = mbps(lz4_bytes, lz4_t);
    println!(
        "page data: {} MiB in {} pages of {PAGE_SIZE} bytes",
        mib, pages
    );
    println!("plain file read      {copy:>8.0} MB/s  1.00x");
    println!(
        "decode uncompressed  {plain:>8.0} MB/s  {:.2}x of plain read",
        plain / copy
    );
    println!(
        "decode lz4           {lz4:>8.0} MB/s  {:.2}x of plain read  (file is {:.0}% of uncompressed)",
        lz4 / copy,
        100.0 * sizes[1] as f64 / sizes[0] as f64
    );
    Ok(())
}
