//! `cluster join`: run the join off the async workers and print its report.

use std::path::Path;

use super::{out, print_json, Result};
use crate::error::Error;
use crate::join::Report;

/// `cluster join --database URL [--dry-run] [--json]`. Exits non-zero when conflicts
/// stop the join (on a dry run too: the join would be refused).
pub(super) async fn join(data: &Path, url: &str, dry_run: bool, json: bool) -> Result<()> {
    let (data, url) = (data.to_owned(), url.to_owned());
    let report = tokio::task::spawn_blocking(move || crate::join::join(&data, &url, dry_run))
        .await
        .map_err(|e| Error::State(format!("cluster join failed: {e}")))??;
    if json {
        print_json(&report)?;
    } else {
        print(&report)?;
    }
    if report.refused() {
        return Err(Error::State(format!(
            "cluster join {}: {} conflict(s) listed above, each with its fix; nothing was changed",
            if report.dry_run {
                "would be refused"
            } else {
                "refused"
            },
            report.conflicts.len()
        )));
    }
    Ok(())
}

fn print(r: &Report) -> Result<()> {
    out!(
        "cluster join{}: node {} ({})",
        if r.dry_run { " --dry-run" } else { "" },
        r.node,
        r.local.display()
    );
    out!("  into {} (cluster {})", r.target, r.cluster);
    if r.ledger != r.cluster {
        out!(
            "  the license ledger's rows move from id {} to the cluster's id {}",
            r.ledger,
            r.cluster
        );
    }
    let done = r.tables.iter().any(|t| t.cluster_after.is_some());
    let or_dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let row = |table: &str, here: &str, before: &str, added: &str, after: &str, note: &str| {
        let after = if done {
            format!(" {after:>13}")
        } else {
            String::new()
        };
        format!("{table:<17} {here:>6} {before:>14} {added:>6}{after}{note}")
    };
    out!(
        "{}",
        row(
            "table",
            "here",
            "cluster before",
            if r.joined { "added" } else { "to add" },
            "cluster after",
            ""
        )
    );
    for t in &r.tables {
        out!(
            "{}",
            row(
                &t.table,
                &t.here.to_string(),
                &t.cluster_before.to_string(),
                &or_dash(t.added),
                &or_dash(t.cluster_after),
                &t.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            )
        );
    }
    for n in &r.notes {
        out!("note: {n}");
    }
    for p in &r.conflicts {
        out!("CONFLICT: {}", p.what);
        out!("  fix: {}", p.fix);
    }
    if r.refused() {
        out!(
            "{} conflict(s): the join {}; nothing was changed",
            r.conflicts.len(),
            if r.dry_run {
                "would be refused"
            } else {
                "is refused"
            }
        );
    } else if r.dry_run {
        out!("no conflicts: the same command without --dry-run adds the rows above; nothing was changed");
    } else if r.joined {
        out!("joined: every copied row was read back from the cluster's database and matches; updhub.toml now names it (database.url)");
        out!(
            "backup: this node's old database, as it was: {}",
            r.local.display()
        );
        out!("next: start the node (`updhub serve`), then `updhub cluster check`");
    }
    Ok(())
}
