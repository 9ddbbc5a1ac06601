//! Living in an EC2 Auto Scaling group (`raid.fleet`, deploy/aws): the group scales the workers on the jobs waiting
//! per slot, and this module makes sure scaling in never costs a student a job.
//!
//! - While any job runs here, the instance is protected from scale-in, so the group takes idle workers first.
//! - When the group takes this instance away anyway (a termination it chose, an admin's, a rebalance), its
//!   termination lifecycle hook holds the instance in `Terminating:Wait`; raid sees that, drains as on SIGTERM
//!   (nothing new is leased, running jobs get `raid.shutdown_grace`, then go back to the queue), keeps the hook
//!   waiting meanwhile, and once drained tells the group to go on ([`Fleet::finish`]).
//!
//! Asking the group costs one `DescribeAutoScalingInstances` per `check_every`; protection changes only when the
//! worker goes from idle to busy or back, looked at each second (no call when nothing changed).

use std::sync::Arc;
use std::time::Duration;

use rai_backends::fleet::{FleetError, GroupMember, LifecycleState};
use rai_common::Config;

use crate::shutdown::Shutdown;

/// How often the worker's busy-or-idle is looked at (locally; a call only when it changes).
const BUSY_CHECK: Duration = Duration::from_secs(1);

/// This worker's place in its Auto Scaling group.
pub struct Fleet {
    member: GroupMember,
    check_every: Duration,
}

impl Fleet {
    /// The group of `raid.fleet`, or `None` when the worker is in none. Fails when the group does not know this
    /// instance: a worker that cannot protect itself must not start taking jobs.
    pub async fn join(config: &Config) -> Result<Option<Arc<Fleet>>, FleetError> {
        let fleet = &config.raid.fleet;
        let Some(group) = &fleet.group else {
            return Ok(None);
        };
        let sdk = rai_backends::aws::sdk_config(&config.aws).await;
        let member =
            GroupMember::new(&sdk, group, &fleet.drain_hook, fleet.instance_id.as_deref()).await?;
        let state = member.state().await?;
        tracing::info!(
            instance = member.instance(),
            group,
            ?state,
            "in an Auto Scaling group"
        );
        // A worker restarted while busy may have left its protection on; it has no job now.
        member.protect(false).await?;
        Ok(Some(Arc::new(Fleet {
            member,
            check_every: fleet.check_every.as_duration(),
        })))
    }

    /// Protects the instance while jobs run and drains the worker when the group takes the instance away. Runs
    /// until the worker stops (abort it then, and call [`Fleet::finish`]).
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        let mut protected = false;
        let mut terminating = false;
        let mut busy_tick = tokio::time::interval(BUSY_CHECK);
        let mut group_tick = tokio::time::interval(self.check_every);
        busy_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        group_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = busy_tick.tick() => {
                    let busy = shutdown.running() > 0;
                    // Draining for the group: protection would only stand in its way.
                    if busy != protected && !terminating {
                        match self.member.protect(busy).await {
                            Ok(()) => {
                                protected = busy;
                                tracing::debug!(protected, "scale-in protection");
                            }
                            Err(e) => tracing::warn!(error = %rai_backends::errors::chain(&e), "cannot change scale-in protection; trying again"),
                        }
                    }
                }
                _ = group_tick.tick() => {
                    if terminating {
                        if let Err(e) = self.member.heartbeat().await {
                            tracing::warn!(error = %rai_backends::errors::chain(&e), "cannot keep the drain hook waiting");
                        }
                        continue;
                    }
                    match self.member.state().await {
                        Ok(state) if state.is_terminating() => {
                            tracing::warn!(running = shutdown.running(), ?state, "the Auto Scaling group is taking this instance away: draining");
                            terminating = true;
                            shutdown.drain();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %rai_backends::errors::chain(&e), "cannot ask the Auto Scaling group about this instance"),
                    }
                }
            }
        }
    }

    /// After the worker has stopped (its jobs ended or handed back): lifts the protection and, when the group is
    /// waiting for this instance's drain, tells it to go on.
    pub async fn finish(&self) {
        let state = match self.member.state().await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %rai_backends::errors::chain(&e), "cannot ask the Auto Scaling group about this instance");
                return;
            }
        };
        if state == LifecycleState::TerminatingWait {
            match self.member.drained().await {
                Ok(()) => {
                    tracing::info!("drained: the Auto Scaling group may terminate this instance")
                }
                Err(e) => {
                    tracing::error!(error = %rai_backends::errors::chain(&e), "cannot complete the drain hook; the group goes on when it times out")
                }
            }
        } else if let Err(e) = self.member.protect(false).await {
            tracing::warn!(error = %rai_backends::errors::chain(&e), "cannot lift scale-in protection");
        }
    }
}
