//! `rai env`: every environment variable `rai` sees, `NAME=value` one per line, as the 2017 client printed them; for
//! checking what `RAI_PROFILE`, `NO_COLOR` or a proxy setting is when rai does not do what a student expects.

use std::io::Write;

pub fn run() -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    for (name, value) in std::env::vars_os() {
        writeln!(
            out,
            "{}={}",
            name.to_string_lossy(),
            value.to_string_lossy()
        )?;
    }
    Ok(crate::exit::OK)
}
