//! One contract, two backends: every test here runs unchanged against the Redis Streams queue (on the test Redis)
//! and the SQS queue (on moto).
//!
//! Over 450 lines: the contract every queue backend meets, one test per promise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rai_backends::queue::{Depth, JobQueue, RedisQueue, SqsQueue};
use tokio::sync::Mutex;

const LEASE: Duration = Duration::from_secs(2);
/// For tests that hold leases across waits and are not about leases running out: on a loaded CI machine a test can
/// take longer than [`LEASE`], and a lease that ran out hands its message to the next receive.
const HELD: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Redis,
    Sqs,
}

use rai_testkit::aws_config;

/// Opens a handle (a consumer of its own) on the queue `name`, creating it when needed.
async fn open(backend: Backend, name: &str, max_deliveries: u32) -> Arc<dyn JobQueue> {
    open_with_lease(backend, name, max_deliveries, LEASE).await
}

async fn open_with_lease(
    backend: Backend,
    name: &str,
    max_deliveries: u32,
    lease: Duration,
) -> Arc<dyn JobQueue> {
    match backend {
        Backend::Redis => Arc::new(
            RedisQueue::connect(&rai_testkit::redis_url(), name, lease, max_deliveries)
                .await
                .unwrap(),
        ),
        Backend::Sqs => {
            let sdk = rai_backends::aws::sdk_config(&aws_config()).await;
            let client = rai_backends::aws::sqs_client(&sdk);
            Arc::new(
                SqsQueue::create(
                    client,
                    rai_testkit::aws_endpoint(),
                    name,
                    lease,
                    max_deliveries,
                )
                .await
                .unwrap(),
            )
        }
    }
}

fn queue_name() -> String {
    rai_testkit::unique("q").replace(':', "-")
}

async fn leased_message_is_invisible_until_its_lease_ends(b: Backend) {
    let name = queue_name();
    let (c1, c2) = (open(b, &name, 5).await, open(b, &name, 5).await);
    c1.send("job-a").await.unwrap();
    let got = c1.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].body.as_str(), got[0].deliveries), ("job-a", 1));
    assert!(
        c2.receive(1, Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty(),
        "{b:?}: leased message visible"
    );
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    let again = c2.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "{b:?}: an abandoned lease must return the message"
    );
    assert_eq!(
        (again[0].id.as_str(), again[0].deliveries),
        (got[0].id.as_str(), 2)
    );
}

async fn extended_lease_keeps_it_invisible(b: Backend) {
    let name = queue_name();
    let (c1, c2) = (open(b, &name, 5).await, open(b, &name, 5).await);
    c1.send("job-b").await.unwrap();
    let got = c1.receive(1, Duration::from_secs(5)).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        c1.extend(&got[0]).await.unwrap();
        assert!(
            c2.receive(1, Duration::ZERO).await.unwrap().is_empty(),
            "{b:?}: extended lease leaked"
        );
    }
    c1.ack(&got[0]).await.unwrap();
}

async fn acked_message_never_returns(b: Backend) {
    let name = queue_name();
    let (c1, c2) = (open(b, &name, 5).await, open(b, &name, 5).await);
    c1.send("job-c").await.unwrap();
    let got = c1.receive(1, Duration::from_secs(5)).await.unwrap();
    c1.ack(&got[0]).await.unwrap();
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    assert!(
        c2.receive(1, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty(),
        "{b:?}: acked message came back"
    );
}

async fn released_message_returns_at_once(b: Backend) {
    let name = queue_name();
    let (c1, c2) = (open(b, &name, 5).await, open(b, &name, 5).await);
    c1.send("job-d").await.unwrap();
    let got = c1.receive(1, Duration::from_secs(5)).await.unwrap();
    let waiter = {
        let c2 = c2.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (
                c2.receive(1, Duration::from_secs(10)).await.unwrap(),
                t.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    c1.release(&got[0]).await.unwrap();
    let (again, waited) = waiter.await.unwrap();
    assert_eq!(again.len(), 1, "{b:?}");
    assert_eq!((again[0].body.as_str(), again[0].deliveries), ("job-d", 2));
    assert!(
        waited < LEASE,
        "{b:?}: a released message came back only after {waited:?}, not at once"
    );
}

async fn over_delivered_message_goes_to_the_dead_letters(b: Backend) {
    let name = queue_name();
    let c = open(b, &name, 2).await;
    c.send("poison").await.unwrap();
    c.send("healthy").await.unwrap();
    let mut poison_deliveries = 0;
    let mut healthy_done = false;
    for _ in 0..6 {
        for lease in c.receive(2, Duration::from_secs(1)).await.unwrap() {
            if lease.body == "poison" {
                poison_deliveries += 1;
                c.release(&lease).await.unwrap();
            } else {
                c.ack(&lease).await.unwrap();
                healthy_done = true;
            }
        }
    }
    assert!(healthy_done);
    assert_eq!(
        poison_deliveries, 2,
        "{b:?}: delivered more often than the maximum"
    );
    let dead = c.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["poison"],
        "{b:?}"
    );
    assert_eq!(c.depth().await.unwrap().dead, 1, "{b:?}");
    // Staff take a dead letter out (after sending it again, or to drop it): it is gone, once.
    assert!(
        !c.remove_dead_letter("no-such-message").await.unwrap(),
        "{b:?}"
    );
    assert_eq!(c.dead_letters(10).await.unwrap().len(), 1, "{b:?}");
    assert!(c.remove_dead_letter(&dead[0].id).await.unwrap(), "{b:?}");
    assert!(!c.remove_dead_letter(&dead[0].id).await.unwrap(), "{b:?}");
    assert!(c.dead_letters(10).await.unwrap().is_empty(), "{b:?}");
}

/// Acks per message id, and the ids each body was acked under.
type Acks = (HashMap<String, u32>, HashMap<String, Vec<String>>);

async fn thousand_messages_are_each_acked_exactly_once(b: Backend) {
    let name = queue_name();
    let producers: Vec<_> = (0..10)
        .map(|p| {
            let name = name.clone();
            tokio::spawn(async move {
                let q = open(b, &name, 5).await;
                for i in 0..100 {
                    q.send(&format!("m-{p}-{i}")).await.unwrap();
                }
            })
        })
        .collect();
    // Per message id: how often it was acked; per body: the ids it was acked under.
    let acked: Arc<Mutex<Acks>> = Arc::default();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let (name, acked) = (name.clone(), acked.clone());
            tokio::spawn(async move {
                // A lease long enough that a slow moto never lets one run out mid-batch (this test is about
                // delivery, not expiry), yet short enough that a receive whose reply was lost on the way (the SDK
                // then retries; the messages it leased come back after the lease) is recovered well within the
                // deadline.
                let q = open_with_lease(b, &name, 5, Duration::from_secs(60)).await;
                let deadline = Instant::now() + Duration::from_secs(420);
                while acked.lock().await.1.len() < 1000 && Instant::now() < deadline {
                    for lease in q.receive(10, Duration::from_secs(2)).await.unwrap() {
                        q.ack(&lease).await.unwrap();
                        let mut a = acked.lock().await;
                        *a.0.entry(lease.id.clone()).or_default() += 1;
                        a.1.entry(lease.body.clone())
                            .or_default()
                            .push(lease.id.clone());
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    for c in consumers {
        c.await.unwrap();
    }
    let acked = acked.lock().await;
    assert_eq!(acked.1.len(), 1000, "{b:?}: not every message was acked");
    let twice: Vec<_> = acked.0.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "{b:?}: a message was acked more than once: {twice:?}"
    );
    // A body stored under two ids was sent twice (a send whose reply was lost, retried by the SDK): the SQS FIFO
    // queue's deduplication id must drop the repeat.
    let resent: Vec<_> = acked.1.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        resent.is_empty(),
        "{b:?}: a body under several ids: {resent:?}"
    );
}

async fn oversized_message_is_refused_before_sending(b: Backend) {
    let q = open(b, &queue_name(), 5).await;
    let e = q.send(&"x".repeat(300 * 1024)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the job message is 307200 bytes, over the queue's limit of 262144 bytes"
    );
}

async fn depth_counts_waiting_and_leased_messages(b: Backend) {
    let q = open_with_lease(b, &queue_name(), 5, HELD).await;
    assert_eq!(
        q.depth().await.unwrap(),
        Depth::default(),
        "{b:?}: a new queue"
    );
    q.send("one").await.unwrap();
    q.send("two").await.unwrap();
    let got = q.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            waiting: 1,
            leased: 1,
            dead: 0
        },
        "{b:?}"
    );
    q.ack(&got[0]).await.unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        Depth {
            waiting: 1,
            leased: 0,
            dead: 0
        },
        "{b:?}: an acked message is gone"
    );
}

/// One group per user: a group's next message waits while its first is waiting or leased; other groups' messages
/// are served meanwhile; acking (or releasing and acking) the first lets the next in, behind the others.
async fn groups_are_served_in_turn_one_message_each(b: Backend) {
    let name = queue_name();
    let (c1, c2) = (
        open_with_lease(b, &name, 5, HELD).await,
        open_with_lease(b, &name, 5, HELD).await,
    );
    for body in ["a1", "a2", "a3"] {
        c1.send_in_group(body, "alice").await.unwrap();
    }
    c1.send_in_group("b1", "bob").await.unwrap();
    let wait = Duration::from_secs(3);
    let a1 = c1.receive(1, wait).await.unwrap();
    assert_eq!(
        a1.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["a1"],
        "{b:?}"
    );
    // alice's next waits behind a1 although it was sent before bob's.
    let b1 = c2.receive(10, wait).await.unwrap();
    assert_eq!(
        b1.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["b1"],
        "{b:?}"
    );
    // (A receive that does not wait: one that waits may start a2 on Redis, as the next test shows.)
    assert!(
        c2.receive(10, Duration::ZERO).await.unwrap().is_empty(),
        "{b:?}: a2 came while a1 was out"
    );
    // A released message keeps its place as its group's one.
    c1.release(&a1[0]).await.unwrap();
    let a1 = c1.receive(10, wait).await.unwrap();
    assert_eq!(
        a1.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["a1"],
        "{b:?}"
    );
    c1.ack(&a1[0]).await.unwrap();
    let a2 = c2.receive(10, wait).await.unwrap();
    assert_eq!(
        a2.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["a2"],
        "{b:?}"
    );
    c2.ack(&a2[0]).await.unwrap();
    c2.ack(&b1[0]).await.unwrap();
    let a3 = c1.receive(10, wait).await.unwrap();
    assert_eq!(
        a3.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["a3"],
        "{b:?}"
    );
    c1.ack(&a3[0]).await.unwrap();
    if b == Backend::Redis {
        assert_eq!(
            c1.depth().await.unwrap(),
            rai_backends::queue::Depth::default()
        );
    }
}

/// Turn-taking wastes no slot (Redis): a receive that waits, finding nothing waiting, starts a group's next held
/// message, leased to it at once (a busy worker polling ahead never sees it); another group's message sent
/// meanwhile is served first; the group goes back to one at a time as its messages end, and nothing is lost or
/// doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_runs_one_groups_held_messages_at_once() {
    let name = queue_name();
    let (q, busy) = (
        open_with_lease(Backend::Redis, &name, 5, HELD).await,
        open_with_lease(Backend::Redis, &name, 5, HELD).await,
    );
    for body in ["a1", "a2", "a3", "a4"] {
        q.send_in_group(body, "alice").await.unwrap();
    }
    let bodies =
        |l: &[rai_backends::queue::Lease]| l.iter().map(|l| l.body.clone()).collect::<Vec<_>>();
    let wait = Duration::from_secs(3);
    let a1 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&a1), ["a1"]);
    // Nothing waits: a receive that waits starts alice's next one; one that does not wait, or a worker getting a
    // job ready ahead of its slot, never does.
    assert!(q.receive(1, Duration::ZERO).await.unwrap().is_empty());
    assert!(busy.receive_ahead(1).await.unwrap().is_empty());
    let a2 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&a2), ["a2"]);
    assert!(
        busy.receive_ahead(1).await.unwrap().is_empty(),
        "a2 is leased to its borrower"
    );
    // Bob's job, sent now, goes first: borrowing stops while anyone waits.
    q.send_in_group("b1", "bob").await.unwrap();
    let b1 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&b1), ["b1"]);
    assert_eq!(q.depth().await.unwrap().waiting, 2, "a3 and a4 held");
    // alice had two in the stream: ending one lets none in; ending both lets a3 in (it does not need to borrow).
    q.ack(&a1[0]).await.unwrap();
    assert_eq!(q.depth().await.unwrap().waiting, 2);
    q.ack(&a2[0]).await.unwrap();
    let a3 = q.receive(1, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&a3), ["a3"]);
    q.ack(&b1[0]).await.unwrap();
    let a4 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&a4), ["a4"]);
    q.ack(&a3[0]).await.unwrap();
    q.ack(&a4[0]).await.unwrap();
    assert!(
        q.receive(1, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        q.depth().await.unwrap(),
        rai_backends::queue::Depth::default()
    );
}

/// Borrowing waits for a quiet queue (Redis, `queue.borrow_quiet`): a group's own sends never hold its borrowing
/// back, another group's recent send does (the next arrival would find the slot filled), until the quiet time has
/// passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borrowing_waits_until_other_groups_go_quiet() {
    let name = queue_name();
    let quiet = Duration::from_secs(2);
    let q = RedisQueue::connect(&rai_testkit::redis_url(), &name, HELD, 5)
        .await
        .unwrap()
        .with_borrow_quiet(quiet);
    let bodies =
        |l: &[rai_backends::queue::Lease]| l.iter().map(|l| l.body.clone()).collect::<Vec<_>>();
    for body in ["a1", "a2", "a3"] {
        q.send_in_group(body, "alice").await.unwrap();
    }
    let wait = Duration::from_secs(3);
    let a1 = q.receive(1, wait).await.unwrap();
    let a2 = q.receive(1, wait).await.unwrap();
    assert_eq!(
        (bodies(&a1), bodies(&a2)),
        (vec!["a1".to_string()], vec!["a2".to_string()]),
        "only alice sent: her next job is borrowed at once"
    );
    let bob_sends = Instant::now();
    q.send_in_group("b1", "bob").await.unwrap();
    let b1 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&b1), ["b1"]);
    assert!(
        q.receive(1, Duration::from_millis(900))
            .await
            .unwrap()
            .is_empty(),
        "bob sent just now: a3 is not borrowed"
    );
    let a3 = q.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(bodies(&a3), ["a3"]);
    assert!(
        bob_sends.elapsed() >= quiet,
        "borrowed {:?} after bob's send, before the quiet time",
        bob_sends.elapsed()
    );
    for l in [&a1[0], &a2[0], &a3[0], &b1[0]] {
        q.ack(l).await.unwrap();
    }
    assert_eq!(
        q.depth().await.unwrap(),
        rai_backends::queue::Depth::default()
    );
}

/// A job that a busy worker leased ahead of its slot still waits (Redis): while it does, a free slot elsewhere does
/// not borrow anyone's held job; once it holds its slot (or is handed back and leased again), borrowing resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_leased_ahead_keeps_borrowing_off_until_it_starts() {
    let name = queue_name();
    let (free, busy) = (
        open_with_lease(Backend::Redis, &name, 5, HELD).await,
        open_with_lease(Backend::Redis, &name, 5, HELD).await,
    );
    for body in ["a1", "a2", "a3"] {
        free.send_in_group(body, "alice").await.unwrap();
    }
    let bodies =
        |l: &[rai_backends::queue::Lease]| l.iter().map(|l| l.body.clone()).collect::<Vec<_>>();
    let wait = Duration::from_secs(3);
    let a1 = free.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&a1), ["a1"]);
    free.send_in_group("b1", "bob").await.unwrap();
    let b1 = busy.receive_ahead(1).await.unwrap();
    assert_eq!(bodies(&b1), ["b1"]);
    assert!(
        free.receive(1, Duration::from_millis(1500))
            .await
            .unwrap()
            .is_empty(),
        "bob's job waits for a slot: alice's next one is not borrowed ahead of it"
    );
    // Handed back (its slot did not free in time) and taken by the free slot: borrowing may go on.
    busy.release(&b1[0]).await.unwrap();
    let b1 = free.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&b1), ["b1"]);
    let a2 = free.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&a2), ["a2"]);
    // Bob's next, leased ahead again, then holding its slot: alice's third may start.
    free.send_in_group("b2", "bob").await.unwrap();
    free.ack(&b1[0]).await.unwrap();
    let b2 = busy.receive_ahead(1).await.unwrap();
    assert_eq!(bodies(&b2), ["b2"]);
    assert!(
        free.receive(1, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    busy.started(&b2[0]).await.unwrap();
    let a3 = free.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&a3), ["a3"]);
    for (q, l) in [
        (&free, &a1[0]),
        (&free, &a2[0]),
        (&free, &a3[0]),
        (&busy, &b2[0]),
    ] {
        q.ack(l).await.unwrap();
    }
    assert_eq!(
        free.depth().await.unwrap(),
        rai_backends::queue::Depth::default()
    );
}

/// A regrade batch waits below every student (Redis): its messages start only on a slot no other message waits for,
/// one at a time as slots free, and a student's job sent meanwhile goes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_messages_start_only_when_nothing_else_waits() {
    let name = queue_name();
    let q = open_with_lease(Backend::Redis, &name, 5, HELD).await;
    q.send_low("r1", "m1").await.unwrap();
    q.send_low("r2", "m1").await.unwrap();
    q.send_in_group("s1", "alice").await.unwrap();
    let bodies =
        |l: &[rai_backends::queue::Lease]| l.iter().map(|l| l.body.clone()).collect::<Vec<_>>();
    let wait = Duration::from_secs(3);
    let s1 = q.receive(1, wait).await.unwrap();
    assert_eq!(
        bodies(&s1),
        ["s1"],
        "the student's job first, though sent last"
    );
    assert!(q.receive(1, Duration::ZERO).await.unwrap().is_empty());
    let r1 = q.receive(1, wait).await.unwrap();
    assert_eq!(
        bodies(&r1),
        ["r1"],
        "a free slot and nobody waiting: a regrade"
    );
    q.send_in_group("s2", "bob").await.unwrap();
    let s2 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&s2), ["s2"]);
    // Ending a regrade does not let the next one in ahead of anyone: it waits for a free slot like r1.
    q.ack(&r1[0]).await.unwrap();
    assert_eq!(q.depth().await.unwrap().waiting, 1);
    assert!(q.receive(1, Duration::ZERO).await.unwrap().is_empty());
    let r2 = q.receive(1, wait).await.unwrap();
    assert_eq!(bodies(&r2), ["r2"]);
    for l in [&s1[0], &s2[0], &r2[0]] {
        q.ack(l).await.unwrap();
    }
    assert_eq!(
        q.depth().await.unwrap(),
        rai_backends::queue::Depth::default()
    );
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod redis_queue {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Backend::Redis).await })*
        }
        mod sqs_queue {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Backend::Sqs).await })*
        }
    };
}

contract!(
    leased_message_is_invisible_until_its_lease_ends,
    extended_lease_keeps_it_invisible,
    acked_message_never_returns,
    released_message_returns_at_once,
    over_delivered_message_goes_to_the_dead_letters,
    thousand_messages_are_each_acked_exactly_once,
    oversized_message_is_refused_before_sending,
    depth_counts_waiting_and_leased_messages,
    groups_are_served_in_turn_one_message_each,
);

#[tokio::test]
async fn unreachable_redis_names_the_endpoint() {
    let e = RedisQueue::connect("redis://127.0.0.1:1", "q", LEASE, 3)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("cannot reach the job queue at 127.0.0.1:1"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_sqs_queue_says_so() {
    let sdk = rai_backends::aws::sdk_config(&aws_config()).await;
    let e = SqsQueue::open(
        rai_backends::aws::sqs_client(&sdk),
        rai_testkit::aws_endpoint(),
        &queue_name(),
        LEASE,
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("does not exist at") && e.contains("docs/admin.md"),
        "{e}"
    );
}

/// SQS only: the job queue is a FIFO queue, and a repeated send of the same signed job (a retry after a lost
/// reply) is dropped by its deduplication id instead of queueing the job twice.
#[tokio::test]
async fn sqs_queue_is_fifo_and_drops_a_repeated_send() {
    let name = queue_name();
    let q = open(Backend::Sqs, &name, 5).await;
    // What id SQS answers a deduplicated send with is not specified; only what is queued counts.
    q.send("signed-job-1").await.unwrap();
    q.send("signed-job-1").await.unwrap();
    q.send("signed-job-2").await.unwrap();
    let mut bodies = Vec::new();
    while let Ok(got) = q.receive(10, Duration::from_secs(1)).await {
        if got.is_empty() {
            break;
        }
        for lease in got {
            q.ack(&lease).await.unwrap();
            bodies.push(lease.body);
        }
    }
    bodies.sort();
    assert_eq!(bodies, ["signed-job-1", "signed-job-2"]);

    let sdk = rai_backends::aws::sdk_config(&aws_config()).await;
    let url = rai_backends::aws::sqs_client(&sdk)
        .get_queue_url()
        .queue_name(rai_backends::queue::sqs_queue_name(&name))
        .send()
        .await
        .unwrap();
    assert!(url.queue_url().unwrap().ends_with(&format!("{name}.fifo")));
}

/// Redis only: a student who submits while Redis restarts still gets the job queued (found by the chaos run:
/// the in-flight XADD failed with a broken pipe although Redis was back a second later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_send_rides_through_a_restart() {
    let mut redis = rai_testkit::PrivateRedis::start();
    let q = RedisQueue::connect(&redis.url(), &queue_name(), LEASE, 3)
        .await
        .unwrap();
    q.send("before").await.unwrap();
    redis.stop();
    let restarted = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        redis.restart();
        redis
    });
    q.send("during").await.unwrap();
    let _redis = restarted.join().unwrap();
    let mut bodies = Vec::new();
    for lease in q.receive(10, Duration::from_secs(2)).await.unwrap() {
        bodies.push(lease.body);
    }
    assert_eq!(bodies, ["before", "during"]);
}
