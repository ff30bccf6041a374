//! The copy itself, inside the join's transaction on the cluster's database: every row of
//! [`TABLES`] written in order (license sources staged, see [`Write::Sources`]), the sources
//! given back their own dates and status, and every row read back and compared.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{params, refs, show, Owner, Snapshot, Table, Write, TABLES};
use crate::db::sql::{args, Conn, Row, SqlError, Value};

/// A source as it is first written: in force at `now` for every grant carved from it, with
/// zero counters (its grants and stations count themselves in).
fn staged(
    t: &Table,
    row: &Row,
    grant_ends: &HashMap<String, i64>,
    now: i64,
) -> Result<Vec<Value>, SqlError> {
    let id: String = row.get(t.at("source_id"))?;
    let not_before: i64 = row.get(t.at("not_before"))?;
    let usable_until: i64 = row.get(t.at("usable_until"))?;
    let last_grant = grant_ends.get(&id).copied().unwrap_or(i64::MIN);
    let mut v = row.0.clone();
    v[t.at("used")] = Value::Int(0);
    v[t.at("donated")] = Value::Int(0);
    v[t.at("status")] = Value::Text("active".into());
    v[t.at("not_before")] = Value::Int(not_before.min(now));
    v[t.at("usable_until")] = Value::Int(usable_until.max(now + 1).max(last_grant));
    Ok(v)
}

/// Write every row of `snap`; returns the numbers the cluster's audit log gave the copied
/// log rows, in order.
pub(super) fn copy(
    c: &Conn<'_>,
    snap: &Snapshot,
    cluster: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, SqlError> {
    let (gt, grants) = snap.rows_of("grants");
    let mut grant_ends: HashMap<String, i64> = HashMap::new();
    for g in grants {
        let end: i64 = g.get(gt.at("not_after"))?;
        let e = grant_ends.entry(g.get(gt.at("source_id"))?).or_insert(end);
        *e = (*e).max(end);
    }
    let mut seqs = Vec::new();
    for (t, rows) in TABLES.iter().zip(&snap.rows) {
        let key = match t.owner {
            Owner::Cluster => cluster,
            Owner::Node => snap.node.as_str(),
        };
        let sql = t.insert_sql();
        for r in rows {
            let values = match t.write {
                Write::Sources => params(key, &staged(t, r, &grant_ends, now.timestamp())?),
                Write::AsIs | Write::Log => params(key, &r.0),
            };
            if t.write == Write::Log {
                let seq: Option<i64> = c.value(&format!("{sql} RETURNING seq"), &refs(&values))?;
                seqs.push(
                    seq.ok_or_else(|| SqlError::Failed("license_log: no seq returned".into()))?,
                );
            } else {
                let n = c.exec(&sql, &refs(&values))?;
                if n != 1 {
                    return Err(SqlError::Failed(format!(
                        "{}: {n} rows written instead of 1",
                        t.name
                    )));
                }
            }
        }
    }
    Ok(seqs)
}

/// Give every copied source back its own dates and status (see [`Write::Sources`]).
pub(super) fn restore_sources(
    c: &Conn<'_>,
    snap: &Snapshot,
    cluster: &str,
) -> Result<(), SqlError> {
    let (t, rows) = snap.rows_of("license_sources");
    for r in rows {
        c.exec(
            "UPDATE license_sources SET not_before=$3, usable_until=$4, status=$5 WHERE server_id=$1 AND source_id=$2",
            &refs(&params(
                cluster,
                &t.name_of(r, &["source_id", "not_before", "usable_until", "status"]),
            )),
        )?;
    }
    Ok(())
}

/// Rows by their name (the values of their naming columns).
type ByName = HashMap<Vec<Value>, Vec<Value>>;

/// Read every copied row back and compare it with the original; `Err` says the first that
/// differs.
pub(super) fn read_back(
    c: &Conn<'_>,
    snap: &Snapshot,
    cluster: &str,
    seqs: &[i64],
) -> Result<Result<(), String>, SqlError> {
    for (t, rows) in TABLES.iter().zip(&snap.rows) {
        let key = match t.owner {
            Owner::Cluster => cluster,
            Owner::Node => snap.node.as_str(),
        };
        let cols = t.columns.join(", ");
        // Each copied row by its name (the log's rows by the numbers they were given).
        let (names, got): (Vec<Vec<Value>>, ByName) = if t.write == Write::Log {
            let from = seqs.iter().min().copied().unwrap_or(0);
            let got = c
                .rows(
                    &format!(
                        "SELECT seq, {cols} FROM {} WHERE {}=$1 AND seq >= $2",
                        t.name, t.key
                    ),
                    args![key, from],
                )?
                .into_iter()
                .map(|r| (vec![r.0[0].clone()], r.0[1..].to_vec()))
                .collect();
            (seqs.iter().map(|s| vec![Value::Int(*s)]).collect(), got)
        } else {
            let naming = t.unique.first().copied().unwrap_or(&[]);
            let got: ByName = c
                .rows(
                    &format!("SELECT {cols} FROM {} WHERE {}=$1", t.name, t.key),
                    args![key],
                )?
                .into_iter()
                .map(|r| (t.name_of(&r, naming), r.0))
                .collect();
            if t.owner == Owner::Node && got.len() != rows.len() {
                return Ok(Err(format!(
                    "{}: {} rows under {key} after the copy, {} copied",
                    t.name,
                    got.len(),
                    rows.len()
                )));
            }
            (rows.iter().map(|r| t.name_of(r, naming)).collect(), got)
        };
        for (r, name) in rows.iter().zip(names) {
            match got.get(&name) {
                Some(v) if *v == r.0 => {}
                Some(v) => {
                    return Ok(Err(format!(
                        "{} row ({}) reads back as ({}), copied as ({})",
                        t.name,
                        show(&name),
                        show(v),
                        show(&r.0)
                    )))
                }
                None => {
                    return Ok(Err(format!(
                        "{} row ({}) is missing after the copy",
                        t.name,
                        show(&name)
                    )))
                }
            }
        }
    }
    Ok(Ok(()))
}
