//! Properties over random inputs: files round-trip, and replaying a chain of
//! LTX files into an empty database gives exactly the database built in
//! memory, byte for byte and checksum for checksum.

mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek, SeekFrom};

use proptest::prelude::*;

use ltx::{
    apply, apply_verified, database_checksum, verify, Decoder, Encoder, Header, CHECKSUM_FLAG,
    HEADER_FLAG_COMPRESS_LZ4,
};

fn flags(compress: bool) -> u32 {
    if compress {
        HEADER_FLAG_COMPRESS_LZ4
    } else {
        0
    }
}

fn page_strategy(size: usize) -> impl Strategy<Value = Vec<u8>> {
    // Mix of runs (compressible) and noise, as real pages are.
    (any::<u8>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(move |(fill, noise)| {
        let mut p = vec![fill; size];
        for (i, b) in noise.iter().enumerate() {
            p[(i * 97) % size] = *b;
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn pages_round_trip(
        page_size in prop::sample::select(vec![512u32, 1024, 4096]),
        commit in 1u32..64,
        picks in prop::collection::btree_set(1u32..64, 0..20),
        seed_pages in prop::collection::vec(page_strategy(512), 20),
        compress in any::<bool>(),
        snapshot in any::<bool>(),
    ) {
        let ps = page_size as usize;
        let make = |i: usize| -> Vec<u8> {
            seed_pages[i % seed_pages.len()].iter().cycle().take(ps).copied().collect()
        };
        let pages: Vec<(u32, Vec<u8>)> = if snapshot {
            (1..=commit).map(|n| (n, make(n as usize))).collect()
        } else {
            picks.iter().filter(|&&n| n <= commit).enumerate().map(|(i, &n)| (n, make(i))).collect()
        };
        let header = Header {
            flags: flags(compress),
            page_size,
            commit,
            min_txid: if snapshot { 1 } else { 10 },
            max_txid: 12,
            pre_apply_checksum: if snapshot { 0 } else { CHECKSUM_FLAG | 77 },
            ..Header::default()
        };
        let mut enc = Encoder::new(Vec::new(), &header).unwrap();
        for (n, d) in &pages {
            enc.encode_page(*n, d).unwrap();
        }
        let post = enc.snapshot_checksum().unwrap_or(CHECKSUM_FLAG | 5);
        let (bytes, trailer) = enc.finish(post).unwrap();

        let mut dec = Decoder::new(&bytes[..]).unwrap();
        prop_assert_eq!(*dec.header(), header);
        let mut buf = vec![0u8; ps];
        let mut got = Vec::new();
        while let Some(n) = dec.next_page(&mut buf).unwrap() {
            got.push((n, buf.clone()));
        }
        prop_assert_eq!(dec.finish().unwrap(), trailer);
        prop_assert_eq!(got, pages);
        prop_assert_eq!(verify(&bytes[..]).unwrap(), (header, trailer));
    }

    #[test]
    fn replaying_a_chain_rebuilds_the_database(
        initial in prop::collection::vec(page_strategy(512), 0..12),
        steps in prop::collection::vec(
            (0u32..24, prop::collection::btree_map(1u32..24, page_strategy(512), 0..8), any::<bool>()),
            1..8,
        ),
        compress_snapshot in any::<bool>(),
    ) {
        const PS: usize = 512;
        // The model: the database as a page map; missing pages are zeros.
        let mut model: Vec<Vec<u8>> = initial.clone();
        let flat = |m: &Vec<Vec<u8>>| m.concat();

        let mut files = Vec::new();
        let mut snap = Vec::new();
        let t = ltx::encode_snapshot(
            Cursor::new(flat(&model)), &mut snap, PS as u32, 1, 0, 1, compress_snapshot,
        ).unwrap();
        prop_assert_eq!(t.post_apply_checksum, database_checksum(&flat(&model)[..], PS as u32).unwrap());
        files.push(snap);

        let mut txid = 1u64;
        for (commit, writes, compress) in steps {
            let pre = database_checksum(&flat(&model)[..], PS as u32).unwrap();
            let writes: BTreeMap<u32, Vec<u8>> =
                writes.into_iter().filter(|(n, _)| *n <= commit).collect();
            model.resize(commit as usize, vec![0u8; PS]);
            for (n, d) in &writes {
                model[*n as usize - 1] = d.clone();
            }
            let post = database_checksum(&flat(&model)[..], PS as u32).unwrap();
            txid += 1;
            let h = Header {
                flags: flags(compress),
                page_size: PS as u32,
                commit,
                min_txid: txid,
                max_txid: txid,
                timestamp: txid as i64,
                pre_apply_checksum: pre,
                ..Header::default()
            };
            let mut enc = Encoder::new(Vec::new(), &h).unwrap();
            for (n, d) in &writes {
                enc.encode_page(*n, d).unwrap();
            }
            files.push(enc.finish(post).unwrap().0);
        }
        let want = flat(&model);
        let want_sum = database_checksum(&want[..], PS as u32).unwrap();

        // Verified replay into a real file, carrying the checksum forward.
        let mut db = tempfile::tempfile().unwrap();
        let mut sum = CHECKSUM_FLAG;
        for f in &files {
            let (_, t) = apply_verified(&f[..], &mut db, sum).unwrap();
            sum = t.post_apply_checksum;
        }
        let mut got = Vec::new();
        db.seek(SeekFrom::Start(0)).unwrap();
        db.read_to_end(&mut got).unwrap();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(sum, want_sum);

        // Plain replay into memory gives the same bytes.
        let mut mem = Cursor::new(Vec::new());
        for f in &files {
            apply(&f[..], &mut mem).unwrap();
        }
        prop_assert_eq!(mem.get_ref(), &want);
    }
}
