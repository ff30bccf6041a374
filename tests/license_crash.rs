//! The donor is killed (SIGKILL) while grants are being made and fetched: after a restart
//! nothing is granted twice and nothing is lost.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use updhub::child::sync_once;
use updhub::hub::{add_license_file, Hub};

fn bin() -> Command {
    updhub_bin()
}

fn donate_cmd(data: &Path, i: usize) -> Command {
    let mut c = bin();
    c.arg("--data").arg(data).args([
        "license",
        "donate",
        "--to",
        "child",
        "--count",
        "1",
        "--for",
        "1d",
        "--request-id",
        &format!("req-{i}"),
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_donor_mid_grant_neither_loses_nor_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let zone = sample_zone();
    let donor = node(
        dir.path(),
        "donor",
        NodeOpts {
            zone: Some(&zone),
            issuers: vec![issuer_hex(&iss)],
            ..Default::default()
        },
    );
    mirror_and_publish(&donor).await;
    add_license_file(&donor, &key_file(dir.path(), &iss, "K1", 50, 365))
        .await
        .unwrap();
    let srv = start(donor.clone()).await;
    let child = child_of(dir.path(), "child", &donor, None);
    sync_once(&child, &srv.url).await.unwrap();
    srv.stop().await;
    let data = donor.data.clone();
    drop(donor);

    // Donations killed at every stage of their run, then retried with the same request ids.
    const N: usize = 12;
    for i in 0..N {
        let mut p = donate_cmd(&data, i).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(3 * i as u64));
        let _ = p.kill();
        p.wait().unwrap();
    }
    for i in 0..N {
        let st = donate_cmd(&data, i).status().unwrap();
        assert!(st.success(), "retry of req-{i} failed");
    }
    {
        let hub = Hub::open(&data).unwrap();
        let k = source(&hub, "K1");
        assert_eq!(
            k.donated, N as u64,
            "one grant per request, however often it was tried"
        );
        assert_eq!(
            hub.ledger
                .grants(Duration::from_secs(1))
                .unwrap()
                .outgoing
                .len(),
            N
        );
        let created = hub
            .ledger
            .log()
            .unwrap()
            .iter()
            .filter(|l| l.event == "grant_created")
            .count();
        assert_eq!(created, N);
        assert_conserved(&hub);
    }

    // The receiver fetches the grants from a donor process that is killed and restarted.
    let (mut p, url) = spawn_serve(&data, Stdio::null());
    sync_once(&child, &url).await.unwrap();
    let got = child
        .ledger
        .grants(Duration::from_secs(1))
        .unwrap()
        .incoming;
    assert_eq!(got.len(), N);
    p.kill().unwrap();
    p.wait().unwrap();
    assert!(sync_once(&child, &url).await.is_err(), "the donor is down");
    assert_eq!(
        child
            .ledger
            .grants(Duration::from_secs(1))
            .unwrap()
            .incoming
            .len(),
        N,
        "kept while the donor is down"
    );
    let (mut p, url) = spawn_serve(&data, Stdio::null());
    sync_once(&child, &url).await.unwrap();
    let got = child
        .ledger
        .grants(Duration::from_secs(1))
        .unwrap()
        .incoming;
    assert_eq!(got.len(), N, "nothing received twice");
    assert_eq!(got.iter().map(|g| g.total).sum::<u64>(), N as u64);
    p.kill().unwrap();
    p.wait().unwrap();
    let hub = Hub::open(&data).unwrap();
    assert_eq!(source(&hub, "K1").donated, N as u64);
}
