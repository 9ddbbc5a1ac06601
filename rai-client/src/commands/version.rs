//! `rai version` (`rai buildinfo`, as the 2017 client also called it) and `rai buildtime`.
//!
//! The first line is rai's own; the `BuildDate:` and `GitCommit:` lines are the 2017 client's, two spaces after the
//! colon as it printed them, so that a course script reading them still finds them.

pub fn run() -> anyhow::Result<u8> {
    println!("rai {}", rai_common::LONG_VERSION);
    println!("BuildDate:  {}", rai_common::BUILD_DATE);
    println!("GitCommit:  {}", rai_common::COMMIT);
    Ok(crate::exit::OK)
}

/// `rai buildtime`: the date of the commit rai was built from.
pub fn build_time() -> anyhow::Result<u8> {
    println!("BuildDate:  {}", rai_common::BUILD_DATE);
    Ok(crate::exit::OK)
}
