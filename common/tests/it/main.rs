//! rai-common's integration tests: archives, build-file fixtures, parsers that never panic.
//!
//! One test binary per crate (each module was its own binary before): the crate and its dependencies link once.

mod archive;
mod build_file_fixtures;
mod no_panic;
