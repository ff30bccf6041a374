//! `json_output.rs` again, with every node on PostgreSQL (and a second member): the same
//! test code, the other engine.

#[path = "json_output.rs"]
mod on_postgres;
