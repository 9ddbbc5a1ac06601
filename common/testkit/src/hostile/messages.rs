//! Messages put straight on the queue, past the gateway: malformed, oversized, unsigned, forged, edited, replayed,
//! stale, or signed by someone who may not run them. A worker must drop each (what names no job) or end it
//! `rejected` for the reason named, having read nothing of it.

use std::time::Duration;

use rai_common::BuildSpec;
use rai_common::account::generate_signing_key;
use rai_common::build_spec::LimitsRequest;
use rai_common::job::{JobRequest, SignedJob};
use rai_common::units::Bytes;

use super::harness::{refused, refused_unread};
use super::inputs::{archive, as_is, no_tweak, plain};
use super::{HostileCase, case};
use crate::jobs::build_file;

pub(super) fn cases() -> Vec<HostileCase> {
    let mut cases = vec![
        case("message", "not JSON", "dropped, reason logged", move |c| {
            Box::pin(async move {
                let seen = c.send_nameless("this is not a job at all").await;
                let ok = seen.contains("malformed job message");
                (seen, ok)
            })
        }),
        case(
            "message",
            "malformed envelope",
            "dropped, reason logged",
            move |c| {
                Box::pin(async move {
                    let seen = c
                        .send_nameless(r#"{"v":2,"job":{"v":1,"payload":"{\"id\":42}","sig":""}}"#)
                        .await;
                    let ok = seen.contains("malformed job message");
                    (seen, ok)
                })
            },
        ),
        case(
            "message",
            "oversized (300 KiB, raw XADD)",
            "rejected: over 262144 bytes",
            move |c| {
                Box::pin(async move {
                    let (_, job) = c.signed(0, &plain(), archive(&plain(), &[]), |_| {}).await;
                    let (wire, _) = c
                        .signed(0, &plain(), archive(&plain(), &[]), |r| {
                            r.id = job;
                            r.team = "t".repeat(300 * 1024);
                        })
                        .await;
                    // The gateway would refuse it; a rogue gateway (or anyone with a gateway key and Redis) could XADD it.
                    let mut redis = c.stack.redis.connection().await;
                    let _: String = redis::cmd("XADD")
                        .arg(format!("rai:queue:{}", c.stack.queue))
                        .arg("*")
                        .arg("body")
                        .arg(crate::jobs::attest(&wire))
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                    let e = c.ended(job).await;
                    (e.line(), refused_unread(&e, "allowed"))
                })
            },
        ),
    ];
    // Three ways to get past signing without the student's key; each must be refused for its signature.
    type Forge = Box<dyn FnOnce(SignedJob) -> SignedJob>;
    let forgeries: Vec<(&str, Forge)> = vec![
        (
            "unsigned",
            Box::new(|mut env| {
                env.sig.clear();
                env
            }),
        ),
        (
            "forged (a stranger's key)",
            Box::new(|env| {
                let request: JobRequest = serde_json::from_str(&env.payload).unwrap();
                request.sign(&generate_signing_key())
            }),
        ),
        (
            "edited after signing",
            Box::new(|mut env| {
                env.payload = env.payload.replace("echo hi", "echo pwned");
                env
            }),
        ),
    ];
    cases.extend(forgeries.into_iter().map(|(name, forge)| {
        case("message", name, "rejected: bad signature", move |c| {
            Box::pin(async move {
                let e = c.queued(0, archive(&plain(), &[]), no_tweak, forge).await;
                (e.line(), refused_unread(&e, "bad signature"))
            })
        })
    }));
    cases.push(case(
        "message",
        "replayed after it ran",
        "dropped: no second run",
        move |c| {
            Box::pin(async move {
                let (wire, job) = c.signed(0, &plain(), archive(&plain(), &[]), |_| {}).await;
                c.send(&wire).await;
                let first = c.ended(job).await;
                c.send(&wire).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let again = c.bus.history(&job, 0, 10_000).await.unwrap().len();
                let depth = c.queue.depth().await.unwrap();
                (
                    format!(
                        "first run {}; after the replay {} events (was {}), queue {depth:?}",
                        first.status, again, first.events
                    ),
                    first.status == "succeeded"
                        && again == first.events
                        && depth == rai_backends::queue::Depth::default(),
                )
            })
        },
    ));
    cases.push(case(
        "message",
        "another student's upload",
        "rejected: not its own",
        move |c| {
            Box::pin(async move {
                // Student 2's upload, named in student 0's signed job.
                let (victim, _) = c
                    .signed(2, &plain(), archive(&plain(), &[]), no_tweak)
                    .await;
                let victim: JobRequest = serde_json::from_str(
                    &serde_json::from_str::<SignedJob>(&victim).unwrap().payload,
                )
                .unwrap();
                let e = c
                    .queued(
                        0,
                        archive(&plain(), &[]),
                        move |r| r.input = victim.input,
                        as_is,
                    )
                    .await;
                (e.line(), refused(&e, "which is not its own"))
            })
        },
    ));
    type Tweak = Box<dyn FnOnce(&mut JobRequest)>;
    let refusals: Vec<(&str, &str, usize, Tweak, &str)> = vec![
        (
            "revoked user",
            "rejected: revoked",
            1,
            Box::new(|_| {}),
            "was revoked",
        ),
        (
            "unknown user",
            "rejected: unknown user",
            0,
            Box::new(|r| r.user = "mallory".into()),
            "unknown user \"mallory\"",
        ),
        (
            "absurd limits, signed",
            "rejected: over the worker's maximum",
            0,
            Box::new(|r| {
                let absurd = build_file(&["echo hi"], "time: 1000h, memory: 100t");
                r.build = BuildSpec::parse(&absurd, "rai_build.yml").unwrap();
            }),
            "exceeds this worker's maximum",
        ),
        (
            "memory \"0\" (Docker: no limit), signed",
            "rejected: too little memory",
            0,
            Box::new(|r| {
                r.build.resources.limits = Some(LimitsRequest {
                    memory: Some(Bytes(0)),
                    ..LimitsRequest::default()
                })
            }),
            "resources.limits.memory: 0 is too little memory",
        ),
        (
            "cpus 1e-10 (Docker: no limit), signed",
            "rejected: too little CPU",
            0,
            Box::new(|r| {
                r.build.resources.limits = Some(LimitsRequest {
                    cpus: Some(1e-10),
                    ..LimitsRequest::default()
                })
            }),
            "resources.limits.cpus: 0.0000000001 CPUs is too little",
        ),
    ];
    cases.extend([
        case(
            "message",
            "backdated (created 2 days ago by the client's clock)",
            "runs: the gateway's accepted_at counts",
            move |c| {
                Box::pin(async move {
                    let e = c
                        .queued(
                            0,
                            archive(&plain(), &[]),
                            |r| r.created_at = chrono::Utc::now() - chrono::Duration::days(2),
                            as_is,
                        )
                        .await;
                    let ok = e.status == "succeeded";
                    (e.line(), ok)
                })
            },
        ),
        case(
            "message",
            "stale (accepted 2 days ago, held back)",
            "rejected: too old",
            move |c| {
                Box::pin(async move {
                    let (wire, job) = c.signed(0, &plain(), archive(&plain(), &[]), |_| {}).await;
                    let held = crate::jobs::attest_at(
                        &wire,
                        chrono::Utc::now() - chrono::Duration::days(2),
                    );
                    c.queue.send(&held).await.unwrap();
                    let e = c.ended(job).await;
                    (e.line(), refused_unread(&e, "older than"))
                })
            },
        ),
    ]);
    cases.extend(
        refusals
            .into_iter()
            .map(|(name, expected, user, tweak, words)| {
                case("message", name, expected, move |c| {
                    Box::pin(async move {
                        let e = c.queued(user, archive(&plain(), &[]), tweak, as_is).await;
                        (e.line(), refused(&e, words))
                    })
                })
            }),
    );
    cases
}
