//! Tables: how `status` prints.

use super::{out, Result};

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
    if let Some(w) = &s.warning {
        out!("WARNING: {w}");
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
    out!("config digest {}", s.config_digest);
    for c in &s.children {
        out!(
            "child {}: version {} {}{} reported {}",
            c.report.child_id,
            c.report
                .number
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            if c.in_sync { "in sync" } else { "BEHIND" },
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
