//! How a job's end reads when one of its commands ended it: the same words from a worker and from
//! `rai run --local`, so a student reads the same `✱ Job ... failed` line in both.

use std::time::Duration;

use crate::policy::{bytes_text, span_text};

/// A command exited with a non-zero `code`.
pub fn command_failed(command: &str, code: i64) -> String {
    format!("command failed with exit code {code}: {command}")
}

/// The kernel's OOM killer struck in a container limited to `limit` bytes.
pub fn out_of_memory(limit: u64) -> String {
    format!("out of memory (limit {})", bytes_text(limit))
}

/// The job ran past its time `limit`.
pub fn time_limit_exceeded(limit: Duration) -> String {
    format!("time limit {} exceeded", span_text(limit))
}

/// The job was cancelled by `by`.
pub fn cancelled_by(by: &str) -> String {
    format!("cancelled by {by}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_read_with_their_limits() {
        assert_eq!(
            command_failed("make", 3),
            "command failed with exit code 3: make"
        );
        assert_eq!(out_of_memory(64 << 20), "out of memory (limit 64m)");
        assert_eq!(
            time_limit_exceeded(Duration::from_secs(5)),
            "time limit 5s exceeded"
        );
    }
}
