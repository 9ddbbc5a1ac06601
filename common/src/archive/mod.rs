//! Project archives: a directory packed as tar + zstd, and unpacked without trusting a byte of it.
//!
//! The client packs a student's project for upload and the worker unpacks it; the worker packs `/build` and the
//! client unpacks it. Both directions use this module, so both get the same guarantees: packing honours
//! `.raiignore` and `.gitignore`, skips `.git` and profiles, never follows a link out of the directory, and refuses
//! a directory over its caps naming the largest offenders; unpacking writes nothing outside the target directory
//! whatever the archive says, and stops at byte and entry caps (compression bombs).
//!
//! Both sides run on two threads, because tar and zstd each keep a core busy: packing feeds zstd's multithreaded
//! encoder, and unpacking decompresses on one thread while the other writes files.

mod links;
mod pack;
mod unpack;

pub use links::resolves_inside;
pub(crate) use pack::link_stays_inside;
pub use pack::{
    PackOptions, PackProgress, PackSummary, ScannedEntry, SkippedEntry, pack, pack_scanned, scan,
};
pub use unpack::{Existing, UnpackLimits, UnpackSummary, unpack, unpack_into};

/// The compression level both sides use (zstd's default: fast, and most of the gain).
pub const ZSTD_LEVEL: i32 = 3;
