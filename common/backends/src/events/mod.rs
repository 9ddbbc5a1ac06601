//! Job events: the live output of a job and its history, over Redis.
//!
//! Every event is one JSON object, `{"seq": n, "ts": rfc3339, "kind": ..., ...}`, with `seq` counting from 1 per job
//! and never skipping or repeating, even when a job is rerun on another worker after a crash. A worker publishes
//! through a [`JobPublisher`]; one server-side script takes the next `seq` from the job's counter, appends the event
//! to the job's capped log stream and PUBLISHes it on the job's channel, so the live path and the history can never
//! disagree. A client [`follow`](EventBus::follow)s a job: it subscribes first, replays the history, then prints live
//! events newer than the last it printed; after a dropped connection or a Redis restart it reconnects and fills the
//! gap from the history. The result is every event exactly once, in order, from any machine, at any time within the
//! retention.
//!
//! A gateway follows many jobs at once through one [`EventHub`]: one Redis subscription for all of them, fanned
//! out, with the same every-event-once guarantee.
//!
//! Job state (the `rai:job:<id>` hash), job claims, cancel requests and worker heartbeats live beside the events, in
//! [`state`]; the index of jobs and the dashboard's sessions in [`index`]. A finished job's log moves to the object
//! store ([`archive`]), and Redis keeps it only an hour more. The event types themselves are the protocol's (`rai_common::event`).

pub mod archive;
mod bus;
mod chunks;
mod hub;
pub mod index;
mod ownership;
pub mod quota;
pub mod state;
pub mod uploads;

pub use bus::{EventBus, EventStream, FollowOptions, JobPublisher};
pub use hub::EventHub;
pub use ownership::Binding;
