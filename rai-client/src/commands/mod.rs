//! One module per command; each exposes `run` and returns the process exit code.

pub mod init;
pub mod validate;
pub mod version;
pub mod whoami;
