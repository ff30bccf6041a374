//! Where the license ledger's transactions run. Either engine group-commits: a writer takes
//! every request waiting (up to a bound), runs each inside its own savepoint of one
//! transaction (a refused request rolls back alone, the others stay), commits the batch
//! once, and only then answers each caller, so a caller that heard "granted" holds a
//! durable grant.
//!
//! On SQLite there is one writer thread (one fsync a batch) and reads use their own
//! connection (WAL lets them run beside the writer).
//!
//! On PostgreSQL each node has one writer thread (never a worker of the node's runtime)
//! on the node's pool, and several nodes write the same rows at once. A batch takes a key's
//! row lock once for all its requests (`license_sources::pick` locks candidates FOR UPDATE)
//! and holds it to its commit, while the other nodes' batches wait for it: so batches are
//! bounded ([`PG_MAX_BATCH`]), and a node has one batch open at a time (two or four writers
//! a node, tried, only waited for each other's locks: `benches/README.md`). The savepoints
//! and the clock cost no round trips of their own: they go to the server ahead of each
//! request's first statement (`PgTx::ahead`), and the clock is set only when the second
//! changes. A batch that loses a race with another node (deadlock, serialization failure)
//! is rolled back and run again from the start, every request in it, up to
//! `postgres::CONFLICT_RETRIES` times; then each request fails with that error. Reads run
//! in read-only transactions on the pool.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};

use super::postgres::Pg;
use super::sql::{Conn, SqlError, TxFail};
use super::{DbError, Engine};

/// Most requests committed together on SQLite.
const MAX_BATCH: usize = 1024;

/// Most requests committed together on PostgreSQL. A batch holds the row locks its requests
/// took (a key's, for every registration and donation) until its commit, and other nodes
/// wait for them; and PostgreSQL tracks up to 64 subtransactions (one per request that
/// writes) of a transaction cheaply, beyond which every other snapshot gets slower.
pub const PG_MAX_BATCH: usize = 32;

/// What running one request did.
enum Ran {
    /// It succeeded: its changes stay.
    Done,
    /// It failed (refused, a broken rule, a failed statement): its changes alone are undone.
    Failed,
    /// It lost a race with another transaction: the whole batch is run again.
    Conflict(SqlError),
}

/// A caller's transaction waiting for a writer.
trait Request: Send {
    /// The transaction's time.
    fn now(&self) -> DateTime<Utc>;
    /// Run the caller's code inside the batch's transaction (again, when the batch is run
    /// again), keeping its result for the answer. With `node`, it sets the clock first (a
    /// failure to is its result); without, the writer did.
    fn run(&mut self, c: &Conn<'_>, node: Option<&str>) -> Ran;
    /// Answer the caller once the batch is over: its own result if the batch committed,
    /// else the batch's error.
    fn answer(self: Box<Self>, batch: Result<(), SqlError>);
}

/// [`Request`] for a closure and the channel its caller waits on.
struct Call<T, E, F> {
    now: DateTime<Utc>,
    f: F,
    result: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Request for Call<T, E, F>
where
    T: Send + 'static,
    E: TxFail + Send + 'static,
    F: FnMut(&Conn<'_>, DateTime<Utc>) -> Result<T, E> + Send + 'static,
{
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn run(&mut self, c: &Conn<'_>, node: Option<&str>) -> Ran {
        let res = match node {
            Some(node) => c.set_now(self.now, node).map_err(E::from),
            None => Ok(()),
        }
        .and_then(|()| (self.f)(c, self.now));
        let ran = match &res {
            Ok(_) => Ran::Done,
            Err(e) => match e.conflict() {
                Some(c) => Ran::Conflict(c.clone()),
                None => Ran::Failed,
            },
        };
        self.result = Some(res);
        ran
    }

    fn answer(self: Box<Self>, batch: Result<(), SqlError>) {
        let out = match (batch, self.result) {
            (Ok(()), Some(res)) => res,
            (Err(e), _) => Err(E::from(e)),
            (Ok(()), None) => Err(E::from(SqlError::Failed(
                "the ledger writer committed a batch without running this request".into(),
            ))),
        };
        let _ = self.reply.send(out);
    }
}

type Job = Box<dyn Request>;

/// Where reads run.
enum Reader {
    /// Its own connection (WAL lets it read beside the writer).
    Sqlite(Mutex<Connection>),
    /// Read-only transactions on the node's pool.
    Postgres(Arc<Pg>),
}

/// The ledger's connection to its database.
pub struct LedgerStore {
    reader: Reader,
    /// Sends jobs to the writer thread; taken on drop, which ends the thread.
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, joined on drop so its connection is closed with the store.
    thread: Option<std::thread::JoinHandle<()>>,
    at: String,
}

/// The first job waiting (blocking until there is one; `None` once the store is closed),
/// then every other waiting one, up to `max` in all.
fn take_batch(rx: &mpsc::Receiver<Job>, max: usize) -> Option<Vec<Job>> {
    let mut batch = vec![rx.recv().ok()?];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
    Some(batch)
}

impl LedgerStore {
    /// Open the store on a node's (already migrated) database.
    ///
    /// # Errors
    /// The database cannot be opened, or the writer thread cannot be started.
    pub fn open(db: &super::Db) -> Result<LedgerStore, DbError> {
        let node = db.node_id().to_string();
        let (tx, rx) = mpsc::channel::<Job>();
        let (reader, at, writer): (_, _, Box<dyn FnOnce() + Send>) = match db.engine() {
            Engine::Postgres(pg) => {
                let w = pg.clone();
                (
                    Reader::Postgres(pg.clone()),
                    pg.shown().to_owned(),
                    Box::new(move || pg_writer_loop(&w, &node, &rx)),
                )
            }
            Engine::Sqlite(path) => {
                let err = super::sqlite::sqlite_err(&path);
                let reader = super::connect(&path).map_err(&err)?;
                let mut conn = super::connect(&path).map_err(&err)?;
                (
                    Reader::Sqlite(Mutex::new(reader)),
                    path.display().to_string(),
                    Box::new(move || writer_loop(&mut conn, &rx, &node)),
                )
            }
        };
        let thread = std::thread::Builder::new()
            .name("updhub-ledger".into())
            .spawn(writer)
            .map_err(|e| DbError::Sql {
                at: at.clone(),
                source: SqlError::Failed(format!("the ledger writer thread: {e}")),
            })?;
        Ok(LedgerStore {
            reader,
            writer: Mutex::new(Some(tx)),
            thread: Some(thread),
            at,
        })
    }

    /// The database file or URL, for messages.
    pub fn location(&self) -> &str {
        &self.at
    }

    /// Run `f` as one transaction at time `now`: `f` gets it, and the schema's rules read
    /// it (see [`Conn::set_now`]), so both judge "in force" and "ended" at the same instant.
    /// Resolves once the transaction is durable; `None` when the store is shutting down.
    /// On PostgreSQL `f` may run more than once (its batch lost a race and ran again); only
    /// the last run's result is answered.
    pub fn submit<T, E, F>(
        &self,
        now: DateTime<Utc>,
        f: F,
    ) -> tokio::sync::oneshot::Receiver<Result<T, E>>
    where
        T: Send + 'static,
        E: TxFail + Send + 'static,
        F: FnMut(&Conn<'_>, DateTime<Utc>) -> Result<T, E> + Send + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(Call {
            now,
            f,
            result: None,
            reply,
        });
        if let Some(w) = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            // A writer that stopped drops the job, and with it the reply: the caller's
            // receiver then says so.
            let _ = w.send(job);
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
        match &self.reader {
            Reader::Postgres(pg) => pg.run(false, &mut f),
            Reader::Sqlite(reader) => {
                let c = reader.lock().unwrap_or_else(|p| p.into_inner());
                f(&Conn::Sqlite(&c))
            }
        }
    }
}

impl Drop for LedgerStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop after the jobs already sent.
        self.writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The SQLite writer thread: group commit. Each job runs in its own savepoint inside one
/// transaction; the batch commits once; then every caller hears its result.
fn writer_loop(conn: &mut Connection, rx: &mpsc::Receiver<Job>, node: &str) {
    use super::sqlite::classify;
    while let Some(batch) = take_batch(rx, MAX_BATCH) {
        let mut ran: Vec<Job> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        let result = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for mut job in jobs.by_ref() {
                let sp = tx.savepoint()?;
                let outcome = job.run(&Conn::Sqlite(&sp), Some(node));
                ran.push(job);
                if matches!(outcome, Ran::Done) {
                    sp.commit()?;
                } else {
                    drop(sp); // rolls back this request alone
                }
            }
            tx.commit()
        })();
        let outcome = result.map_err(classify);
        for job in ran {
            job.answer(outcome.clone());
        }
        // Jobs never run (the transaction failed to start) are dropped: their callers see
        // the writer's error as a closed channel.
        drop(jobs);
    }
}

/// The PostgreSQL writer thread: takes a batch (the waiting jobs, up to [`PG_MAX_BATCH`]),
/// runs it as one transaction, run again from the start after a lost race, and answers.
/// A request that panics fails its batch (rolled back), not the writer.
fn pg_writer_loop(pg: &Pg, node: &str, rx: &mpsc::Receiver<Job>) {
    while let Some(mut batch) = take_batch(rx, PG_MAX_BATCH) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pg.run_on_blocking_thread(true, &mut |c| run_pg_batch(c, node, &mut batch))
        }))
        .unwrap_or_else(|_| {
            Err(SqlError::Failed(
                "a license ledger request panicked; its batch was rolled back".into(),
            ))
        });
        for job in batch {
            job.answer(outcome.clone());
        }
    }
}

/// One run of a batch in an open PostgreSQL transaction: each job in a savepoint, rolled
/// back to on failure, released on success; the clock set whenever the second changes.
/// These statements go ahead of each job's first statement, in its round trip. Returns a
/// lost race of any job (the batch is run again) or a failure of the statements around
/// the jobs (the batch fails).
fn run_pg_batch(c: &Conn<'_>, node: &str, batch: &mut [Job]) -> Result<(), SqlError> {
    let Conn::Postgres(tx) = c else {
        unreachable!("the PostgreSQL writer runs on PostgreSQL");
    };
    let mut clock = None;
    for job in batch.iter_mut() {
        // Outside the savepoint, so a rolled-back job does not take the clock with it.
        let now = job.now();
        if clock != Some(now.timestamp()) {
            tx.ahead(&super::sql::set_now_postgres(now, node));
            clock = Some(now.timestamp());
        }
        tx.ahead("SAVEPOINT request");
        let ran = job.run(c, None);
        if let Some(e) = tx.ahead_failed() {
            return Err(e);
        }
        match ran {
            Ran::Done => tx.ahead("RELEASE SAVEPOINT request"),
            Ran::Failed => tx.ahead("ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request"),
            Ran::Conflict(e) => return Err(e),
        }
    }
    // The last release (or rollback) before the commit: a job that claimed success in an
    // aborted transaction fails the batch here, where a COMMIT would roll back in silence.
    tx.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql::args;
    use crate::db::{license_log, license_sources, stations, Db};
    use crate::id::ServerId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A new, empty database on the test server (`UPDHUB_TEST_PG_URL`), or `None` after
    /// saying why not.
    fn new_pg_database(test: &str) -> Option<String> {
        let Ok(admin) = std::env::var("UPDHUB_TEST_PG_URL") else {
            eprintln!("SKIPPED {test}: it needs PostgreSQL and UPDHUB_TEST_PG_URL is not set (run `eval \"$(bash scripts/pg-throwaway.sh start)\"` first; CI always sets it)");
            return None;
        };
        let name = format!("u_{}_{}", std::process::id(), rand::random::<u32>());
        let create = format!("CREATE DATABASE {name}");
        pg_client(&admin, |c| {
            Box::pin(async move { c.batch_execute(&create).await.unwrap() })
        });
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
        Some(format!("{base}/{name}"))
    }

    /// Run `f` on a plain connection to `url`, on a runtime of its own.
    fn pg_client<T>(
        url: &str,
        f: impl for<'c> FnOnce(
            &'c tokio_postgres::Client,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'c>>,
    ) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("the test PostgreSQL server answers");
            tokio::spawn(conn);
            f(&client).await
        })
    }

    /// Hold the writer of `store` inside a job until the returned sender is dropped, so
    /// the jobs submitted meanwhile wait and then run as one batch.
    fn hold_writer(store: &LedgerStore) -> mpsc::Sender<()> {
        let (started_tx, started) = mpsc::channel();
        let (release, wait) = mpsc::channel::<()>();
        drop(store.submit(Utc::now(), move |_, _| {
            let _ = started_tx.send(());
            let _ = wait.recv();
            Ok::<_, SqlError>(())
        }));
        started.recv().unwrap();
        release
    }

    /// A ledger store on a fresh PostgreSQL database whose cluster holds key `K` with
    /// `count` licenses.
    fn store_with_key(url: &str, count: u32) -> (Db, LedgerStore) {
        let db = Db::open_postgres(url, ServerId::new("n1").unwrap()).unwrap();
        let store = LedgerStore::open(&db).unwrap();
        let now = Utc::now();
        store
            .submit(now, move |c, now| {
                license_sources::insert_key(
                    c,
                    "n1",
                    &license_sources::NewKey {
                        key_id: "K",
                        holder: "ACME",
                        count,
                        not_before: now - chrono::Duration::days(1),
                        not_after: now + chrono::Duration::days(1),
                        document: "{}",
                        added: now,
                    },
                )
            })
            .blocking_recv()
            .unwrap()
            .unwrap();
        (db, store)
    }

    #[test]
    fn a_refused_request_in_a_postgres_batch_rolls_back_alone() {
        let Some(url) = new_pg_database("a_refused_request_in_a_postgres_batch_rolls_back_alone")
        else {
            return;
        };
        const KEY: u32 = 5;
        const ASKED: usize = 12;
        const { assert!(ASKED < PG_MAX_BATCH, "the requests fit in one batch") };
        let (_db, store) = store_with_key(&url, KEY);
        let held = hold_writer(&store);
        // Each request inserts its station straight away, with no look at the room left:
        // the database's conservation rule refuses those past the key's count. Each says
        // which transaction it ran in.
        let txids = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..ASKED {
            let txids = txids.clone();
            waiting.push(store.submit(Utc::now(), move |c, now| {
                let txid: i64 = c.value("SELECT txid_current()", &[])?.unwrap();
                txids.lock().unwrap().push(txid);
                stations::insert(c, "n1", &format!("st-{i}"), "h", "K", now)
            }));
        }
        // One more that writes, then is refused by its own code, not by a rule.
        let txids2 = txids.clone();
        waiting.push(store.submit(Utc::now(), move |c, _| {
            let txid: i64 = c.value("SELECT txid_current()", &[])?.unwrap();
            txids2.lock().unwrap().push(txid);
            license_log::append(c, "n1", "refused_later", "x", "")?;
            Err(SqlError::Failed("refused by its own code".into()))
        }));
        drop(held);
        let results: Vec<_> = waiting
            .into_iter()
            .map(|w| w.blocking_recv().unwrap())
            .collect();
        let (ok, refused): (Vec<_>, Vec<_>) = results[..ASKED].iter().partition(|r| r.is_ok());
        assert_eq!(ok.len(), KEY as usize, "{results:?}");
        for r in &refused {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.rule(), Some("conservation"), "{e:?}");
        }
        assert_eq!(
            results[ASKED],
            Err(SqlError::Failed("refused by its own code".into()))
        );
        // All ran in one transaction: the refusals rolled back alone.
        let txids = txids.lock().unwrap();
        assert_eq!(txids.len(), ASKED + 1, "each ran once");
        assert!(txids.iter().all(|t| *t == txids[0]), "one batch: {txids:?}");
        let (used, rows, logged) = store
            .read(|c| {
                let used: i64 = c
                    .value(
                        "SELECT used FROM license_sources WHERE server_id=$1 AND source_id='K'",
                        args!["n1"],
                    )?
                    .unwrap();
                let rows = stations::all(c, "n1")?.len();
                let logged: i64 = c
                    .value(
                        "SELECT count(*) FROM license_log WHERE event='refused_later'",
                        &[],
                    )?
                    .unwrap();
                Ok::<_, SqlError>((used, rows, logged))
            })
            .unwrap();
        assert_eq!((used, rows, logged), (i64::from(KEY), KEY as usize, 0));
    }

    #[test]
    fn a_postgres_batch_that_loses_a_deadlock_runs_again_whole() {
        let Some(url) = new_pg_database("a_postgres_batch_that_loses_a_deadlock_runs_again_whole")
        else {
            return;
        };
        let (_db, store) = store_with_key(&url, 1);
        pg_client(&url, |c| {
            Box::pin(async move {
                c.batch_execute(
                    "CREATE TABLE locked(id INT PRIMARY KEY); INSERT INTO locked VALUES (1), (2)",
                )
                .await
                .unwrap();
            })
        });
        let held = hold_writer(&store);
        // In one batch: a request that writes, then one that locks row 1, then row 2.
        let first_runs = Arc::new(AtomicUsize::new(0));
        let runs = first_runs.clone();
        let first = store.submit(Utc::now(), move |c, _| {
            runs.fetch_add(1, Ordering::SeqCst);
            license_log::append(c, "n1", "before_the_deadlock", "x", "")
        });
        let locker_runs = Arc::new(AtomicUsize::new(0));
        let runs = locker_runs.clone();
        let (holding_tx, holding) = mpsc::channel();
        let locker = store.submit(Utc::now(), move |c, _| {
            runs.fetch_add(1, Ordering::SeqCst);
            c.rows("SELECT id FROM locked WHERE id = 1 FOR UPDATE", &[])?;
            let _ = holding_tx.send(());
            c.rows("SELECT id FROM locked WHERE id = 2 FOR UPDATE", &[])?;
            Ok::<_, SqlError>(())
        });
        // Another transaction holds row 2, waits until the batch waits for it, then asks
        // for row 1: a deadlock. The batch waited first, so its deadlock_timeout (1 s)
        // passes first and the server aborts it; ours is set longer so it never is.
        pg_client(&url, |c| {
            Box::pin(async move {
                c.batch_execute("BEGIN; SET LOCAL deadlock_timeout = '20s'; SELECT id FROM locked WHERE id = 2 FOR UPDATE")
                    .await
                    .unwrap();
                drop(held);
                holding.recv().unwrap();
                loop {
                    let waiting: i64 = c
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                            &[],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    if waiting > 0 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                // Granted once the batch lost and rolled back.
                c.batch_execute("SELECT id FROM locked WHERE id = 1 FOR UPDATE; COMMIT")
                    .await
                    .unwrap();
            })
        });
        assert_eq!(locker.blocking_recv().unwrap(), Ok(()));
        assert_eq!(first.blocking_recv().unwrap(), Ok(()));
        // On a loaded machine the re-run batch can lose a second round to the same waiter
        // before it commits; what matters is that it ran again, and always whole.
        let locker_ran = locker_runs.load(Ordering::SeqCst);
        assert!(locker_ran >= 2, "the locker ran again ({locker_ran})");
        assert_eq!(
            first_runs.load(Ordering::SeqCst),
            locker_ran,
            "so did the rest of its batch, each time"
        );
        let logged: i64 = store
            .read(|c| {
                c.value(
                    "SELECT count(*) FROM license_log WHERE event='before_the_deadlock'",
                    &[],
                )
                .map(Option::unwrap)
            })
            .unwrap();
        assert_eq!(logged, 1, "committed once");
    }
}
