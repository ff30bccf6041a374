//! One way to run SQL on either engine. Aggregates write their statements once, with
//! PostgreSQL's `$1` placeholders (rewritten to SQLite's `?1`), bind [`Value`]s and read
//! [`Row`]s; [`Conn`] runs them on the engine the node was opened on. Failures are
//! [`SqlError`]s, classified by error code and constraint name, never by message text.

use chrono::{DateTime, Utc};

/// A bound parameter or a column value. updhub stores integers and text only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (BIGINT on PostgreSQL).
    Int(i64),
    /// Text.
    Text(String),
}

/// A Rust value that binds as a [`Value`].
pub trait Param {
    /// The value to bind.
    fn value(&self) -> Value;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Value {
                // u64 counts and sizes beyond i64 do not occur (callers check input bounds);
                // saturating keeps a corrupt one from wrapping negative.
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u64, usize);

impl Param for bool {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl Param for str {
    fn value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Param for String {
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl Param for DateTime<Utc> {
    /// Times are stored as unix seconds.
    fn value(&self) -> Value {
        Value::Int(self.timestamp())
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value {
        (**self).value()
    }
}
impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}
impl Param for Value {
    fn value(&self) -> Value {
        self.clone()
    }
}

/// The parameters of one statement: `args![a, b, c]`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_args {
    ($($x:expr),* $(,)?) => {
        &[$(&$x as &dyn $crate::db::sql::Param),*] as &[&dyn $crate::db::sql::Param]
    };
}
pub use crate::sql_args as args;

/// A Rust value read from a [`Value`].
pub trait FromValue: Sized {
    /// Convert, or say what was found instead.
    ///
    /// # Errors
    /// The value has another type.
    fn from_value(v: &Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        u64::try_from(i).map_err(|_| format!("expected a count, found {i}"))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromValue for DateTime<Utc> {
    fn from_value(v: &Value) -> Result<Self, String> {
        let t = i64::from_value(v)?;
        chrono::TimeZone::timestamp_opt(&Utc, t, 0)
            .single()
            .ok_or_else(|| format!("{t} is no time"))
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    /// Column `i` as a `T`.
    ///
    /// # Errors
    /// [`SqlError::Damaged`] when the column is missing or of another type.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, SqlError> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| SqlError::Damaged(format!("column {i} is missing")))?;
        T::from_value(v).map_err(|why| SqlError::Damaged(format!("column {i}: {why}")))
    }
}

/// Why a statement failed, as the callers need to tell it apart.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SqlError {
    /// Another process or node held a lock for longer than the engine's wait.
    #[error("busy: another updhub process holds the database")]
    Busy,
    /// A database rule refused the change: a named CHECK constraint, a trigger that
    /// refused with a rule name, or a unique or foreign key constraint.
    #[error("{message}")]
    Rule {
        /// The constraint or rule name.
        name: String,
        /// The engine's message.
        message: String,
    },
    /// The transaction lost a race (deadlock, serialization failure): running it again
    /// from the start helps.
    #[error("transaction conflict, retried: {0}")]
    Conflict(String),
    /// A stored value is not what the schema promises.
    #[error("damaged value: {0}")]
    Damaged(String),
    /// The database connection failed or is gone.
    #[error("connection failed: {0}")]
    Connection(String),
    /// Any other failure.
    #[error("{0}")]
    Failed(String),
}

impl SqlError {
    /// The broken rule's name, if a rule refused the change.
    pub fn rule(&self) -> Option<&str> {
        match self {
            SqlError::Rule { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// The error type of a transaction's code: a database failure converts into it, and it says
/// whether it was a lost race, after which the transaction is run again from the start.
pub trait TxFail: From<SqlError> {
    /// The [`SqlError::Conflict`] this is, if it is one.
    fn conflict(&self) -> Option<&SqlError>;
}

impl TxFail for SqlError {
    fn conflict(&self) -> Option<&SqlError> {
        matches!(self, SqlError::Conflict(_)).then_some(self)
    }
}

/// An open transaction (or, for reads, a connection) on either engine.
pub enum Conn<'a> {
    /// SQLite: the connection, inside a transaction or savepoint the caller opened.
    Sqlite(&'a rusqlite::Connection),
    /// PostgreSQL: a transaction on a pooled connection.
    Postgres(&'a super::postgres::PgTx<'a>),
}

impl Conn<'_> {
    /// Whether this is PostgreSQL, for the few statements whose locking differs (SQLite
    /// has one writer at a time; PostgreSQL locks rows).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }

    /// Run a statement; returns the rows it changed.
    ///
    /// # Errors
    /// The statement failed.
    pub fn exec(&self, sql: &str, args: &[&dyn Param]) -> Result<u64, SqlError> {
        match self {
            Conn::Sqlite(c) => super::sqlite::exec(c, sql, args),
            Conn::Postgres(t) => t.exec(sql, args),
        }
    }

    /// Run a query; returns every row.
    ///
    /// # Errors
    /// The query failed.
    pub fn rows(&self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, SqlError> {
        match self {
            Conn::Sqlite(c) => super::sqlite::rows(c, sql, args),
            Conn::Postgres(t) => t.rows(sql, args),
        }
    }

    /// Run a query; returns every row as a `T`.
    ///
    /// # Errors
    /// The query failed, or `f` refused a row.
    pub fn map_rows<T>(
        &self,
        sql: &str,
        args: &[&dyn Param],
        f: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        self.rows(sql, args)?.iter().map(f).collect()
    }

    /// Run a query; returns its first row, if any.
    ///
    /// # Errors
    /// The query failed.
    pub fn row(&self, sql: &str, args: &[&dyn Param]) -> Result<Option<Row>, SqlError> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    /// Run a query for one value: the first column of the first row, if any.
    ///
    /// # Errors
    /// The query failed, or the value has another type.
    pub fn value<T: FromValue>(
        &self,
        sql: &str,
        args: &[&dyn Param],
    ) -> Result<Option<T>, SqlError> {
        self.row(sql, args)?.map(|r| r.get(0)).transpose()
    }

    /// Run a query for one column of every row.
    ///
    /// # Errors
    /// The query failed, or a value has another type.
    pub fn column<T: FromValue>(&self, sql: &str, args: &[&dyn Param]) -> Result<Vec<T>, SqlError> {
        self.rows(sql, args)?.iter().map(|r| r.get(0)).collect()
    }

    /// Run statements without parameters (savepoints).
    ///
    /// # Errors
    /// A statement failed.
    pub fn batch(&self, sql: &str) -> Result<(), SqlError> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(super::sqlite::classify),
            Conn::Postgres(t) => t.batch(sql),
        }
    }

    /// The database's own clock, unix milliseconds: PostgreSQL's `now()` (the time its
    /// transaction started, by the server's clock), SQLite's time (the machine's clock).
    ///
    /// # Errors
    /// The statement failed.
    pub fn now_ms(&self) -> Result<i64, SqlError> {
        let sql = if self.is_postgres() {
            "SELECT floor(extract(epoch FROM now()) * 1000)::bigint"
        } else {
            "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
        };
        self.value(sql, &[])?
            .ok_or_else(|| SqlError::Damaged("the database's clock read nothing".into()))
    }

    /// Give the transaction its one time and the node it runs on, which the schema's rules
    /// and the audit log read (SQLite: the `clock` row; PostgreSQL: the transaction-local
    /// settings `updhub.now` and `updhub.node`, which the `clock` view shows).
    ///
    /// # Errors
    /// The statement failed.
    pub fn set_now(&self, now: DateTime<Utc>, node: &str) -> Result<(), SqlError> {
        match self {
            Conn::Sqlite(_) => self
                .exec(
                    "UPDATE clock SET now = $1, node = $2 WHERE id = 1",
                    args![now, node],
                )
                .map(drop),
            Conn::Postgres(_) => self.batch(&set_now_postgres(now, node)),
        }
    }
}

/// [`Conn::set_now`] on PostgreSQL: a statement without parameters, so the ledger's writer
/// can send it ahead of a request's first statement (see `PgTx::ahead`).
pub(super) fn set_now_postgres(now: DateTime<Utc>, node: &str) -> String {
    format!(
        "SELECT set_config('updhub.now', '{}', true), set_config('updhub.node', {}, true)",
        now.timestamp(),
        pg_literal(node)
    )
}

/// `s` as a PostgreSQL string literal, whatever `standard_conforming_strings` says.
fn pg_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Rewrite PostgreSQL's `$1` placeholders as SQLite's `?1` (outside quoted text).
pub(super) fn sqlite_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('$') {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes_only() {
        assert_eq!(
            sqlite_placeholders("SELECT $1, '$2', $10 WHERE a=$2"),
            "SELECT ?1, '$2', ?10 WHERE a=?2"
        );
        assert_eq!(sqlite_placeholders("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn values_convert_both_ways_and_say_what_they_found() {
        let r = Row(vec![Value::Int(5), Value::Null, Value::Text("x".into())]);
        assert_eq!(r.get::<u64>(0).unwrap(), 5);
        assert_eq!(r.get::<Option<i64>>(1).unwrap(), None);
        assert_eq!(r.get::<String>(2).unwrap(), "x");
        let err = r.get::<i64>(2).unwrap_err().to_string();
        assert!(err.contains("expected an integer"), "{err}");
        assert!(r.get::<String>(3).is_err());
        assert_eq!(Some(3u32).value(), Value::Int(3));
        assert_eq!(None::<String>.value(), Value::Null);
    }

    #[test]
    fn the_clock_statement_quotes_the_node() {
        let t = chrono::TimeZone::timestamp_opt(&Utc, 1_700_000_000, 0).unwrap();
        assert_eq!(
            set_now_postgres(t, r"n'1\"),
            r"SELECT set_config('updhub.now', '1700000000', true), set_config('updhub.node', E'n''1\\', true)"
        );
    }
}
