//! `rai-backends`: the services that carry rai's protocol between the client, the gateway and the workers.
//!
//! Three interfaces, each with its backends chosen by the configuration: the job queue ([`queue::JobQueue`]: Redis
//! Streams or SQS FIFO), the object store ([`store::ObjectStore`]: a directory or S3) and the job events
//! ([`events::EventBus`]: Redis pub/sub with a capped history, plus job state, claims, cancel requests and
//! heartbeats). The values they carry are `rai-common`'s; this crate adds only the network IO, the connections and
//! what their failures mean.
//!
//! # Layout
//! - [`queue`]: the job queue, with leases, redelivery and dead letters; one contract suite tests both backends.
//! - [`store`]: object storage, streaming both ways; one contract suite tests both backends.
//! - [`events`]: publishing and following job events; job state, claims, cancel requests, heartbeats.
//! - [`keys`]: every Redis key and channel name.
//! - [`connect`]: opening the configured queue and store.
//! - [`aws`]: S3, SQS and STS clients from the config, and AWS failures classified from the SDK's error types.
//! - [`fleet`]: a worker's calls to its EC2 Auto Scaling group (scale-in protection, the drain hook).
//! - [`redis_link`]: Redis connections, and which of their failures are worth a retry.
//! - [`retry`]: the one backoff policy (with jitter) every reconnect and retry uses.
//! - [`errors`]: the error types, one per interface.

pub mod aws;
pub mod connect;
pub mod errors;
pub mod events;
pub mod fleet;
pub mod keys;
pub mod queue;
pub mod redis_link;
pub mod retry;
pub mod store;
