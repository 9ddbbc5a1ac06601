//! Bakes a course's client configuration and the source commit into the library at build time.
//!
//! When `RAI_BUILD_CONFIG` names a YAML file, its text becomes a configuration layer just above the built-in
//! defaults, so students of that course need only their profile. Without it the layer is empty.
//!
//! `RAI_COMMIT` (read by `rai_common::LONG_VERSION`) is `RAI_BUILD_COMMIT` when the packaging scripts set it, else,
//! in release builds, what `git` says HEAD is (as ripgrep does), else `unknown`. Debug builds do not ask git, so
//! that a commit does not rebuild every crate of the workspace in the edit-test loop.

use std::path::PathBuf;

include!("build_commit.rs");

fn main() {
    bake_config();
    bake_commit();
}

fn bake_config() {
    println!("cargo:rerun-if-env-changed=RAI_BUILD_CONFIG");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("baked_config.yml");
    let text = match std::env::var("RAI_BUILD_CONFIG") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("RAI_BUILD_CONFIG={path}: cannot read the course config: {e}")
            })
        }
        _ => String::new(),
    };
    std::fs::write(&out, text).expect("cannot write the baked config into OUT_DIR");
}
