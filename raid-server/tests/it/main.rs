//! raid's integration tests: the worker in process and as `raid` processes, on the real Docker engine.
//!
//! One test binary per crate (each module was its own binary before): the crate and its dependencies link once.

mod deploy_files;
mod doctor;
mod gateway;
mod gpus;
mod harness;
mod jobs;
mod limits;
mod network;
mod old_projects;
mod packages;
mod prepared;
mod process;
mod term;
mod worker;
