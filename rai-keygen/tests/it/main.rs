//! `rai-keygen`'s integration tests: the binary as an instructor runs it, and its mail against a real SMTP server.
//!
//! One test binary for the crate, as in the others.

mod cli;
mod mail;
