//! Micro-benchmarks of the data path (DESIGN.md "Data path"): what a byte costs when it is
//! hashed, compressed, stored, received by a child, and listed in a manifest.
//!
//! Run with `cargo bench --bench hot_path`; figures and their reading are in
//! `benches/README.md`. Kept short on purpose (10 samples, about a second each): these are
//! for spotting a regression or a slow path, not for publishing absolute numbers.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use updhub::id::BlobId;
use updhub::repo::{Entry, Manifest};
use updhub::store::Store;

const MIB: usize = 1024 * 1024;

/// A small deterministic generator (xorshift64*): the benches need no extra dependency and
/// give the same bytes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n / 8 {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        for _ in 0..n % 8 {
            out.push(self.next() as u8);
        }
    }
}

/// Bytes that look like the zone `scripts/make-zone.py` writes (the same block kinds:
/// random, sparse, text-like, fixed-width records and repeats, 512 B..128 KiB each), so that
/// zstd -3 shrinks them by about the same factor (about 2x) and works as hard.
fn zone_like(size: usize, seed: u64) -> Vec<u8> {
    const TEXT: &[u8] =
        b"     eeeetttaaaooiinnsshhrrddllccuummwwffggyyppbbvvkjxqz0123456789.,:;=/<>-_\n";
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(size + 128 * 1024);
    let mut vocab = Vec::new();
    for _ in 0..16 * 1024 {
        vocab.push(TEXT[rng.below(TEXT.len())]);
    }
    while out.len() < size {
        let n = 512 + rng.below(128 * 1024 - 512);
        let start = out.len();
        match rng.below(100) {
            // random (already compressed content)
            0..=53 => rng.fill(&mut out, n),
            // sparse: mostly zero with a few small values
            54..=65 => {
                for _ in 0..n {
                    let r = rng.below(256);
                    out.push(if r < 200 { 0 } else { 1 << (r % 8) });
                }
            }
            // text: words from a per-file vocabulary
            66..=77 => {
                while out.len() - start < n {
                    let w = 8 + rng.below(120);
                    let at = rng.below(vocab.len() - w);
                    out.extend_from_slice(&vocab[at..at + w]);
                }
            }
            // records: a template plus a few changing bytes each
            78..=89 => {
                let width = 12 + rng.below(84);
                let mut template = Vec::new();
                rng.fill(&mut template, width);
                template.iter_mut().for_each(|b| *b &= 0x07);
                while out.len() - start < n {
                    out.extend_from_slice(&template);
                    rng.fill(&mut out, 4);
                }
            }
            // repeat an earlier stretch (inside zstd's window)
            _ if start > n => {
                let from = start - n - rng.below(start - n).min(1024 * 1024);
                out.extend_from_within(from..from + n);
            }
            _ => rng.fill(&mut out, n),
        }
    }
    out.truncate(size);
    out
}

fn hashing(c: &mut Criterion) {
    let data = zone_like(MIB, 1);
    let mut g = c.benchmark_group("blake3");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("hash 1 MiB", |b| b.iter(|| blake3::hash(black_box(&data))));
    g.finish();
}

fn compression(c: &mut Criterion) {
    let data = zone_like(MIB, 2);
    let packed = zstd::bulk::compress(&data, 3).expect("compresses");
    eprintln!(
        "zone-like 1 MiB: zstd -3 ratio {:.2} (the e2e.sh zone's: 2.03)",
        data.len() as f64 / packed.len() as f64
    );
    let mut g = c.benchmark_group("zstd-3");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut cctx = zstd::bulk::Compressor::new(3).expect("context");
    g.bench_function("compress 1 MiB", |b| {
        b.iter(|| cctx.compress(black_box(&data)).expect("compresses"))
    });
    let mut dctx = zstd::bulk::Decompressor::new().expect("context");
    g.bench_function("decompress 1 MiB", |b| {
        b.iter(|| {
            dctx.decompress(black_box(&packed), MIB)
                .expect("decompresses")
        })
    });
    g.finish();

    // How store.rs compresses (a streaming encoder fed 256 KiB writes) against one call over
    // the whole buffer, on a blob larger than zstd -3's 2 MiB window: whether streaming (whose
    // window buffer wraps around, so zstd takes its "extDict" path) costs anything.
    let big = zone_like(8 * MIB, 3);
    let mut g = c.benchmark_group("zstd-3 8 MiB");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("stream::Encoder, 256 KiB writes (as store.rs)", |b| {
        b.iter(|| {
            let mut enc =
                zstd::stream::write::Encoder::new(Vec::with_capacity(5 * MIB), 3).expect("encoder");
            for chunk in big.chunks(256 * 1024) {
                enc.write_all(chunk).expect("writes");
            }
            enc.finish().expect("finishes")
        })
    });
    let mut cctx = zstd::bulk::Compressor::new(3).expect("context");
    g.bench_function("bulk, one call", |b| {
        b.iter(|| cctx.compress(black_box(&big)).expect("compresses"))
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut data = zone_like(8 * MIB, 4);
    let mut g = c.benchmark_group("store 8 MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    // A new blob each time (a counter in its first bytes), so every put hashes, compresses,
    // writes, fsyncs and renames, as mirror does; the blob is removed untimed afterwards.
    let mut n = 0u64;
    g.bench_function("put_reader, new blob", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                data[..8].copy_from_slice(&n.to_le_bytes());
                let t = Instant::now();
                let st = store
                    .put_reader(&data[..], None, &mut |_| {})
                    .expect("stores");
                took += t.elapsed();
                std::fs::remove_file(store.blob_path(&st.id)).expect("removes");
            }
            took
        })
    });
    // The child's side: receive the stored form (zstd) in network-sized pieces, decompress
    // and hash it, append it to the partial file, verify and move it into place.
    let src_dir = tempfile::tempdir().expect("temp dir");
    let src = Store::open(src_dir.path().join("store")).expect("store");
    let st = src
        .put_reader(&data[..], None, &mut |_| {})
        .expect("stores");
    let stored = std::fs::read(src.blob_path(&st.id)).expect("reads");
    for piece in [16 * 1024, 256 * 1024] {
        let name = format!("receive + finish, {} KiB pieces", piece / 1024);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let mut inc = store
                        .receive(st.id, st.size, "bench".into())
                        .expect("receives");
                    for chunk in stored.chunks(piece) {
                        inc.write(chunk).expect("writes");
                    }
                    inc.finish().expect("verifies");
                    took += t.elapsed();
                    std::fs::remove_file(store.blob_path(&st.id)).expect("removes");
                }
                took
            })
        });
    }
    g.finish();

    // What verifying a received blob costs: as the child does it now (decompress the stored
    // form and hash the content), against hashing the stored form itself (what a manifest
    // that also listed each blob's stored hash would allow). Both over the same 8 MiB blob.
    let mut g = c.benchmark_group("child verify 8 MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("zstd decompress + blake3 of content (now)", |b| {
        b.iter(|| {
            let mut dec = zstd::stream::read::Decoder::with_buffer(&stored[..]).expect("decoder");
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = std::io::Read::read(&mut dec, &mut buf).expect("decompresses");
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            hasher.finalize()
        })
    });
    g.bench_function("blake3 of stored bytes only (what-if)", |b| {
        b.iter(|| blake3::hash(black_box(&stored)))
    });
    g.finish();
}

fn manifest(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut rng = Rng(5);
    let products = ["10-drwbases", "20-drwagent", "40-drwcsd", "70-drwnews"];
    let dirs = ["bases/x64", "agent/win/x64", "csd/webmin/js", "news/en/img"];
    // Entries in scrambled order, as a zone's file lists arrive, so `new` really sorts.
    let entries: Vec<Entry> = (0..N)
        .map(|i| {
            let k = (i * 7919) % N;
            Entry {
                product: products[k % 4].to_owned(),
                revision: "2026112401".to_owned(),
                path: format!("{}/drwtoday-{k:05}.vdb", dirs[k % 4]),
                size: 1024 + rng.below(64 * MIB) as u64,
                blake3: BlobId::of(&k.to_le_bytes()),
            }
        })
        .collect();
    let bytes = Manifest::new(entries.clone())
        .expect("valid")
        .canonical_bytes()
        .len();
    eprintln!("manifest of {N} entries: {bytes} canonical bytes");
    let mut g = c.benchmark_group("manifest");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("new + canonical_bytes, 10000 entries", |b| {
        b.iter_batched(
            || entries.clone(),
            |e| Manifest::new(e).expect("valid").canonical_bytes(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = hashing, compression, store, manifest
}
criterion_main!(benches);
