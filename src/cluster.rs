//! The cluster's consistency check (reference point 1): what must be the same on every
//! member (the updhub version, the keys and certificate, the server name, the repository
//! root, the `[same]` settings), compared over the membership rows the members record in
//! their shared database.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::Member;

/// One thing that differs where it must be the same.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// What differs: "updhub version", "setting sync_interval", ...
    pub what: String,
    /// Each live member's value.
    pub values: BTreeMap<String, String>,
    /// How to fix it.
    pub fix: String,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Members that recorded themselves recently.
    pub alive: Vec<String>,
    /// Members not heard from within the liveness window (left out of the comparison).
    pub gone: Vec<String>,
    /// What differs; empty when the cluster is consistent.
    pub findings: Vec<Finding>,
    /// Live members whose last record predates the cluster's latest settings change: they
    /// apply it before they record themselves again (within [`crate::hub::MEMBER_EVERY`]),
    /// so their `[same]` settings are left out of this comparison rather than called
    /// different.
    pub settings_pending: Vec<String>,
}

impl Check {
    /// Whether nothing differs.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Compare the members heard from within `alive` of `now`; `settings_changed` is when the
/// cluster's shared settings last changed (`config set`), if ever.
pub fn check(
    members: &[Member],
    now: DateTime<Utc>,
    alive: std::time::Duration,
    settings_changed: Option<DateTime<Utc>>,
) -> Check {
    let alive = chrono::Duration::from_std(alive).unwrap_or(chrono::Duration::seconds(30));
    let (live, gone): (Vec<&Member>, Vec<&Member>) =
        members.iter().partition(|m| m.last_seen > now - alive);
    let mut findings = Vec::new();
    // A finding when the members' values are not all equal.
    let mut compare = |what: String, values: BTreeMap<String, String>, fix: String| {
        let mut distinct: Vec<&String> = values.values().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > 1 {
            findings.push(Finding { what, values, fix });
        }
    };
    let mut same = |what: &str, value: &dyn Fn(&Member) -> String, fix: &str| {
        let values = live.iter().map(|m| (m.node_id.clone(), value(m))).collect();
        compare(what.to_owned(), values, fix.to_owned());
    };
    same(
        "updhub version",
        &|m| m.updhub_version.clone(),
        "run the same updhub version on every node: upgrade the older ones one at a time (README: upgrading a cluster)",
    );
    same(
        "database schema",
        &|m| m.schema_version.to_string(),
        "run the same updhub version on every node, then `updhub db upgrade` once",
    );
    same(
        "server name",
        &|m| m.server_name.clone(),
        "set server.name to the cluster's DNS name, the same on every node, and restart those nodes",
    );
    same(
        "publisher key (fingerprint)",
        &|m| m.key_fp.clone(),
        "give every node the cluster's keys: `updhub keys export` on a good node, `updhub init --keys-from` for the others",
    );
    same(
        "cluster CA certificate (fingerprint)",
        &|m| m.ca_fp.clone(),
        "give every node the cluster's keys: `updhub keys export` on a good node, `updhub init --keys-from` for the others; after `updhub keys rotate-ca`, the members still on the old CA need the new keys before its overlap ends (`updhub status` on the rotated node shows when)",
    );
    same(
        "repository root",
        &|m| m.active_root.clone().unwrap_or_else(|| "(none)".into()),
        "the members serve different versions: let the lagging ones sync, or publish again on the parent",
    );
    // A member refreshes the cluster's settings just before it records itself, so a record
    // older than the latest change shows the settings before it, not a difference.
    let (current, pending): (Vec<&Member>, Vec<&Member>) = live
        .iter()
        .copied()
        .partition(|m| settings_changed.is_none_or(|at| m.last_seen >= at));
    // Setting by setting, so the finding names the key to fix.
    let parsed: Vec<(&Member, BTreeMap<String, serde_json::Value>)> = current
        .iter()
        .map(|m| (*m, serde_json::from_str(&m.settings).unwrap_or_default()))
        .collect();
    let mut keys: Vec<&String> = parsed.iter().flat_map(|(_, s)| s.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let values: BTreeMap<String, String> = parsed
            .iter()
            .map(|(m, s)| {
                (
                    m.node_id.clone(),
                    s.get(k).map_or_else(
                        || "(unset)".into(),
                        |v| crate::config::shown_same_setting(k, v).to_string(),
                    ),
                )
            })
            .collect();
        let fix = if crate::config::SHARED_SETTINGS.contains(&k.as_str()) {
            format!("set it for the whole cluster: `updhub config set {k} VALUE` on any node")
        } else {
            format!(
                "set {k} to the same value in updhub.toml on every node, and restart those nodes"
            )
        };
        compare(format!("setting {k}"), values, fix);
    }
    Check {
        alive: live.iter().map(|m| m.node_id.clone()).collect(),
        gone: gone.iter().map(|m| m.node_id.clone()).collect(),
        findings,
        settings_pending: pending.iter().map(|m| m.node_id.clone()).collect(),
    }
}

/// This running process as the membership knows it: a random id made when the node is
/// opened (two copies of one data folder, started even in the same second, are told
/// apart by it), and when it first recorded itself, by the database's clock (the copy that
/// started later yields; see [`crate::hub::Hub::record_member`]).
#[derive(Debug)]
pub struct Process {
    /// The id, 32 hex digits.
    pub id: String,
    started: std::sync::OnceLock<DateTime<Utc>>,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            id: hex::encode(rand::random::<[u8; 16]>()),
            started: std::sync::OnceLock::new(),
        }
    }
}

impl Process {
    /// When this process first recorded itself: `now` (the database's time) on the first
    /// call, the same ever after.
    pub fn started(
        &self,
        now: impl FnOnce() -> Result<DateTime<Utc>, crate::db::DbError>,
    ) -> Result<DateTime<Utc>, crate::db::DbError> {
        if let Some(t) = self.started.get() {
            return Ok(*t);
        }
        let t = now()?;
        Ok(*self.started.get_or_init(|| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member {
            node_id: id.into(),
            instance: format!("i-{id}"),
            process: format!("p-{id}"),
            updhub_version: "1.0.0".into(),
            schema_version: 4,
            server_name: "hub.example".into(),
            key_fp: "k".into(),
            ca_fp: "c".into(),
            active_root: Some("r".into()),
            settings: r#"{"licenses.station_ttl":60,"server.name":"hub.example"}"#.into(),
            settings_digest: "d".into(),
            listen: "127.0.0.1:1".into(),
            started: Utc::now(),
            last_seen: Utc::now(),
        }
    }

    const ALIVE: std::time::Duration = std::time::Duration::from_secs(20);

    #[test]
    fn equal_members_pass_and_each_difference_is_named_with_its_fix() {
        let now = Utc::now();
        let a = member("a");
        let b = member("b");
        assert!(check(&[a.clone(), b.clone()], now, ALIVE, None).ok());
        let mut c = member("c");
        c.settings = r#"{"licenses.station_ttl":30,"server.name":"hub.example"}"#.into();
        c.updhub_version = "1.1.0".into();
        let r = check(&[a.clone(), b, c], now, ALIVE, None);
        let what: Vec<&str> = r.findings.iter().map(|f| f.what.as_str()).collect();
        assert_eq!(what, ["updhub version", "setting licenses.station_ttl"]);
        // Spans as an admin writes them, not in the seconds the record keeps.
        assert_eq!(r.findings[1].values["c"], "\"30s\"");
        assert_eq!(r.findings[1].values["a"], "\"1m\"");
        assert!(r.findings[1]
            .fix
            .contains("updhub config set licenses.station_ttl VALUE"));
    }

    #[test]
    fn status_names_each_version_of_a_mixed_cluster_and_ignores_gone_members() {
        let live = |m: Member, alive: bool| crate::hub::MemberStatus { member: m, alive };
        let mut c = member("c");
        c.updhub_version = "1.1.0".into();
        let mut gone = member("gone");
        gone.updhub_version = "0.9.0".into();
        let same = [
            live(member("a"), true),
            live(member("b"), true),
            live(gone, false),
        ];
        assert_eq!(crate::hub::mixed_versions(&same), None);
        let mixed = [
            live(member("a"), true),
            live(member("b"), true),
            live(c, true),
        ];
        let w = crate::hub::mixed_versions(&mixed).unwrap();
        assert!(w.contains("updhub 1.0.0 on a, b; updhub 1.1.0 on c"), "{w}");
    }

    #[test]
    fn members_not_heard_from_are_left_out_and_listed_as_gone() {
        let now = Utc::now();
        let mut old = member("old");
        old.last_seen = now - chrono::Duration::minutes(5);
        old.key_fp = "other".into();
        let r = check(&[member("a"), old], now, ALIVE, None);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.gone, ["old"]);
    }

    #[test]
    fn a_member_that_has_not_recorded_itself_since_a_config_set_is_pending_not_different() {
        // `config set` at `at`: a has recorded itself since (with the new value), b not yet
        // (its record still shows the value before the change).
        let now = Utc::now();
        let at = now - chrono::Duration::seconds(1);
        let mut a = member("a");
        a.settings = r#"{"licenses.station_ttl":30,"server.name":"hub.example"}"#.into();
        let mut b = member("b");
        b.last_seen = at - chrono::Duration::seconds(3);
        let r = check(&[a.clone(), b.clone()], now, ALIVE, Some(at));
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.settings_pending, ["b"]);
        // Once b records itself, with the old value still, it differs.
        b.last_seen = now;
        let r = check(&[a, b], now, ALIVE, Some(at));
        assert_eq!(r.findings.len(), 1, "{r:?}");
        assert!(r.settings_pending.is_empty());
    }
}
