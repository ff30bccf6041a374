//! `grant_rules.rs` again, with every node on PostgreSQL: the same test code, the other
//! engine (`common::on_postgres` tells by this binary's name; `UPDHUB_TEST_PG_URL` names the
//! server).

#[path = "grant_rules.rs"]
mod on_postgres;
