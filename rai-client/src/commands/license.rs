//! `rai license`: the licence rai is distributed under (the 2017 client printed its NCSA licence; rai is under the
//! Apache License 2.0, the workspace's `license`).

/// The text of the repository's LICENSE file.
const LICENSE: &str = include_str!("../../../LICENSE");

pub fn run() -> anyhow::Result<u8> {
    print!("{LICENSE}");
    Ok(crate::exit::OK)
}
