//! `failover.rs` again, on PostgreSQL: the same test code, the other engine
//! (`common::on_postgres` tells by this binary's name; `UPDHUB_TEST_PG_URL` names the
//! server, which `.ci/run` starts). The tests of a two-member cluster run only here.

#[path = "failover.rs"]
mod on_postgres;
