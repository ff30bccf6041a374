//! Should a child multiplex its parallel transfers over one HTTP/2 connection instead of one
//! HTTP/1.1 connection per transfer (issue 6, defect 13)? This measures the server side of
//! that choice: N clients each fetch the same blob 4 times at once (as `upstream.parallel =
//! 4`), over 4 HTTP/1.1 connections or 1 HTTP/2 connection, from a hyper + rustls server
//! that streams the file as updhub's blob route does (256 KiB reads, TLS, one process of its
//! own). Printed: the server's peak memory (VmHWM) above its idle peak, per transfer, the
//! wall time and the aggregate throughput.
//!
//! Run: `cargo bench --bench h1_vs_h2 -- N BLOB_MIB` (default 200 clients, 4 MiB), both
//! protocols, each in a fresh server process. Figures: benches/README.md. Without a
//! `cargo bench` argument filter it runs with the defaults.

use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncBufReadExt;

/// Transfers per client at once, as a child's default `upstream.parallel`.
const PARALLEL: usize = 4;
/// The read size of updhub's blob route (`store::CHUNK`), unless `H1H2_CHUNK_KIB` says
/// otherwise (to see what the chunk costs in memory and speed).
fn chunk() -> usize {
    std::env::var("H1H2_CHUNK_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(256 * 1024, |k| k * 1024)
}

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The server process: serves `file` to anyone on a random port, prints the port, then its
/// peak memory each time a line arrives on stdin; exits when stdin closes.
fn serve(file: PathBuf, cert: PathBuf, key: PathBuf) {
    use rustls::pki_types::pem::PemObject;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let certs = vec![rustls::pki_types::CertificateDer::from_pem_file(&cert).expect("cert")];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        std::io::stdout().flush().expect("stdout");
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                println!("{}", vm_hwm_kib());
            }
            std::process::exit(0);
        });
        let file = Arc::new(file);
        loop {
            let (tcp, _) = listener.accept().await.expect("accept");
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let file = file.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |_req| {
                    let file = file.clone();
                    async move {
                        let f = tokio::fs::File::open(&*file).await.expect("open");
                        let len = f.metadata().await.expect("metadata").len();
                        let stream = tokio_util::io::ReaderStream::with_capacity(f, chunk())
                            .map_ok(Frame::data);
                        let body: BoxBody<Bytes, std::io::Error> =
                            BodyExt::boxed(StreamBody::new(stream));
                        let mut r = hyper::Response::new(body);
                        r.headers_mut()
                            .insert(hyper::header::CONTENT_LENGTH, len.into());
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
}

/// One round: `n` clients, `PARALLEL` transfers each, over h1 or h2. Returns (server peak
/// above idle in KiB, seconds, bytes).
fn round(h2: bool, n: usize, dir: &Path, file: &Path, ca: &[u8]) -> (u64, f64, u64) {
    let exe = std::env::current_exe().expect("exe");
    let mut server = std::process::Command::new(exe)
        .arg("__serve")
        .arg(file)
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("server process");
    let mut stdin = server.stdin.take().expect("stdin");
    let mut out = std::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut read_line = |out: &mut std::io::BufReader<_>| -> String {
        line.clear();
        std::io::BufRead::read_line(out, &mut line).expect("server line");
        line.trim().to_owned()
    };
    let port: u16 = read_line(&mut out).parse().expect("port");
    writeln!(stdin).expect("ask");
    let idle: u64 = read_line(&mut out).parse().expect("hwm");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("https://localhost:{port}/blob");
    let started = Instant::now();
    let bytes = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let b = reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("ca"));
            let client = if h2 {
                b.http2_prior_knowledge()
            } else {
                b.http1_only()
            }
            .build()
            .expect("client");
            for _ in 0..PARALLEL {
                let client = client.clone();
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let mut r = client.get(url).send().await.expect("get");
                    assert!(r.status().is_success());
                    let mut got = 0u64;
                    while let Some(c) = r.chunk().await.expect("body") {
                        got += c.len() as u64;
                    }
                    got
                }));
            }
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        total
    });
    let secs = started.elapsed().as_secs_f64();
    writeln!(stdin).expect("ask");
    let peak: u64 = read_line(&mut out).parse().expect("hwm");
    drop(stdin);
    let _ = server.wait();
    (peak.saturating_sub(idle), secs, bytes)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("__serve") {
        serve(
            PathBuf::from(&args[1]),
            PathBuf::from(&args[2]),
            PathBuf::from(&args[3]),
        );
        return;
    }
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mib: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).expect("write");
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).expect("write");
    let file = dir.path().join("blob");
    let mut data = vec![0u8; mib << 20];
    rand::Rng::fill(&mut rand::thread_rng(), &mut data[..]);
    std::fs::write(&file, &data).expect("write");
    println!("read chunk {} KiB", chunk() / 1024);
    println!("clients\ttransfers\tprotocol\tconnections\tserver_peak_MiB\tKiB_per_transfer\tseconds\tMiB/s");
    for h2 in [false, true] {
        let (peak, secs, bytes) = round(h2, n, dir.path(), &file, cert.cert.pem().as_bytes());
        assert_eq!(
            bytes,
            (n * PARALLEL * (mib << 20)) as u64,
            "every byte arrived"
        );
        println!(
            "{n}\t{}\t{}\t{}\t{:.1}\t{:.0}\t{secs:.2}\t{:.0}",
            n * PARALLEL,
            if h2 { "h2" } else { "http/1.1" },
            if h2 { n } else { n * PARALLEL },
            peak as f64 / 1024.0,
            peak as f64 / (n * PARALLEL) as f64,
            bytes as f64 / secs / (1 << 20) as f64,
        );
    }
}
