//! Bakes a course's client configuration into the library at build time.
//!
//! When `RAI_BUILD_CONFIG` names a YAML file, its text becomes a configuration layer just above the built-in
//! defaults, so students of that course need only their profile. Without it the layer is empty.

use std::path::PathBuf;

fn main() {
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
