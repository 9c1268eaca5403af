//! `litefs ltx verify` and `litefs ltx dump`: look inside LTX files without
//! a running node.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// Verifies every file and prints one line each; Ok(false) when any failed.
pub fn verify(files: &[PathBuf], out: &mut impl Write) -> Result<bool> {
    let mut all_ok = true;
    for path in files {
        match verify_one(path) {
            Ok((h, t)) => writeln!(
                out,
                "{}: ok (TXID {:016x}-{:016x}, {} pages of {} bytes, post-apply checksum {:016x})",
                path.display(),
                h.min_txid,
                h.max_txid,
                h.commit,
                h.page_size,
                t.post_apply_checksum
            )?,
            Err(e) => {
                all_ok = false;
                writeln!(out, "{}: invalid: {e:#}", path.display())?;
            }
        }
    }
    Ok(all_ok)
}

fn verify_one(path: &Path) -> Result<(ltx::Header, ltx::Trailer)> {
    let f = File::open(path).context("cannot open")?;
    Ok(ltx::verify(BufReader::new(f))?)
}

#[derive(Serialize)]
struct Dump {
    header: HeaderView,
    pages: Vec<PageView>,
    trailer: TrailerView,
}

#[derive(Serialize)]
struct HeaderView {
    flags: u32,
    compressed: bool,
    page_size: u32,
    commit: u32,
    min_txid: String,
    max_txid: String,
    timestamp: i64,
    pre_apply_checksum: String,
    wal_offset: i64,
    wal_size: i64,
    wal_salt1: u32,
    wal_salt2: u32,
    node_id: String,
}

#[derive(Serialize)]
struct PageView {
    pgno: u32,
    checksum: String,
}

#[derive(Serialize)]
struct TrailerView {
    post_apply_checksum: String,
    file_checksum: String,
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

/// Decodes the whole file (so a corrupt one is reported, not half-shown)
/// and prints its header, each page and the trailer.
pub fn dump(path: &Path, json: bool, out: &mut impl Write) -> Result<()> {
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut dec = ltx::Decoder::new(BufReader::new(f))
        .with_context(|| format!("{}: invalid", path.display()))?;
    let h = *dec.header();
    let mut buf = vec![0u8; h.page_size as usize];
    let mut pages = Vec::new();
    while let Some(pgno) = dec
        .next_page(&mut buf)
        .with_context(|| format!("{}: invalid", path.display()))?
    {
        pages.push(PageView {
            pgno,
            checksum: hex(ltx::page_checksum(pgno, &buf)),
        });
    }
    let t = dec
        .finish()
        .with_context(|| format!("{}: invalid", path.display()))?;
    let dump = Dump {
        header: HeaderView {
            flags: h.flags,
            compressed: h.is_compressed(),
            page_size: h.page_size,
            commit: h.commit,
            min_txid: hex(h.min_txid),
            max_txid: hex(h.max_txid),
            timestamp: h.timestamp,
            pre_apply_checksum: hex(h.pre_apply_checksum),
            wal_offset: h.wal_offset,
            wal_size: h.wal_size,
            wal_salt1: h.wal_salt1,
            wal_salt2: h.wal_salt2,
            node_id: hex(h.node_id),
        },
        pages,
        trailer: TrailerView {
            post_apply_checksum: hex(t.post_apply_checksum),
            file_checksum: hex(t.file_checksum),
        },
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &dump)?;
        writeln!(out)?;
        return Ok(());
    }
    let d = &dump.header;
    writeln!(out, "# {}", path.display())?;
    writeln!(out, "header:")?;
    writeln!(
        out,
        "  flags:              0x{:x}{}",
        d.flags,
        if d.compressed { " (lz4)" } else { "" }
    )?;
    writeln!(out, "  page size:          {}", d.page_size)?;
    writeln!(out, "  commit:             {}", d.commit)?;
    writeln!(out, "  min TXID:           {}", d.min_txid)?;
    writeln!(out, "  max TXID:           {}", d.max_txid)?;
    writeln!(out, "  timestamp:          {}", d.timestamp)?;
    writeln!(out, "  pre-apply checksum: {}", d.pre_apply_checksum)?;
    writeln!(out, "  WAL offset/size:    {}/{}", d.wal_offset, d.wal_size)?;
    writeln!(
        out,
        "  WAL salts:          {:08x} {:08x}",
        d.wal_salt1, d.wal_salt2
    )?;
    writeln!(out, "  node ID:            {}", d.node_id)?;
    writeln!(out, "pages: {}", dump.pages.len())?;
    for p in &dump.pages {
        writeln!(out, "  pgno={:<10} checksum={}", p.pgno, p.checksum)?;
    }
    writeln!(out, "trailer:")?;
    writeln!(
        out,
        "  post-apply checksum: {}",
        dump.trailer.post_apply_checksum
    )?;
    writeln!(out, "  file checksum:       {}", dump.trailer.file_checksum)?;
    Ok(())
}
