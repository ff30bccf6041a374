//! `update_cycle.rs` again, with every node on PostgreSQL: the same test code, the other
//! engine (`common::on_postgres` tells by this binary's name).

#[path = "update_cycle.rs"]
mod on_postgres;
