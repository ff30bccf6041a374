//! The publisher role on a top parent's members: which of its background tasks run only
//! on the member that holds the role (the lease [`crate::leases::PUBLISHER`], held by
//! [`crate::leases::hold_role`]).
//!
//! Under the role: the scheduled mirror and publish (the cluster's versions come from one
//! member's zone reading; two members publishing their own readings would undo each
//! other), re-signing (one signer of the cluster's pointer) and the periodic activation
//! rule (the stage timeout and the drop-out of silent children, applied by one member).
//! Not under it: serving what the cluster published (`CatchUp`, every member), and the
//! activation a child's report triggers on the member it reports to (a compare-and-set on
//! the staged number the publisher gave, which cannot create a version). A publish is
//! fenced in the database too ([`crate::db::Db::publish`]): an old publisher whose round
//! outlived its role is refused, whatever this flag said when the round started.

use std::time::Duration;

use tokio::sync::watch;

use super::tasks::Task;
use crate::leases::ClusterTask;

/// A task that runs only while this process holds the publisher role.
pub struct OnPublisher<T> {
    /// The task.
    pub task: T,
    /// Whether this process holds the role now (sent by [`crate::leases::hold_role`]).
    pub role: watch::Receiver<bool>,
}

impl<T> OnPublisher<T> {
    fn held(&self) -> bool {
        *self.role.borrow()
    }
}

impl<T: Task> Task for OnPublisher<T> {
    fn name(&self) -> &'static str {
        self.task.name()
    }

    fn every(&self) -> Duration {
        self.task.every()
    }

    fn at_start(&self) -> bool {
        self.task.at_start()
    }

    async fn round(&mut self) {
        if self.held() {
            self.task.round().await;
        }
    }
}

impl<T: ClusterTask + Sync> ClusterTask for OnPublisher<T> {
    fn name(&self) -> &'static str {
        self.task.name()
    }

    /// Off on a standby: its lease runner gives the task's lease back, and the publisher
    /// takes it.
    fn period(&self) -> Option<Duration> {
        self.task.period().filter(|_| self.held())
    }

    fn run(
        &mut self,
        due_ms: i64,
    ) -> impl std::future::Future<Output = Result<String, String>> + Send {
        self.task.run(due_ms)
    }

    fn retry_within(&self) -> Option<Duration> {
        self.task.retry_within()
    }
}
