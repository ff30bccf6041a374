//! Where the license ledger's transactions run. On SQLite, one writer thread group-commits:
//! it takes every request waiting, runs each inside its own savepoint (a refused request
//! rolls back alone), and commits the batch with one fsync; reads use their own connection
//! (WAL lets them run beside the writer). On PostgreSQL, each request is its own
//! transaction on the node's pool, run on the blocking pool and run again from the start
//! when it lost a race with another node; the server group-commits by itself. Either way a
//! reply is sent only after the commit, so a caller that heard "granted" holds a durable
//! grant.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};

use super::postgres::Pg;
use super::sql::{Conn, SqlError, TxFail};
use super::{DbError, Engine};

/// Most requests committed together.
const MAX_BATCH: usize = 1024;

type Reply = Box<dyn FnOnce(Result<(), SqlError>) + Send>;
type Job = Box<dyn FnOnce(&Conn<'_>) -> (bool, Reply) + Send>;

enum Backend {
    Sqlite {
        /// Sends jobs to the writer thread; taken on drop, which ends the thread.
        writer: Mutex<Option<mpsc::Sender<Job>>>,
        /// The writer thread, joined on drop so its connection is closed with the store.
        thread: Option<std::thread::JoinHandle<()>>,
        reader: Mutex<Connection>,
    },
    Postgres(Arc<Pg>),
}

/// The ledger's connection to its database.
pub struct LedgerStore {
    backend: Backend,
    at: String,
    /// The node the transactions run on, for the audit log.
    node: String,
}

impl LedgerStore {
    /// Open the store on a node's (already migrated) database.
    ///
    /// # Errors
    /// The database cannot be opened.
    pub fn open(db: &super::Db) -> Result<LedgerStore, DbError> {
        let node = db.node_id().to_string();
        match db.engine() {
            Engine::Postgres(pg) => Ok(LedgerStore {
                at: pg.shown().to_owned(),
                backend: Backend::Postgres(pg.clone()),
                node,
            }),
            Engine::Sqlite(path) => Self::open_sqlite(&path, node),
        }
    }

    fn open_sqlite(path: &Path, node: String) -> Result<LedgerStore, DbError> {
        let err = super::sqlite::sqlite_err(path);
        let reader = super::connect(path).map_err(&err)?;
        let mut conn = super::connect(path).map_err(&err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("updhub-ledger".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(|e| DbError::Sql {
                at: path.display().to_string(),
                source: SqlError::Failed(format!("the ledger writer thread: {e}")),
            })?;
        Ok(LedgerStore {
            at: path.display().to_string(),
            node,
            backend: Backend::Sqlite {
                writer: Mutex::new(Some(tx)),
                thread: Some(thread),
                reader: Mutex::new(reader),
            },
        })
    }

    /// The database file or URL, for messages.
    pub fn location(&self) -> &str {
        &self.at
    }

    /// Run `f` as one transaction at time `now`: `f` gets it, and the schema's rules read
    /// it (see [`Conn::set_now`]), so both judge "in force" and "ended" at the same instant.
    /// Resolves once the transaction is durable; `None` when the store is shutting down.
    pub fn submit<T, E, F>(
        &self,
        now: DateTime<Utc>,
        mut f: F,
    ) -> tokio::sync::oneshot::Receiver<Result<T, E>>
    where
        T: Send + 'static,
        E: TxFail + Send + 'static,
        F: FnMut(&Conn<'_>, DateTime<Utc>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let node = self.node.clone();
        match &self.backend {
            Backend::Postgres(pg) => {
                let pg = pg.clone();
                tokio::task::spawn_blocking(move || {
                    let out = pg.run_on_blocking_thread(true, &mut |c| {
                        c.set_now(now, &node)?;
                        f(c, now)
                    });
                    let _ = tx.send(out);
                });
            }
            Backend::Sqlite { writer, .. } => {
                let job: Job = Box::new(move |conn| {
                    let res = conn
                        .set_now(now, &node)
                        .map_err(E::from)
                        .and_then(|()| f(conn, now));
                    let ok = res.is_ok();
                    let reply: Reply = Box::new(move |commit| {
                        let out = match commit {
                            Ok(()) => res,
                            Err(e) => Err(E::from(e)),
                        };
                        let _ = tx.send(out);
                    });
                    (ok, reply)
                });
                if let Some(w) = writer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    let _ = w.send(job);
                }
            }
        }
        rx
    }

    /// Run `f` on the reader (SQLite) or a read-only transaction (PostgreSQL).
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn read<T: Send, E: TxFail + Send>(
        &self,
        mut f: impl FnMut(&Conn<'_>) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Postgres(pg) => pg.run(false, &mut f),
            Backend::Sqlite { reader, .. } => {
                let c = reader.lock().unwrap_or_else(|p| p.into_inner());
                f(&Conn::Sqlite(&c))
            }
        }
    }
}

impl Drop for LedgerStore {
    fn drop(&mut self) {
        if let Backend::Sqlite { writer, thread, .. } = &mut self.backend {
            // Closing the channel ends the writer loop after the jobs already sent.
            writer.get_mut().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The writer thread: group commit. Each job runs in its own savepoint inside one
/// transaction; the batch commits once; then every caller hears its result.
fn writer_loop(conn: &mut Connection, rx: mpsc::Receiver<Job>) {
    use super::sqlite::classify;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        let result = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for job in jobs.by_ref() {
                let sp = tx.savepoint()?;
                let (ok, reply) = job(&Conn::Sqlite(&sp));
                replies.push(reply);
                if ok {
                    sp.commit()?;
                } else {
                    drop(sp); // rolls back this request alone
                }
            }
            tx.commit()
        })();
        let outcome = result.map_err(classify);
        for r in replies {
            r(outcome.clone());
        }
        // Jobs never run (the transaction failed to start) are dropped: their callers see
        // the writer's error as a closed channel.
        drop(jobs);
    }
}
