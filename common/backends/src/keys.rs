//! Every Redis key and channel name rai uses (the queue's, the events', the state's), in one place, so the code, the
//! ACL file (deploy/redis/users.acl) and the docs agree.

use rai_common::job::JobId;

/// The stream of a Redis job queue.
pub fn queue_stream(queue: &str) -> String {
    format!("rai:queue:{queue}")
}

/// The delivery counts of a Redis job queue's messages.
pub fn queue_deliveries(queue: &str) -> String {
    format!("rai:queue:{queue}:deliveries")
}

/// The dead letters of a Redis job queue.
pub fn queue_dead(queue: &str) -> String {
    format!("rai:queue:{queue}:dead")
}

/// The pub/sub channel of a job's live events.
pub fn events_channel(job: &JobId) -> String {
    format!("rai:job:{job}:events")
}

/// The capped stream holding a job's event history.
pub fn event_log(job: &JobId) -> String {
    format!("rai:job:{job}:log")
}

/// A job's event counter (the last `seq` used).
pub fn event_seq(job: &JobId) -> String {
    format!("rai:job:{job}:seq")
}

/// A job's state hash.
pub fn job_state(job: &JobId) -> String {
    format!("rai:job:{job}")
}

/// A job's cancel request (its value: who asked).
pub fn cancel(job: &JobId) -> String {
    format!("rai:job:{job}:cancel")
}

/// Every job the gateways accepted, newest last (scored by acceptance time in ms), for the staff dashboard.
pub const JOB_INDEX: &str = "rai:index:jobs";

/// The jobs of one user, one team or one assignment (`by` is `user`, `team` or `assignment`).
pub fn job_index_by(by: &str, name: &str) -> String {
    format!("rai:index:{by}:{name}")
}

/// A staff dashboard session (its value: the user and the session's CSRF token).
pub fn ui_session(token: &str) -> String {
    format!("rai:ui:session:{token}")
}

/// A dashboard login link's nonce, once it was used.
pub fn ui_link(nonce: &str) -> String {
    format!("rai:ui:link:{nonce}")
}

/// A worker's heartbeat.
pub fn worker(name: &str) -> String {
    format!("rai:worker:{name}")
}

/// The pattern of every worker's heartbeat.
pub const WORKER_PATTERN: &str = "rai:worker:*";

/// Which worker holds a job now (a rerun after a crash finds the dead worker's name here).
pub fn claim(job: &JobId) -> String {
    format!("rai:job:{job}:claim")
}

/// Set once a job is finished: a redelivered or replayed message for it is dropped.
pub fn done(job: &JobId) -> String {
    format!("rai:job:{job}:done")
}

/// The user a job id is bound to, set once by the gateway that first hands out an upload for it.
pub fn owner(job: &JobId) -> String {
    format!("rai:job:{job}:owner")
}

/// The chunks a user's part of the store holds (a set of chunk ids).
pub fn chunks(user: &str) -> String {
    format!("rai:index:chunks:{user}")
}

/// The chunks a job declared as a manifest still has to send (a hash: id -> size).
pub fn missing_chunks(job: &JobId) -> String {
    format!("rai:job:{job}:missing")
}

/// What an upload was declared as (size and SHA-256), so the gateway can check the body against it.
pub fn upload(job: &JobId) -> String {
    format!("rai:job:{job}:upload")
}

/// Set once when a gateway accepts the job: a second submission of the same id is refused.
pub fn accepted(job: &JobId) -> String {
    format!("rai:job:{job}:accepted")
}

/// A request nonce seen from `user`, kept for the signature window so a captured request cannot be replayed.
pub fn nonce(user: &str, nonce: &str) -> String {
    format!("rai:nonce:{user}:{nonce}")
}

/// Set while `user` must wait before submitting again (the course's `min_interval`).
pub fn next_submit(user: &str) -> String {
    format!("rai:rate:{user}:next")
}

/// The jobs admitted for `user` that may still be waiting or running (the course's caps): a sorted set, scored by
/// when each was admitted (ms).
pub fn admitted_jobs(user: &str) -> String {
    format!("rai:rate:{user}:admitted")
}

/// `user`'s uploads declared and not yet submitted: a sorted set, scored by when each was declared (ms).
pub fn pending_uploads(user: &str) -> String {
    format!("rai:rate:{user}:uploads")
}

/// The bytes of uploads `user` declared on a UTC day (`2026-12-05`).
pub fn upload_bytes(user: &str, day: &str) -> String {
    format!("rai:rate:{user}:bytes:{day}")
}

/// Every upload declared into the store `scope` and not yet submitted (`user job`), scored by when it was declared
/// (ms): the store sweep deletes those that expire. (`scope` names the store, so courses, or tests, sharing one
/// Redis never sweep each other's.)
pub fn pending_uploads_index(scope: &str) -> String {
    format!("rai:index:uploads:{scope}")
}

/// Held by the gateway whose turn it is to sweep the store `scope` (one per `store.retention.sweep_every`).
pub fn sweep_turn(scope: &str) -> String {
    format!("rai:sweep:{scope}")
}

/// The GPU-seconds `user`'s finished jobs used in a window (`d2026-12-03`, `w2026-49`).
pub fn gpu_seconds(user: &str, window: &str) -> String {
    format!("rai:rate:{user}:gpu:{window}")
}

/// The jobs submitted so far of a user's sweep (a sweep counts once against the rate limit, and never makes more
/// jobs than its matrix).
pub fn sweep_jobs(user: &str, sweep: &str) -> String {
    format!("rai:rate:sweep:{user}:{sweep}")
}

/// A user's submissions in the current minute (the gateway's rate limit).
pub fn submit_count(user: &str, minute: i64) -> String {
    format!("rai:rate:{user}:{minute}")
}
