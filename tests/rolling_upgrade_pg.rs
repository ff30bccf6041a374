//! `rolling_upgrade.rs` again, on PostgreSQL: the same test code, the other engine
//! (`common::on_postgres` tells by this binary's name; `UPDHUB_TEST_PG_URL` names the
//! server, which `.ci/run` starts). The cluster's test runs only here.

#[path = "rolling_upgrade.rs"]
mod on_postgres;
