//! The worker's side of an EC2 Auto Scaling group (`raid.fleet`, deploy/aws): the few calls raid makes so that the
//! group never takes away an instance while it runs a job, and waits for it to drain when it does take one.
//!
//! Scale-in protection says "busy" to the group; a termination lifecycle hook holds an instance the group takes away
//! in `Terminating:Wait` until raid has drained and says `CompleteLifecycleAction`. What to do when is raid's
//! (raid-server's `fleet` module); this is only the network IO and what its failures mean.

use std::fmt;

use aws_sdk_autoscaling::Client;
use aws_types::SdkConfig;

/// A failed call to the Auto Scaling API or to the instance metadata service.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "cannot ask the instance metadata service for this instance's id (set raid.fleet.instance_id off EC2)"
    )]
    InstanceId(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("Auto Scaling {call} for {instance} in group {group} failed")]
    Call {
        call: &'static str,
        group: String,
        instance: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "instance {instance} is not in an Auto Scaling group (raid.fleet.group says {group}: check the name, or \
         set it to ~ for a worker outside a group)"
    )]
    NotInGroup { group: String, instance: String },
}

/// Where an instance is in its group's life, as far as raid cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleState {
    /// In service (or on its way in): run jobs.
    InService,
    /// The group is taking it away and waits for the drain hook (`Terminating:Wait`).
    TerminatingWait,
    /// The group is taking it away and waits for nobody (no hook, or the hook gave up): drain at once.
    Terminating,
    /// Any other state (`Standby`, `Detaching`, ...), as AWS names it.
    Other(String),
}

impl LifecycleState {
    fn parse(s: &str) -> LifecycleState {
        match s {
            "InService" | "Pending" | "Pending:Wait" | "Pending:Proceed" => {
                LifecycleState::InService
            }
            "Terminating:Wait" => LifecycleState::TerminatingWait,
            "Terminating" | "Terminating:Proceed" | "Terminated" => LifecycleState::Terminating,
            other => LifecycleState::Other(other.to_owned()),
        }
    }

    /// Whether the group is taking the instance away.
    pub fn is_terminating(&self) -> bool {
        matches!(
            self,
            LifecycleState::TerminatingWait | LifecycleState::Terminating
        )
    }
}

/// One instance in one Auto Scaling group, with the name of the termination hook that waits for it.
#[derive(Clone)]
pub struct GroupMember {
    client: Client,
    group: String,
    hook: String,
    instance: String,
}

impl fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.instance, self.group)
    }
}

impl GroupMember {
    /// `instance` is this instance's id, or `None` to ask the instance metadata service (IMDSv2) for it.
    pub async fn new(
        sdk: &SdkConfig,
        group: &str,
        hook: &str,
        instance: Option<&str>,
    ) -> Result<GroupMember, FleetError> {
        let instance = match instance {
            Some(id) => id.to_owned(),
            None => aws_config::imds::Client::builder()
                .build()
                .get("/latest/meta-data/instance-id")
                .await
                .map_err(|e| FleetError::InstanceId(Box::new(e)))?
                .as_ref()
                .to_owned(),
        };
        Ok(GroupMember {
            client: Client::new(sdk),
            group: group.to_owned(),
            hook: hook.to_owned(),
            instance,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    fn failed(
        &self,
        call: &'static str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> FleetError + '_ {
        move |source| FleetError::Call {
            call,
            group: self.group.clone(),
            instance: self.instance.clone(),
            source,
        }
    }

    /// Where the group has this instance now.
    pub async fn state(&self) -> Result<LifecycleState, FleetError> {
        let out = self
            .client
            .describe_auto_scaling_instances()
            .instance_ids(&self.instance)
            .send()
            .await
            .map_err(|e| self.failed("DescribeAutoScalingInstances")(Box::new(e)))?;
        let me = out
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(self.instance.as_str()))
            .filter(|i| i.auto_scaling_group_name() == Some(self.group.as_str()));
        match me.and_then(|i| i.lifecycle_state()) {
            Some(state) => Ok(LifecycleState::parse(state)),
            None => Err(FleetError::NotInGroup {
                group: self.group.clone(),
                instance: self.instance.clone(),
            }),
        }
    }

    /// Protects the instance from scale-in (while it runs jobs) or lifts the protection.
    pub async fn protect(&self, protected: bool) -> Result<(), FleetError> {
        self.client
            .set_instance_protection()
            .auto_scaling_group_name(&self.group)
            .instance_ids(&self.instance)
            .protected_from_scale_in(protected)
            .send()
            .await
            .map_err(|e| self.failed("SetInstanceProtection")(Box::new(e)))?;
        Ok(())
    }

    /// Keeps the drain hook waiting (its timeout starts again).
    pub async fn heartbeat(&self) -> Result<(), FleetError> {
        self.client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&self.group)
            .lifecycle_hook_name(&self.hook)
            .instance_id(&self.instance)
            .send()
            .await
            .map_err(|e| self.failed("RecordLifecycleActionHeartbeat")(Box::new(e)))?;
        Ok(())
    }

    /// Lets the group go on terminating the instance: it has drained.
    pub async fn drained(&self) -> Result<(), FleetError> {
        self.client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&self.group)
            .lifecycle_hook_name(&self.hook)
            .instance_id(&self.instance)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(|e| self.failed("CompleteLifecycleAction")(Box::new(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_states_read_as_aws_names_them() {
        assert_eq!(
            LifecycleState::parse("InService"),
            LifecycleState::InService
        );
        assert_eq!(
            LifecycleState::parse("Pending:Wait"),
            LifecycleState::InService
        );
        assert!(LifecycleState::parse("Terminating:Wait").is_terminating());
        assert_eq!(
            LifecycleState::parse("Terminating:Wait"),
            LifecycleState::TerminatingWait
        );
        assert!(LifecycleState::parse("Terminating:Proceed").is_terminating());
        assert_eq!(
            LifecycleState::parse("Standby"),
            LifecycleState::Other("Standby".into())
        );
        assert!(!LifecycleState::parse("Standby").is_terminating());
    }
}
