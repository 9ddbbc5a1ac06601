//! `rai`'s exit codes. A finished job's own exit code passes through unchanged (0 when it succeeded); the codes below
//! are rai's own, for outcomes that have no job exit code. They follow conventions shells already know: 124 as
//! coreutils' `timeout`, 130 as an interrupted command.

/// The command did what was asked.
pub const OK: u8 = 0;
/// Bad input on the student's side: an invalid build file, no profile, a bad flag value.
pub const USAGE: u8 = 2;
