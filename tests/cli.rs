//! The binary: `serve` on embedded defaults, and the admin commands' output.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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
    // `link invite` on the serving node names the port `serve` listens on (here one the
    // kernel chose), not updhub.toml's, nor a placeholder.
    let invite = updhub(&data, &["link", "invite", "--id", "c9"]);
    let invite_text = stdout(&invite);
    child.kill().unwrap();
    child.wait().unwrap();
    let url = url.unwrap_or_else(|| panic!("no URL in {first:?}"));
    assert!(invite.status.success(), "{}", stderr(&invite));
    assert!(
        invite_text.contains(&format!("init --id c9 --parent {url} --token TOKEN"))
            && invite_text.contains(&format!("link join {url} TOKEN"))
            && !invite_text.contains("THIS-NODE"),
        "{invite_text}"
    );
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");
    let text = rest.join("\n");
    assert!(text.contains("current version 1"), "{text}");
    assert!(
        text.contains("link invite --id CHILD-ID --url https://127.0.0.1:")
            && text.contains(&format!("init --parent {url} --token TOKEN")),
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
    // The demo set-up trusts the demo issuer on purpose, in its updhub.toml, and says so.
    assert_eq!(s["demo_issuer_trusted"], true);
    let toml = std::fs::read_to_string(data.join("updhub.toml")).unwrap();
    let demo = std::fs::read_to_string(root().join("mirror/licenses/demo-issuer.pub")).unwrap();
    assert!(
        toml.contains(&format!("issuers = [\"{}\"]", demo.trim()))
            && toml.contains("not for production"),
        "{toml}"
    );
    let out = updhub(&data, &["status"]);
    assert!(
        stdout(&out).contains(
            "demo licenses: the demo issuer is trusted (licenses.issuers); not for production"
        ),
        "{}",
        stdout(&out)
    );
    let out = updhub(&data, &["license", "status"]);
    let text = stdout(&out);
    assert!(
        text.contains("DEMO-0001") && text.contains("demo licenses: the demo issuer is trusted"),
        "{text}"
    );
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

#[test]
fn a_plain_init_trusts_no_issuer_and_an_own_issuer_made_with_issuer_key_is_trusted_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let out = updhub(&data, &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(data.join("updhub.toml")).unwrap();
    assert!(toml.contains("issuers = []"), "{toml}");

    // The demo key is refused as the demo, with the fix.
    let demo_key = root().join("mirror/licenses/demo-license.json");
    let out = updhub(&data, &["license", "add", demo_key.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("demo issuer")
            && err.contains("not for production")
            && err.contains("updhub config set licenses.issuers"),
        "{err}"
    );
    // The demo issuer's private key no longer ships.
    assert!(!root().join("mirror/licenses/demo-issuer.key").exists());

    // An issuer of one's own: the private key file, the public key on stdout. A bare file
    // name is a file in the current folder.
    let key = dir.path().join("issuer.key");
    let out = Command::new(env!("CARGO_BIN_EXE_updhub"))
        .current_dir(dir.path())
        .args(["license", "issuer-key", "--out", "issuer.key"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let public = stdout(&out).trim().to_owned();
    assert_eq!(public.len(), 64, "{public}");
    assert!(
        stderr(&out).contains("config set licenses.issuers"),
        "{}",
        stderr(&out)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let before = std::fs::read(&key).unwrap();
    let out = updhub(
        &data,
        &["license", "issuer-key", "--out", key.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&key).unwrap(), before);

    // `license issue` signs with it.
    let file = dir.path().join("t1.json");
    let out = updhub(
        &data,
        &[
            "license",
            "issue",
            "--issuer-key",
            key.to_str().unwrap(),
            "--key-id",
            "TRIAL-1",
            "--holder",
            "trial",
            "--stations",
            "7",
            "--until",
            "2099-01-01",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&public), "{}", stdout(&out));
    let issued: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(issued["issuer"], public.as_str());

    // Refused until its issuer is trusted; the error gives the command that trusts it.
    let out = updhub(&data, &["license", "add", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let value = format!("[\"{public}\"]");
    assert!(
        stderr(&out).contains(&format!("updhub config set licenses.issuers '{value}'")),
        "{}",
        stderr(&out)
    );
    let out = updhub(&data, &["config", "set", "licenses.issuers", &value]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = updhub(&data, &["license", "add", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("added key TRIAL-1 (7 stations"),
        "{}",
        stdout(&out)
    );

    // No demo warning: the demo issuer is not trusted.
    let out = updhub(&data, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["demo_issuer_trusted"], false);
    let out = updhub(&data, &["status"]);
    assert!(!stdout(&out).contains("demo licenses"), "{}", stdout(&out));
}

#[test]
fn config_commands_name_an_unknown_key_list_every_shared_one_and_show_spans_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let out = updhub(
        &data,
        &["init", "--zone", root().join("mirror").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // An unknown key is named, with the keys `config set` takes (it printed "setting = 5").
    let out = updhub(&data, &["config", "set", "nonexistent.key", "5"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("nonexistent.key") && err.contains("server.report_retention"),
        "{err}"
    );
    assert!(!err.contains("setting = 5"), "{err}");
    // The help lists every key `config set` takes (it listed 17 of 19).
    let out = updhub(&data, &["config", "set", "--help"]);
    let help = stdout(&out);
    for key in updhub::config::SHARED_SETTINGS {
        assert!(help.contains(key), "{key} missing from:\n{help}");
    }

    // Spans as an admin writes them, not seconds beside milliseconds.
    let out = updhub(&data, &["config", "set", "licenses.station_ttl", "14d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = updhub(&data, &["config", "show"]);
    let text = stdout(&out);
    assert!(text.contains("licenses.station_ttl = \"14days\""), "{text}");
    assert!(text.contains("upstream.sync_interval = \"1m\""), "{text}");
    let out = updhub(&data, &["config", "show", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["in_force"]["licenses.station_ttl"], "14days");

    // A mirror from another zone on a node whose schedule reads upstream.zone is told that
    // the next scheduled round publishes over it.
    let zone2 = dir.path().join("zone2");
    let out = updhub(
        &data,
        &["mirror", "--from", root().join("mirror").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("scheduled mirror"),
        "{}",
        stderr(&out)
    );
    copy(&root().join("mirror"), &zone2);
    let out = updhub(&data, &["mirror", "--from", zone2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the scheduled mirror reads upstream.zone")
            && err.contains("upstream.mirror_interval 0s"),
        "{err}"
    );
    let out = updhub(&data, &["config", "set", "upstream.mirror_interval", "0s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = updhub(&data, &["mirror", "--from", zone2.to_str().unwrap()]);
    assert!(
        !stderr(&out).contains("scheduled mirror"),
        "{}",
        stderr(&out)
    );
}

/// Copy a folder tree.
fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
