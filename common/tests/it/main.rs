//! rai-common's integration tests: archives, build-file fixtures, parsers that never panic, and the house rules
//! checked over the whole workspace.
//!
//! One test binary per crate (each module was its own binary before): the crate and its dependencies link once.

mod archive;
mod build_file_fixtures;
mod house;
mod no_panic;
