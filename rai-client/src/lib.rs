//! The student's client, `rai`.
//!
//! `rai` checks a project's build file, signs a job with the student's profile, uploads the project, and follows the
//! job's output live. This library holds all of it; `main.rs` only parses flags and turns errors into exit codes.
//!
//! # Layout
//! - [`client`]: the gateway's client ([`Client`]): submit, follow, status, cancel, history, download, each request
//!   signed with the student's key.
//! - [`cli`]: the command line (clap), including the 2017 form `rai -p DIR`.
//! - [`commands`]: one file per command.
//! - [`canvas`]: graded submissions as a Canvas gradebook import.
//! - [`context`]: what every command may need: configuration, profile, project directory.
//! - [`follow`]: printing a job's events as they come.
//! - [`project`]: a project directory sent as a job's input: as chunks the gateway lacks, or as an archive.
//! - [`memory`]: how the client's allocator hands freed buffers back (glibc).
//! - [`local`]: `rai run --local`, a project run in this machine's Docker engine in the workers' sandbox.
//! - [`terminal`]: job output made safe to show on a terminal.
//! - [`exit`]: the documented exit codes (defined in `rai_common::exit`).

pub mod canvas;
pub mod cli;
pub mod client;
pub mod commands;
pub mod context;
pub use rai_common::exit;
pub mod follow;
pub mod local;
pub mod memory;
pub mod project;
pub mod terminal;

pub use client::{Client, ClientError};
