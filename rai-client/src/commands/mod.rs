//! One module per command; each exposes `run` and returns the process exit code.

pub mod cancel;
pub mod completions;
pub mod dashboard;
pub mod datasets;
pub mod deadletters;
pub mod download;
pub mod env;
pub mod extensions;
pub mod history;
pub mod init;
pub mod license;
pub mod logs;
pub mod ranking;
pub mod regrade;
pub mod results;
pub mod run;
pub mod status;
pub mod submissions;
pub mod submit;
pub mod submitted;
mod sweep;
pub mod usage;
pub mod validate;
pub mod version;
pub mod whoami;
pub mod workers;
