//! `backup.rs` again, with every node on PostgreSQL: the same test code, the other engine.

#[path = "backup.rs"]
mod on_postgres;
