//! `rai`'s exit codes. A finished job's own exit code passes through unchanged (0 when it succeeded, the failing
//! command's code when it failed); the codes below are rai's own, for outcomes that have no job exit code. They follow
//! conventions shells already know: 124 as coreutils' `timeout`, 130 an interrupted command, 143 a terminated one.

/// The command did what was asked.
pub const OK: u8 = 0;
/// A batch (`rai regrade`) in which some jobs failed or could not be queued; the summary says which.
pub const SOME_FAILED: u8 = 1;
/// Bad input or setup on the student's side: an invalid build file, no profile, an unreachable service.
pub const USAGE: u8 = 2;
/// `--timeout` ran out: rai stopped waiting; the job goes on.
pub const WAIT_TIMEOUT: u8 = 75;
/// The worker could not run the job for a reason of its own.
pub const WORKER_ERROR: u8 = 70;
/// The job hit its time limit.
pub const TIMED_OUT: u8 = 124;
/// The gateway or the worker refused the job (account, signature, policy, rate, upload).
pub const REJECTED: u8 = 125;
/// Ctrl-C: rai detached; the job goes on.
pub const DETACHED: u8 = 130;
/// The job was cancelled.
pub const CANCELLED: u8 = 143;

/// The exit code for how a job ended.
pub fn for_end(status: crate::event::JobStatus, exit_code: Option<i64>) -> u8 {
    use crate::event::JobStatus::*;
    match status {
        Succeeded => OK,
        Failed => exit_code.map(|c| c.clamp(1, 255) as u8).unwrap_or(1),
        TimedOut => TIMED_OUT,
        Rejected => REJECTED,
        Cancelled => CANCELLED,
        _ => WORKER_ERROR,
    }
}
