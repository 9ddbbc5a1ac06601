//! Queue, event and store figures against the local stack, each beside its target, in one run.
//!
//!     deploy/local/bench.sh            # starts Redis and moto, runs this and the archive benchmark
//!
//! - store: a 1 GiB streamed put into each store; peak RSS of this process during it (target <= 64 MiB).
//! - queue: send + receive + ack per second per backend, and pickup latency (send -> a blocked receiver returns),
//!   p50/p99, beside a bare round trip to the same server (target p50 <= 5 ms Redis, <= 50 ms moto's SQS).
//! - events: lines published and followed end to end per second, 100 lines per event, beside bare Redis
//!   PUBLISH/SUBSCRIBE of the same lines (target >= 50,000 lines/s).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rai_backends::events::{EventBus, FollowOptions};
use rai_backends::queue::{JobQueue, RedisQueue, SqsQueue};
use rai_backends::store::{FsStore, ObjectStore, S3Store};
use rai_common::JobId;
use rai_common::config::AwsConfig;
use rai_common::event::{EventBody, JobStatus};
use rai_testkit::bench::{ms, percentile, reset_peak, status_kib};
use tokio::io::{AsyncRead, ReadBuf};

/// An endless-looking stream of pseudo-random bytes, made on the fly (no disk, no buffer).
struct Generated {
    remaining: u64,
    state: u64,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining) as usize & !7;
        let n = if n == 0 {
            (buf.remaining() as u64).min(self.remaining) as usize
        } else {
            n
        };
        let mut out = vec![0u8; n];
        for chunk in out.chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let bytes = self.state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        buf.put_slice(&out);
        self.remaining -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn aws() -> AwsConfig {
    rai_testkit::aws_config()
}

async fn store_put(name: &str, store: Arc<dyn ObjectStore>) {
    const SIZE: u64 = 1 << 30;
    reset_peak();
    let before = status_kib(None, "VmRSS:");
    let t = Instant::now();
    let put = store
        .put(
            "uploads/bench/1gib.bin",
            Box::pin(Generated {
                remaining: SIZE,
                state: 0x9e37_79b9_7f4a_7c15,
            }),
        )
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(put.size, SIZE);
    let peak = status_kib(None, "VmHWM:");
    println!(
        "{:<28} {:>9.1} MB/s   peak RSS {:>6.1} MiB (was {:.1} MiB before)   target <= 64 MiB",
        format!("store: 1 GiB put ({name})"),
        SIZE as f64 / 1e6 / took.as_secs_f64(),
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("store: peak RSS putting 1 GiB ({name})"),
        value: format!("{:.1} MiB", peak as f64 / 1024.0),
        reference: format!("{:.1} MiB before", before as f64 / 1024.0),
        ratio: None,
        target: "<= 64 MiB",
        met: peak <= 64 * 1024,
    });
    store.delete("uploads/bench/1gib.bin").await.unwrap();
}

async fn queue_figures(
    name: &str,
    open: impl AsyncFn() -> Arc<dyn JobQueue>,
    samples: usize,
    round_trip: Duration,
    target_ms: f64,
) {
    let q = open().await;
    // Throughput: send, receive, ack in a loop, in batches of 10.
    let n = samples * 2;
    let t = Instant::now();
    let mut done = 0;
    for i in 0..n {
        q.send(&format!("{{\"n\":{i}}}")).await.unwrap();
    }
    while done < n {
        for lease in q.receive(10, Duration::from_secs(5)).await.unwrap() {
            q.ack(&lease).await.unwrap();
            done += 1;
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();

    // Pickup latency: one receiver blocked in receive; the sender stamps each message.
    let receiver = open().await;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let r = receiver.clone();
        let waiting = tokio::spawn(async move {
            let got = r.receive(1, Duration::from_secs(25)).await.unwrap();
            let at = Instant::now();
            r.ack(&got[0]).await.unwrap();
            at
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        q.send(&format!("{{\"p\":{i}}}")).await.unwrap();
        lat.push(waiting.await.unwrap() - sent);
    }
    lat.sort();
    println!(
        "{:<28} {:>9.0} msg/s  pickup p50 {:>6.2} ms  p99 {:>6.2} ms   bare round trip {:>5.2} ms   target p50 <= {target_ms} ms",
        format!("queue: {name}"),
        rate,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(round_trip)
    );
    rai_testkit::report(rai_testkit::Figure {
        name: &format!("queue: {name}, pickup p50 (ref: bare round trip)"),
        value: format!("{:.2} ms", ms(percentile(&lat, 0.5))),
        reference: format!("{:.2} ms", ms(round_trip)),
        ratio: Some(ms(percentile(&lat, 0.5)) / ms(round_trip)),
        target: &format!("p50 <= {target_ms} ms"),
        met: ms(percentile(&lat, 0.5)) <= target_ms,
    });
}

async fn events_figures(url: &str) {
    const LINES: u64 = 500_000;
    const PER_EVENT: u64 = 100;
    let bus = EventBus::connect(url, Duration::from_secs(600))
        .await
        .unwrap();
    let job = JobId::new();
    let mut stream = bus.follow(job, 0, FollowOptions::default());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut p = bus.publisher(job).await.unwrap();
            let mut batch = Vec::new();
            for e in 0..LINES / PER_EVENT {
                batch.push(EventBody::Stdout {
                    data: event_lines(e, PER_EVENT),
                });
                if batch.len() == 10 {
                    p.publish(&batch).await.unwrap();
                    batch.clear();
                }
            }
            p.publish(&batch).await.unwrap();
            p.send(EventBody::End {
                status: JobStatus::Succeeded,
                exit_code: Some(0),
                reason: None,
            })
            .await
            .unwrap();
        })
    };
    let mut lines = 0u64;
    while let Some(e) = stream.next().await {
        if let EventBody::Stdout { data } = e.unwrap().body {
            lines += data.lines().count() as u64;
        }
    }
    publisher.await.unwrap();
    let took = t.elapsed();
    assert_eq!(lines, LINES, "every line arrives");
    let rate = LINES as f64 / took.as_secs_f64();
    let bare = bare_pubsub_rate(url, LINES, PER_EVENT).await;
    println!(
        "{:<28} {:>9.0} lines/s ({LINES} lines, {PER_EVENT} per event, {:.2} s)   bare PUBLISH/SUBSCRIBE {bare:.0} lines/s   target >= 50000 lines/s",
        "events: publish -> follow",
        rate,
        took.as_secs_f64()
    );
    rai_testkit::report(rai_testkit::Figure {
        name: "events: publish -> follow (ref: bare Redis PUBLISH/SUBSCRIBE, no log)",
        value: format!("{rate:.0} lines/s"),
        reference: format!("{bare:.0} lines/s"),
        ratio: Some(rate / bare),
        target: ">= 50000 lines/s",
        met: rate >= 50000.0,
    });
}

/// The text of event number `event`: `per_event` numbered lines.
fn event_lines(event: u64, per_event: u64) -> String {
    use std::fmt::Write;
    let mut data = String::with_capacity(per_event as usize * 16);
    for l in 0..per_event {
        let _ = writeln!(data, "line {}", event * per_event + l);
    }
    data
}

/// The same lines sent the way the Go RAI did: plain PUBLISH to a channel, pipelined ten at a time, with no log to
/// replay from and no numbering. What rai's log and sequence numbers cost is the gap between the two rates.
async fn bare_pubsub_rate(url: &str, lines: u64, per_event: u64) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let channel = format!("bench-bare-{}", JobId::new());
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(&channel).await.unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let t = Instant::now();
    let publisher = {
        let channel = channel.clone();
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            for e in 0..lines / per_event {
                pipe.publish(&channel, event_lines(e, per_event)).ignore();
                if (e + 1) % 10 == 0 {
                    let () = pipe.query_async(&mut conn).await.unwrap();
                    pipe = redis::pipe();
                }
            }
            pipe.publish(&channel, "").ignore();
            let () = pipe.query_async(&mut conn).await.unwrap();
        })
    };
    let mut got = 0u64;
    let mut messages = sub.on_message();
    while let Some(m) = messages.next().await {
        let data: String = m.get_payload().unwrap();
        if data.is_empty() {
            break;
        }
        got += data.lines().count() as u64;
    }
    publisher.await.unwrap();
    assert_eq!(got, lines, "every line arrives over bare pub/sub");
    lines as f64 / t.elapsed().as_secs_f64()
}

async fn redis_round_trip(url: &str) -> Duration {
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut v: Vec<Duration> = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
        v.push(t.elapsed());
    }
    v.sort();
    percentile(&v, 0.5)
}

async fn sqs_round_trip(client: &aws_sdk_sqs::Client) -> Duration {
    let mut v: Vec<Duration> = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        client.list_queues().max_results(1).send().await.unwrap();
        v.push(t.elapsed());
    }
    v.sort();
    percentile(&v, 0.5)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "backends benchmark (Redis {}, moto {})",
        rai_testkit::redis_url(),
        rai_testkit::aws_endpoint()
    );
    let dir = tempfile::tempdir().unwrap();
    store_put("fs", Arc::new(FsStore::open(dir.path()).unwrap())).await;
    let sdk = rai_backends::aws::sdk_config(&aws()).await;
    let s3 = rai_backends::aws::s3_client(&sdk);
    let bucket = rai_testkit::unique("bench").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    store_put(
        "s3 on moto",
        Arc::new(
            S3Store::open(s3, &bucket, rai_testkit::aws_endpoint())
                .await
                .unwrap(),
        ),
    )
    .await;

    let url = rai_testkit::redis_url();
    let name = rai_testkit::unique("bench");
    let rt = redis_round_trip(&url).await;
    queue_figures(
        "redis streams",
        async || {
            Arc::new(
                RedisQueue::connect(&url, &name, Duration::from_secs(60), 5)
                    .await
                    .unwrap(),
            ) as Arc<dyn JobQueue>
        },
        200,
        rt,
        5.0,
    )
    .await;
    let sqs = rai_backends::aws::sqs_client(&sdk);
    let qname = rai_testkit::unique("bench").to_lowercase();
    SqsQueue::create(
        sqs.clone(),
        rai_testkit::aws_endpoint(),
        &qname,
        Duration::from_secs(60),
        5,
    )
    .await
    .unwrap();
    let rt = sqs_round_trip(&sqs).await;
    queue_figures(
        "sqs on moto",
        async || {
            Arc::new(
                SqsQueue::open(
                    sqs.clone(),
                    rai_testkit::aws_endpoint(),
                    &qname,
                    Duration::from_secs(60),
                )
                .await
                .unwrap(),
            ) as Arc<dyn JobQueue>
        },
        50,
        rt,
        50.0,
    )
    .await;
    events_figures(&url).await;
}
