//! rai-backends' integration tests: one contract suite per interface, on the local services.
//!
//! One test binary per crate (each module was its own binary before): the crate and its dependencies link once.

mod deploy_aws;
mod events;
mod queue_contract;
mod redis_acl;
mod redis_tls;
mod store_contract;
mod test_stack;
