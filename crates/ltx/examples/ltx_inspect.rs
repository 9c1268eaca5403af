//! Verifies LTX files and prints their header and trailer; with `--db FILE
//! PAGE_SIZE`, also prints that database's checksum. A debugging aid, and how
//! files written by the Go implementation were checked against this crate.
//!
//! `--encode DB PAGE_SIZE OUT plain|lz4` writes DB as a snapshot LTX file.
//!
//! `cargo run -p ltx --example ltx_inspect -- FILE.ltx... [--db FILE PAGE_SIZE]`

use std::fs::File;
use std::io::BufReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut status = 0;
    while let Some(arg) = args.next() {
        if arg == "--db" {
            let path = args.next().ok_or("--db needs a file")?;
            let page_size: u32 = args.next().ok_or("--db needs a page size")?.parse()?;
            let sum = ltx::database_checksum(BufReader::new(File::open(&path)?), page_size)?;
            println!("{path}: database checksum {sum:016x}");
            continue;
        }
        if arg == "--encode" {
            let (Some(db), Some(ps), Some(out), Some(mode)) =
                (args.next(), args.next(), args.next(), args.next())
            else {
                return Err("--encode DB PAGE_SIZE OUT plain|lz4".into());
            };
            let t = ltx::encode_snapshot(
                BufReader::new(File::open(&db)?),
                std::io::BufWriter::new(File::create(&out)?),
                ps.parse()?,
                1,
                0,
                0,
                mode == "lz4",
            )?;
            println!("{out}: wrote post={:016x}", t.post_apply_checksum);
            continue;
        }
        match ltx::verify(BufReader::new(File::open(&arg)?)) {
            Ok((h, t)) => println!(
                "{arg}: ok flags={} page_size={} commit={} txid={}..{} ts={} pre={:016x} \
                 wal=({},{},{:08x},{:08x}) node={:x} post={:016x} file={:016x}",
                h.flags,
                h.page_size,
                h.commit,
                h.min_txid,
                h.max_txid,
                h.timestamp,
                h.pre_apply_checksum,
                h.wal_offset,
                h.wal_size,
                h.wal_salt1,
                h.wal_salt2,
                h.node_id,
                t.post_apply_checksum,
                t.file_checksum
            ),
            Err(e) => {
                println!("{arg}: {e}");
                status = 1;
            }
        }
    }
    std::process::exit(status);
}
