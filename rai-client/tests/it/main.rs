//! The `rai` binary's integration tests: whole systems of `raid` and `rai` processes on both stacks.
//!
//! One test binary per crate (each module was its own binary before): the crate and its dependencies link once.

mod chaos;
mod chunked;
mod dashboard;
mod e2e;
mod errors;
mod gpus;
mod grading;
mod hostile;
mod hosts_apart;
mod identity;
mod kill_points;
mod offline_commands;
mod operability;
