//! The binary: `serve` on embedded defaults, and the admin commands' output.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn updhub(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_updhub"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn serve_on_embedded_defaults_sets_up_and_prints_how_to_connect() {
    // The README's zero-config run: no --data, so the default ./updhub-data is set up.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("updhub-data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_updhub"))
        .current_dir(dir.path())
        .env_remove("UPDHUB_DATA")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--station-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("https://127.0.0.1:"))
        .map(str::to_owned);
    let mut rest = Vec::new();
    for _ in 0..5 {
        rest.push(lines.next().unwrap().unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let url = url.unwrap_or_else(|| panic!("no URL in {first:?}"));
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");
    let text = rest.join("\n");
    assert!(text.contains("current version 1"), "{text}");
    assert!(
        text.contains("init --keys-from") && text.contains(&url),
        "{text}"
    );

    let out = updhub(&data, &["versions", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["number"], 1);
    assert_eq!(
        v[0]["files"], 92,
        "the sample zone's current revisions hold 92 files"
    );
    let out = updhub(&data, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["role"], "parent");
    assert_eq!(s["current"]["root"], v[0]["root"]);
    let out = updhub(&data, &["sync", "--once"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--parent"));
}

#[test]
fn the_container_build_context_leaves_out_build_output_and_data_folders() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [".containerignore", ".dockerignore"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        for needed in ["target/", "updhub-data/", "**/updhub-data/"] {
            assert!(rules.contains(&needed), "{file} lacks {needed}");
        }
    }
    // The image runs `serve` on the default data folder, the only one it may set up itself.
    let cf = std::fs::read_to_string(root.join("Containerfile")).unwrap();
    assert!(
        !cf.lines()
            .any(|l| l.starts_with("ENV") && l.contains("UPDHUB_DATA")),
        "an explicit data folder is never set up by serve"
    );
}
