//! Many children syncing from one parent at the same moment (issue 6, defect 13): the
//! in-process half of `benches/children.sh`, which starts the parent (`updhub serve`, its own
//! process, so its memory is measured alone) and nginx for comparison.
//!
//! Usage: `children PARENT_URL KEYS_DIR N WORK_DIR`: makes N children in WORK_DIR with the
//! default configuration (keys from KEYS_DIR), runs one `sync_once` of each at the same time,
//! and prints one tab-separated line: ok, failed, wall seconds, stored bytes received,
//! distinct roots, first error. Run without arguments (as `cargo bench` does) it does nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use updhub::hub::{Hub, InitOptions};
use updhub::id::ServerId;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [url, keys, n, work] = args.as_slice() else {
        eprintln!("children: run by benches/children.sh (PARENT_URL KEYS_DIR N WORK_DIR)");
        return;
    };
    let n: usize = n.parse().expect("N is a number");
    let work = PathBuf::from(work);
    let children: Vec<Arc<Hub>> = (0..n)
        .map(|i| {
            let data = work.join(format!("c{i:03}"));
            Hub::init(
                &data,
                InitOptions {
                    keys_from: Some(PathBuf::from(keys)),
                    id: Some(ServerId::new(&format!("child-{i:03}")).expect("valid id")),
                    name: None,
                    parent: None,
                    zone: None,
                    database: None,
                    issuers: Vec::new(),
                },
            )
            .expect("child init");
            Arc::new(Hub::open(&data).expect("child open"))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let results = rt.block_on(async {
        let tasks: Vec<_> = children
            .iter()
            .map(|c| {
                let c = c.clone();
                let url = url.clone();
                tokio::spawn(async move { updhub::child::sync_once(&c, &url).await })
            })
            .collect();
        futures_util::future::join_all(tasks).await
    });
    let wall = started.elapsed().as_secs_f64();
    let mut ok = 0;
    let mut bytes = 0u64;
    let mut roots = std::collections::BTreeSet::new();
    let mut first_error = String::from("-");
    for r in results {
        match r.expect("sync task") {
            Ok(rep) => {
                ok += 1;
                bytes += rep.bytes;
                roots.insert(rep.root.to_string());
            }
            Err(e) if first_error == "-" => first_error = e.to_string(),
            Err(_) => {}
        }
    }
    println!(
        "{ok}\t{}\t{wall:.2}\t{bytes}\t{}\t{first_error}",
        n - ok,
        roots.len()
    );
}
