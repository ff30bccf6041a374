//! The PostgreSQL engine: a connection pool (deadpool-postgres over tokio-postgres, TLS by
//! rustls) on a small runtime of its own, so callers on any thread (a blocking-pool thread,
//! the ledger's jobs, a CLI command) run their transactions synchronously, and a slow commit
//! never occupies a worker of the node's runtime.

use std::cell::RefCell;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::sql::{Conn, Param, Row, SqlError, TxFail, Value};
use super::BUSY_TIMEOUT;

/// Most connections one node keeps to the shared database.
const POOL_SIZE: usize = 16;

/// How often a transaction that lost a race (deadlock, serialization failure) is run again.
const CONFLICT_RETRIES: usize = 8;

/// A node's pool of connections to one PostgreSQL database.
pub struct Pg {
    pool: Pool,
    /// The pool's connections run here; `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    /// The URL without its password, for messages.
    shown: String,
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(c) => {
            let host = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres://{}@{host}:{port}/{}",
                c.get_user().unwrap_or(""),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "postgres://(unreadable URL)".to_owned(),
    }
}

/// `url` without a password, whatever kind of URL it is (for messages about settings).
pub fn redact_any(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        redact(url)
    } else {
        url.to_owned()
    }
}

impl Pg {
    /// Make the pool for `url` (`postgres://user:password@host:port/dbname?sslmode=…`) and
    /// check that one connection works.
    ///
    /// # Errors
    /// A URL that does not parse, or a server that cannot be reached or refuses the login.
    pub fn connect(url: &str, app: &str) -> Result<Pg, SqlError> {
        let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| {
            SqlError::Connection(format!(
                "database.url is not a PostgreSQL URL ({e}); write it as postgres://USER:PASSWORD@HOST:PORT/DBNAME"
            ))
        })?;
        let waits = format!(
            "-c lock_timeout={ms} -c statement_timeout={ms} -c idle_in_transaction_session_timeout={idle}",
            ms = BUSY_TIMEOUT.as_millis(),
            idle = (BUSY_TIMEOUT * 2).as_millis()
        );
        let options = match cfg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {waits}"),
            _ => waits,
        };
        cfg.options(&options);
        cfg.application_name(app);
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(10));
        }
        let tls = tls_connector()?;
        let mgr = Manager::from_config(
            cfg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("updhub-pg")
            .enable_all()
            .build()
            .map_err(|e| SqlError::Failed(format!("database runtime: {e}")))?;
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(BUSY_TIMEOUT))
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| SqlError::Failed(format!("database pool: {e}")))?;
        let pg = Pg {
            pool,
            rt: Some(rt),
            shown: redact(url),
        };
        pg.run(false, &mut |c| c.exec("SELECT 1", &[]).map(drop))?;
        Ok(pg)
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.rt
            .as_ref()
            .expect("runtime lives as long as the pool")
            .handle()
    }

    /// Run `f`, which blocks on the pool's runtime, from any thread: a plain thread runs it
    /// directly; a thread of an async runtime (a worker, a blocking-pool thread, a test's
    /// `block_on`) hands it to a scoped thread and waits, so no runtime's own machinery
    /// (`block_in_place`, nested `block_on`) is involved. The hot path (the ledger's
    /// writer thread) skips this hop with [`Pg::run_on_blocking_thread`].
    fn block<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            f()
        } else {
            std::thread::scope(|s| s.spawn(f).join().expect("database call panicked"))
        }
    }

    /// Run `f` in one transaction and commit; a transaction that lost a race is run again
    /// from the start. With `write`, the transaction may change rows; without, it only reads.
    ///
    /// # Errors
    /// Whatever `f` or the commit returns.
    pub fn run<T: Send, E: TxFail + Send>(
        &self,
        write: bool,
        f: &mut (dyn FnMut(&Conn<'_>) -> Result<T, E> + Send),
    ) -> Result<T, E> {
        self.block(|| self.run_on_blocking_thread(write, f))
    }

    /// [`Pg::run`] for a caller on a plain thread or one of tokio's blocking pool,
    /// where waiting on another runtime is allowed: no extra thread.
    ///
    /// # Errors
    /// Whatever `f` or the commit returns.
    pub fn run_on_blocking_thread<T: Send, E: TxFail + Send>(
        &self,
        write: bool,
        f: &mut (dyn FnMut(&Conn<'_>) -> Result<T, E> + Send),
    ) -> Result<T, E> {
        let handle = self.handle();
        let mut tries = 0;
        loop {
            match self.once(handle, write, f) {
                Err(e) if e.conflict().is_some() && tries < CONFLICT_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    fn once<T, E: TxFail>(
        &self,
        handle: &tokio::runtime::Handle,
        write: bool,
        f: &mut (dyn FnMut(&Conn<'_>) -> Result<T, E> + Send),
    ) -> Result<T, E> {
        let mut client = handle.block_on(self.pool.get()).map_err(pool_err)?;
        let tx = handle
            .block_on(client.build_transaction().read_only(!write).start())
            .map_err(classify)?;
        let pg = PgTx {
            handle,
            tx,
            ahead: RefCell::new(String::new()),
            ahead_failed: RefCell::new(None),
        };
        // A failed `f` drops the transaction, which rolls it back.
        let v = f(&Conn::Postgres(&pg))?;
        handle.block_on(pg.tx.commit()).map_err(classify)?;
        Ok(v)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// rustls for `sslmode=prefer|require`; roots from the system's bundle.
fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, SqlError> {
    let mut roots = rustls::RootCertStore::empty();
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(path) {
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
            break;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SqlError::Failed(format!("TLS for the database: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// One open transaction on a pooled connection.
pub struct PgTx<'a> {
    handle: &'a tokio::runtime::Handle,
    tx: deadpool_postgres::Transaction<'a>,
    /// Statements without parameters that go to the server with the next statement, in
    /// the same round trip (see [`PgTx::ahead`]).
    ahead: RefCell<String>,
    /// The first failure of statements sent ahead, kept for [`PgTx::ahead_failed`].
    ahead_failed: RefCell<Option<SqlError>>,
}

impl PgTx<'_> {
    fn bind(args: &[&dyn Param]) -> Vec<Value> {
        args.iter().map(|a| a.value()).collect()
    }

    /// Send `sql` (statements without parameters) with the next statement, ahead of it, in
    /// the same round trip: the ledger's writer opens and closes each request's savepoint
    /// and sets the clock this way. The server runs them in order; if they fail, the next
    /// statement fails with their error and [`PgTx::ahead_failed`] says so.
    pub(super) fn ahead(&self, sql: &str) {
        let mut a = self.ahead.borrow_mut();
        if !a.is_empty() {
            a.push_str("; ");
        }
        a.push_str(sql);
    }

    /// The error of statements sent ahead, if they failed (then the statement they went
    /// with failed too, and the transaction is aborted).
    pub(super) fn ahead_failed(&self) -> Option<SqlError> {
        self.ahead_failed.borrow_mut().take()
    }

    /// Run `this` on the server, after what is waiting to go ahead of it: both are sent
    /// before either answer is awaited (tokio-postgres pipelines requests polled together,
    /// in the order polled), so the statements ahead cost no round trip of their own.
    fn send<T>(
        &self,
        this: impl std::future::Future<Output = Result<T, SqlError>>,
    ) -> Result<T, SqlError> {
        let ahead = std::mem::take(&mut *self.ahead.borrow_mut());
        if ahead.is_empty() {
            return self.handle.block_on(this);
        }
        let (before, this) = self.handle.block_on(futures_util::future::join(
            self.tx.batch_execute(&ahead),
            this,
        ));
        if let Err(e) = before {
            let e = classify(e);
            *self.ahead_failed.borrow_mut() = Some(e.clone());
            return Err(e);
        }
        this
    }

    pub(super) fn exec(&self, sql: &str, args: &[&dyn Param]) -> Result<u64, SqlError> {
        let vals = Self::bind(args);
        let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v as _).collect();
        self.send(async {
            let st = self.tx.prepare_cached(sql).await.map_err(classify)?;
            self.tx.execute(&st, &refs).await.map_err(classify)
        })
    }

    pub(super) fn rows(&self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, SqlError> {
        let vals = Self::bind(args);
        let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v as _).collect();
        let rows = self.send(async {
            let st = self.tx.prepare_cached(sql).await.map_err(classify)?;
            self.tx.query(&st, &refs).await.map_err(classify)
        })?;
        rows.iter().map(decode).collect()
    }

    /// Send what waits to go ahead, alone.
    ///
    /// # Errors
    /// A statement failed.
    pub(super) fn flush(&self) -> Result<(), SqlError> {
        let ahead = std::mem::take(&mut *self.ahead.borrow_mut());
        if ahead.is_empty() {
            return Ok(());
        }
        self.handle
            .block_on(self.tx.batch_execute(&ahead))
            .map_err(classify)
    }

    pub(super) fn batch(&self, sql: &str) -> Result<(), SqlError> {
        self.send(async { self.tx.batch_execute(sql).await.map_err(classify) })
    }
}

fn decode(row: &tokio_postgres::Row) -> Result<Row, SqlError> {
    let bad = |i: usize, e: tokio_postgres::Error| SqlError::Damaged(format!("column {i}: {e}"));
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => row
                .try_get::<_, Option<i64>>(i)
                .map_err(|e| bad(i, e))?
                .map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(|e| bad(i, e))?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(|e| bad(i, e))?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(|e| bad(i, e))?
                .map(|v| Value::Int(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
                .try_get::<_, Option<String>>(i)
                .map_err(|e| bad(i, e))?
                .map(Value::Text),
            Type::VOID => None,
            ref t => {
                return Err(SqlError::Damaged(format!(
                    "column {} has type {t}, which updhub does not read",
                    col.name()
                )))
            }
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn pool_err(e: PoolError) -> SqlError {
    match e {
        PoolError::Timeout(_) => SqlError::Busy,
        PoolError::Backend(e) => classify(e),
        other => SqlError::Connection(other.to_string()),
    }
}

/// Classify by SQLSTATE and constraint name.
fn classify(e: tokio_postgres::Error) -> SqlError {
    let Some(db) = e.as_db_error() else {
        return SqlError::Connection(e.to_string());
    };
    let code = db.code();
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        SqlError::Conflict(db.message().to_owned())
    } else if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED {
        SqlError::Busy
    } else if let Some(name) = db.constraint() {
        SqlError::Rule {
            name: name.to_owned(),
            message: db.message().to_owned(),
        }
    } else {
        SqlError::Failed(format!("{} (SQLSTATE {})", db.message(), code.code()))
    }
}
