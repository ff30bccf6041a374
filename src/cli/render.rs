//! Tables: what `status`, `versions`, `stations` and `license ...` print without --json.

use super::{out, Result};
use crate::db::VersionRow;
use crate::license::ledger::{GrantsView, LogRow, SourceStatus, StationRow};

/// `status`: this node, its version, its parent and its children.
pub(super) fn print_status(s: &crate::hub::Status) -> Result<()> {
    out!("server {} ({})", s.server_id, s.role);
    match &s.current {
        Some(p) => out!(
            "current version {} root {} expires {}",
            p.number,
            p.root,
            p.expires
        ),
        None => out!("no current version"),
    }
    if let Some(c) = &s.cluster_version {
        if s.current.as_ref().map(|p| p.root) != Some(c.root) {
            out!(
                "the cluster published version {} (root {}): this node fetches it from a member that holds it, and serves it once it holds all of it",
                c.number,
                c.root
            );
        }
    }
    // On a top parent the rollout below says it all.
    if let Some(st) = s.staged.as_ref().filter(|_| s.rollout.is_none()) {
        out!(
            "staged version {} root {}: held here beside the current one, switched to when {}",
            st.number,
            st.root,
            if s.role == "child" {
                "the parent activates it"
            } else {
                "it is activated"
            }
        );
    }
    if let Some(r) = &s.rollout {
        rollout(r)?;
    }
    if let Some(w) = &s.warning {
        out!("WARNING: {w}");
    }
    if let Some(d) = &s.store_damage {
        out!("STORE: {d}");
    }
    if let Some(m) = s.mirrored.as_ref().filter(|_| s.role == "parent") {
        out!(
            "upstream {}: last read {}, content last changed {}",
            m.zone,
            m.checked_at.format("%Y-%m-%d %H:%M:%S UTC"),
            m.at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    if let Some(w) = &s.upstream_warning {
        out!("UPSTREAM: {w}");
    }
    if let Some((c, p)) = &s.canary {
        out!("ROLLOUT: {}", super::rollout::describe(c, p));
    }
    if s.demo_issuer_trusted {
        out!("{DEMO_LICENSES}");
    }
    if s.role == "parent" {
        match &s.publisher {
            Some(p) if *p == s.server_id => out!("publisher: this node ({p})"),
            Some(p) => out!("publisher: {p} (this node is a standby; `updhub cluster promote` makes it the publisher)"),
            None => out!("publisher: none live (no member serves, or its lease expired: a serving member takes it within server.lease_ttl)"),
        }
    }
    if s.parents.len() > 1 {
        let now = s.sync.as_ref().and_then(|sy| {
            s.parents
                .iter()
                .position(|p| *p == sy.parent)
                .map(|i| (i, &sy.parent))
        });
        match now {
            Some((i, p)) => out!(
                "parents (upstream.parents, tried in order): {}; syncing from {p} ({} of {})",
                s.parents.join(", "),
                i + 1,
                s.parents.len()
            ),
            None => out!(
                "parents (upstream.parents, tried in order): {}; no sync yet",
                s.parents.join(", ")
            ),
        }
    }
    if let Some(sy) = &s.sync {
        out!(
            "parent {}: last try {}, last success {}{}",
            sy.parent,
            sy.last_try,
            sy.last_ok
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".into()),
            sy.last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(u) = &s.upstream_trust {
        out!("upstream: {u}");
    }
    if let Some(r) = &s.ca_rotation {
        if r.ended {
            out!(
                "CA rotation {} -> {}: its overlap ended at {}; certificates of the old CA are refused; `updhub keys rotate-ca --finish` tidies up",
                &r.old_ca[..16],
                &r.new_ca[..16],
                r.ends
            );
        } else {
            out!(
                "CA ROTATION in progress: {} -> {}; certificates of the old CA are accepted until {}",
                &r.old_ca[..16],
                &r.new_ca[..16],
                r.ends
            );
        }
        if !r.links_on_old_ca.is_empty() {
            out!(
                "  links still on the old CA (they renew at their next sync; cut off when the overlap ends): {}",
                r.links_on_old_ca.join(", ")
            );
        }
        if !r.members_on_other_ca.is_empty() {
            out!(
                "  MEMBERS WITHOUT THIS NODE'S CA (they need the new keys: `updhub keys export --to DIR` here, `updhub init --keys-from DIR` there): {}",
                r.members_on_other_ca.join(", ")
            );
        }
    }
    for l in s.links.iter().filter(|l| l.removed_at.is_none()) {
        out!("link {}", link(l));
    }
    for m in &s.license_mismatches {
        out!("LICENSE MISMATCH: {m}; see `updhub license grants`");
    }
    for f in &s.license_flags {
        out!(
            "LICENSE GRANT FLAGGED: {} from {} (at {}) no longer counts here: {}",
            f.grant_id.escape_debug(),
            f.donor.escape_debug(),
            f.flagged_at,
            f.reason.escape_debug()
        );
    }
    if let Some(g) = &s.last_gc {
        out!(
            "last gc {}: freed {} bytes ({} blobs){}",
            g.at,
            g.bytes,
            g.blobs,
            if g.dropped_versions.is_empty() {
                String::new()
            } else {
                format!(
                    ", the content of version(s) {}",
                    numbers(&g.dropped_versions)
                )
            }
        );
    }
    out!("config digest {}", s.config_digest);
    out!("database {} (cluster {})", s.database, s.cluster_id);
    for m in &s.members {
        let m_ = &m.member;
        out!(
            "member {}: updhub {}, reached at {}, root {}, last seen {}{}",
            m_.node_id,
            m_.updhub_version,
            m_.listen,
            m_.active_root.as_deref().unwrap_or("-"),
            m_.last_seen,
            if m.alive { "" } else { " (GONE)" }
        );
    }
    for a in &s.announcers {
        let counts: crate::announce::Counts =
            serde_json::from_value(a.counters.clone()).unwrap_or_default();
        out!(
            "cluster protocol on {} ({} at {}, written {}): {counts}",
            a.node_id,
            a.protocol,
            a.addr,
            chrono::DateTime::from_timestamp_millis(a.updated_ms)
                .map_or_else(|| "-".to_owned(), |t| t.to_string())
        );
    }
    if let Some(w) = &s.mixed_versions {
        out!("MIXED: {w}");
    }
    for c in &s.children {
        out!(
            "child {}: version {} {}{} reported {}",
            c.report.child_id,
            c.report
                .number
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            match (c.in_sync, c.test_group) {
                (true, _) => "in sync",
                (false, true) => "AHEAD (the test group's rollout)",
                (false, false) => "BEHIND",
            },
            if c.config_matches {
                ""
            } else {
                ", CONFIG DIFFERS"
            },
            c.report.reported_at
        );
    }
    Ok(())
}

/// A staged version waiting for activation: who staged it, who has not and why.
pub(super) fn rollout(r: &crate::switch::Rollout) -> Result<()> {
    out!(
        "STAGED version {} root {} (staged {}): {}",
        r.staged.number,
        r.staged.root,
        r.staged_at,
        r.why
    );
    not_staged(&r.not_staged)
}

/// The children that have not staged a version, each with its reason.
pub(super) fn not_staged(v: &[crate::switch::NotStaged]) -> Result<()> {
    for n in v {
        out!(
            "  NOT STAGED by child {} (current version {}): {}",
            n.child_id,
            n.active.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            n.reason
        );
    }
    Ok(())
}

/// Version numbers as "1, 2, 3".
pub(super) fn numbers(n: &[u64]) -> String {
    n.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// `versions`: one row per version, the current one marked, and those whose content garbage
/// collection removed (`held` false).
pub(super) fn versions(
    v: &[VersionRow],
    current: Option<u64>,
    held: impl Fn(&VersionRow) -> bool,
) -> Result<()> {
    out!(
        "{:>6}  {:<64}  {:>6}  {:>12}  created",
        "number",
        "root",
        "files",
        "bytes"
    );
    for r in v {
        let mark = if Some(r.number) == current {
            "  (current)"
        } else if !held(r) {
            "  (collected)"
        } else {
            ""
        };
        out!(
            "{:>6}  {}  {:>6}  {:>12}  {}{mark}",
            r.number,
            r.root,
            r.files,
            r.bytes,
            r.created
        );
    }
    Ok(())
}

/// `gc`: the keep set with its reasons, then what was (or would be) freed.
pub(super) fn gc(r: &crate::gc::Report, s: &crate::config::StoreSection) -> Result<()> {
    out!(
        "keeping {} root(s), {} blobs (store.keep_versions = {}, store.gc_grace = {}):",
        r.kept.len(),
        r.needed,
        s.keep_versions,
        humantime::format_duration(s.gc_grace)
    );
    for k in &r.kept {
        out!(
            "  {:<14} root {}  {}  {}",
            if k.numbers.is_empty() {
                "(unpublished)".to_owned()
            } else {
                format!("version {}", numbers(&k.numbers))
            },
            k.root,
            match k.blobs {
                0 => "not held here".to_owned(),
                n => format!("{n} blobs"),
            },
            k.reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let versions = if r.dropped_versions.is_empty() {
        "no version's content".to_owned()
    } else {
        format!("the content of version(s) {}", numbers(&r.dropped_versions))
    };
    if r.dry_run {
        out!(
            "would free {} bytes: {} blobs, {versions}; {} unneeded blob(s) younger than gc_grace would stay (dry run: nothing removed)",
            r.bytes,
            r.blobs,
            r.young
        );
    } else {
        out!(
            "freed {} bytes: {} blobs, {versions}, and {} partial file(s) of interrupted transfers ({} bytes); {} unneeded blob(s) younger than gc_grace stay; {:.2} s",
            r.bytes + r.partial_bytes,
            r.blobs,
            r.partial_files,
            r.partial_bytes,
            r.young,
            r.seconds
        );
    }
    Ok(())
}

/// `stations`: one row per registered station.
pub(super) fn stations(rows: &[StationRow]) -> Result<()> {
    out!(
        "{:<24} {:<20} {:<25} last seen",
        "station",
        "license",
        "registered"
    );
    for r in rows {
        out!(
            "{:<24} {:<20} {:<25} {}",
            r.station_id,
            r.source_id,
            r.registered.to_string(),
            r.last_seen
        );
    }
    Ok(())
}

/// `license grants`: outgoing, then incoming.
pub(super) fn grants(g: &GrantsView) -> Result<()> {
    out!("outgoing:");
    for o in &g.outgoing {
        out!(
            "  {} {} licenses from {} to {} until {} [{}]{}",
            o.grant_id,
            o.count,
            o.source_id,
            o.receiver,
            o.not_after,
            o.status,
            o.reported
                .as_ref()
                .map(|r| format!("; the receiver counts {} of {}", r.counted, r.count))
                .unwrap_or_default()
        );
    }
    for m in &g.mismatches {
        out!("  MISMATCH: {m}");
    }
    out!("incoming:");
    for i in &g.incoming {
        out!(
            "  {} {} licenses from {} until {} (counted until {}) [{}]{}",
            i.source_id,
            i.total,
            i.holder,
            i.not_after,
            i.usable_until,
            i.status,
            if i.expiring_soon {
                " EXPIRING SOON"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// `license status`: one row per key or received grant.
/// The line `status` and `license status` print while the demo issuer is trusted.
pub(super) const DEMO_LICENSES: &str =
    "demo licenses: the demo issuer is trusted (licenses.issuers); not for production";

pub(super) fn license_status(s: &[SourceStatus], demo_issuer_trusted: bool) -> Result<()> {
    out!(
        "{:<20} {:<5} {:>6} {:>6} {:>7} {:>6}  until",
        "license",
        "kind",
        "total",
        "used",
        "donated",
        "free"
    );
    for r in s {
        out!(
            "{:<20} {:<5} {:>6} {:>6} {:>7} {:>6}  {} [{}]{}",
            r.source_id,
            r.kind,
            r.total,
            r.used,
            r.donated,
            r.free,
            r.usable_until,
            r.status,
            if r.expiring_soon {
                " EXPIRING SOON"
            } else {
                ""
            }
        );
    }
    if demo_issuer_trusted {
        out!("{DEMO_LICENSES}");
    }
    Ok(())
}

/// `license log`: the audit trail, oldest first.
pub(super) fn license_log(l: &[LogRow]) -> Result<()> {
    for r in l {
        out!(
            "{:>6} {} {:<24} {:<20} {}",
            r.seq,
            r.at,
            r.event,
            r.subject,
            r.details
        );
    }
    Ok(())
}

/// `cluster check`: the members compared, each finding with every member's value and the fix.
pub(super) fn cluster_check(c: &crate::cluster::Check) -> Result<()> {
    out!(
        "{} live member(s): {}",
        c.alive.len(),
        if c.alive.is_empty() {
            "none (members record themselves while they serve)".to_owned()
        } else {
            c.alive.join(", ")
        }
    );
    if !c.gone.is_empty() {
        out!("not heard from lately (left out): {}", c.gone.join(", "));
    }
    if !c.settings_pending.is_empty() {
        out!(
            "settings not compared yet on {}: the cluster's settings changed after their last record; they apply the change before the next one (within {} s)",
            c.settings_pending.join(", "),
            crate::hub::MEMBER_EVERY.as_secs()
        );
    }
    if c.ok() {
        out!("ok: every live member has the same version, keys, name, root and settings");
    }
    for f in &c.findings {
        out!("DIFFERS: {}", f.what);
        for (node, v) in &f.values {
            out!("  {node}: {v}");
        }
        out!("  fix: {}", f.fix);
    }
    Ok(())
}

/// `cluster tasks`: each task once a period on one member, its lease and its runs.
pub(super) fn cluster_tasks(tasks: &[crate::leases::TaskStatus]) -> Result<()> {
    if tasks.is_empty() {
        out!("no task has run yet: a serving node takes its tasks' leases as it starts");
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("never".to_owned(), |t| {
            t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
        })
    };
    for t in tasks {
        // The publisher is a role, not a task with runs: who holds it is all there is.
        let role = t.task == crate::leases::PUBLISHER;
        if role {
            out!("publisher (the role: scheduled mirror and publish, re-signing, activation; `updhub cluster promote` moves it)");
        } else {
            out!("{}: every {} s", t.task, t.period_secs);
        }
        match (&t.holder, t.held) {
            (Some(h), true) => out!("  holder: {h}, lease until {}", when(t.lease_expires)),
            (Some(h), false) => out!(
                "  holder: none live ({h}'s lease expired at {}: the next member to look takes it)",
                when(t.lease_expires)
            ),
            (None, _) => out!("  holder: none (released: the next member to look takes it)"),
        }
        if role {
            continue;
        }
        let result = match (t.last_ok, &t.last_result) {
            (Some(true), Some(r)) => format!("ok: {r}"),
            (Some(false), Some(r)) => format!("FAILED: {r}"),
            _ => "-".to_owned(),
        };
        out!(
            "  last run: {} on {} ({} run(s) recorded): {result}",
            when(t.last_run),
            t.last_node.as_deref().unwrap_or("-"),
            t.runs
        );
        out!("  next run: {}", when(t.next_run));
    }
    Ok(())
}

/// `cluster tasks --history N`: the last recorded runs, newest first.
pub(super) fn task_runs(runs: &[crate::leases::TaskRun]) -> Result<()> {
    out!("history (newest first, one run a period at most):");
    if runs.is_empty() {
        out!("  no run recorded");
    }
    let when = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map_or(ms.to_string(), |t| t.format("%H:%M:%S%.3f").to_string())
    };
    for r in runs {
        out!(
            "  {} period due {} ran on {} (ended {}): {}{}",
            r.task,
            when(r.due_ms),
            r.node,
            when(r.at_ms),
            if r.ok { "ok: " } else { "FAILED: " },
            r.result
        );
    }
    Ok(())
}

/// `config show`: what the cluster set, then every [same] setting in force on this node.
pub(super) fn shared_settings(
    set: &[crate::db::SharedSetting],
    in_force: &serde_json::Value,
) -> Result<()> {
    if set.is_empty() {
        out!("the cluster set nothing: every setting comes from updhub.toml");
    }
    for s in set {
        out!(
            "{} = {}   (revision {}, set on {} at {})",
            s.key,
            s.value,
            s.revision,
            s.set_by,
            s.set_at
        );
    }
    out!("in force here ([same] settings):");
    if let Some(m) = in_force.as_object() {
        for (k, v) in m {
            out!("  {k} = {v}");
        }
    }
    Ok(())
}

/// One link, as `link list` and `status` show it.
pub(super) fn link(l: &crate::db::Link) -> String {
    format!(
        "{} ({}): certificate {}{}, enrolled {} by {}{}{}",
        l.peer_id,
        l.kind,
        &l.cert_fp[..16.min(l.cert_fp.len())],
        l.issuer
            .as_ref()
            .map(|i| format!(" from {i}"))
            .unwrap_or_default(),
        l.enrolled_at,
        l.enrolled_by,
        l.removed_at
            .map(|t| format!(", REMOVED {t}"))
            .unwrap_or_default(),
        l.refused
            .as_ref()
            .map(|(fp, at)| format!(
                "; REFUSED at {at}: another key (certificate {}) claimed this id",
                &fp[..16.min(fp.len())]
            ))
            .unwrap_or_default()
    )
}
