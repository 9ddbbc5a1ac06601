//! `rai version`.

pub fn run() -> anyhow::Result<u8> {
    println!("rai {}", rai_common::LONG_VERSION);
    Ok(crate::exit::OK)
}
