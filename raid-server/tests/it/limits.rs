//! What one student may hold at a gateway and in the store (issue 26): uploads pending and bytes per day, live event
//! streams, and the store's retention, with graded submissions kept as the course file says.

use std::time::Duration;

use chrono::Utc;
use rai_common::account::Role;
use rai_common::objects::{log_key, output_key, record_key, upload_key};
use rai_common::units::{Bytes, Span};
use reqwest::StatusCode;

use crate::gateway::{Course, refused};

const LIMIT: Duration = Duration::from_secs(90);

/// Names of this test's own: the caps count per user name in the shared test Redis.
fn people(tag: &str) -> Vec<(String, String, Role)> {
    let n = rai_testkit::unique(tag).to_ascii_lowercase();
    vec![
        (format!("{n}-ana"), String::new(), Role::Student),
        (format!("{n}-ben"), String::new(), Role::Student),
    ]
}

fn borrowed(people: &[(String, String, Role)]) -> Vec<(&str, &str, Role)> {
    people
        .iter()
        .map(|(u, t, r)| (u.as_str(), t.as_str(), *r))
        .collect()
}

/// Text of `n` bytes that hardly compresses (so the packed project is nearly as large), different each call.
fn noise(n: usize) -> String {
    use sha2::Digest;
    let mut block = sha2::Sha256::digest(rai_testkit::unique("noise").as_bytes());
    let mut out = String::with_capacity(n);
    while out.len() < n {
        out.extend(block.iter().map(|b| char::from(b'!' + b % 90)));
        block = sha2::Sha256::digest(block);
    }
    out.truncate(n);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_pending_and_bytes_per_day_are_capped_per_student() {
    let people = people("up");
    let (ana, ben) = (people[0].0.clone(), people[1].0.clone());
    let c = Course::start_term(false, None, &borrowed(&people), |config| {
        config.gateway.uploads.max_pending = 2;
        config.gateway.uploads.bytes_per_day = Bytes(60_000);
    })
    .await;
    let first = c.upload(&ana, &["echo one"]).await.unwrap();
    let _second = c.upload(&ana, &["echo two"]).await.unwrap();
    refused(
        c.upload(&ana, &["echo three"]).await,
        StatusCode::TOO_MANY_REQUESTS,
        "you have 2 uploads that were started and not submitted, the most one student may; submit one of them",
    );
    // Another student is not held back by ana's.
    c.upload(&ben, &["echo mine"]).await.unwrap();
    // Submitting one frees its place.
    c.client(&ana)
        .submit(&first.sign(&c.keys[&ana]))
        .await
        .unwrap();
    let third = c.upload(&ana, &["echo three"]).await.unwrap();
    c.client(&ana)
        .submit(&third.sign(&c.keys[&ana]))
        .await
        .unwrap();
    // About 40 KB packed: one fits in the day's 60,000 bytes with the small ones, a second does not.
    let big = noise(40_000);
    let sent = c
        .upload_files(&ben, &["echo big"], &[("data.txt", &big)])
        .await
        .unwrap();
    c.client(&ben)
        .submit(&sent.sign(&c.keys[&ben]))
        .await
        .unwrap();
    refused(
        c.upload_files(&ben, &["echo big again"], &[("data.txt", &noise(40_000))])
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "today and this project is",
    );
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_holds_at_most_max_followers_live_streams() {
    let people = people("fo");
    let ana = people[0].0.clone();
    let c = Course::start_term(false, None, &borrowed(&people), |config| {
        config.gateway.max_followers = 2;
    })
    .await;
    let request = c.upload(&ana, &["sleep 30"]).await.unwrap();
    let job = c
        .client(&ana)
        .submit(&request.sign(&c.keys[&ana]))
        .await
        .unwrap()
        .job;
    let client = c.client(&ana);
    let open = |n: usize| {
        let client = client.clone();
        async move {
            let mut events = client.follow(job, 0);
            let first = tokio::time::timeout(LIMIT, events.next())
                .await
                .unwrap_or_else(|_| panic!("stream {n} answers"))
                .expect("an answer");
            (events, first)
        }
    };
    let (a, first_a) = open(1).await;
    let (_b, first_b) = open(2).await;
    assert!(
        first_a.is_ok() && first_b.is_ok(),
        "{first_a:?} {first_b:?}"
    );
    let (_c, third) = open(3).await;
    refused(
        third,
        StatusCode::TOO_MANY_REQUESTS,
        "you have 2 live event streams open at this gateway",
    );
    // A stream that is closed gives its place back (once the gateway notices: at its next keep-alive at most).
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (_d, again) = open(4).await;
        if again.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream's place never came back: {again:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    c.client(&ana).cancel(&job).await.unwrap();
    c.h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_sweep_keeps_graded_work_until_the_course_says_and_deletes_the_rest() {
    let people = people("sw");
    let (ana, ben) = (people[0].0.clone(), people[1].0.clone());
    let keep_until = Utc::now() + chrono::Duration::days(30);
    let course = format!(
        "time_zone: UTC\nkeep_submissions_until: {}\nassignments:\n  m1:\n    due: {}\n",
        keep_until.format("%Y-%m-%d %H:%M"),
        (Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d %H:%M"),
    );
    let c = Course::start_term(false, Some((&course, &[])), &borrowed(&people), |config| {
        config.store.retention.uploads = Span::from_secs(86_400);
        config.store.retention.outputs = Span::from_secs(86_400);
        config.store.retention.logs = Span::from_secs(86_400);
        config.store.retention.sweep_every = Span::from_secs(1);
        config.gateway.uploads.expire = Span::from_secs(3600);
    })
    .await;
    let graded = c
        .submit_for(&ana, "m1", &["echo graded > /build/out.txt"], &[])
        .await
        .unwrap()
        .job;
    let practice = c
        .submit(&ben, &["echo practice > /build/out.txt"], |_| {})
        .await
        .unwrap()
        .job;
    let declared = c.upload(&ben, &["echo never submitted"]).await.unwrap().id;
    for job in [graded, practice] {
        let events = c.h.events(job, LIMIT).await;
        assert_eq!(rai_testkit::jobs::end(&events).0, "succeeded");
    }
    let store = c.gateway.store.clone();
    let exists = |key: String| {
        let store = store.clone();
        async move { store.head(&key).await.unwrap().is_some() }
    };
    let kinds = |user: &str, job| {
        vec![
            upload_key(user, &job),
            output_key(user, &job),
            log_key(user, &job),
        ]
    };
    // The log is stored by the worker just before the job's end is acked; wait for every object to be there.
    let deadline = std::time::Instant::now() + LIMIT;
    for key in kinds(&ana, graded)
        .into_iter()
        .chain(kinds(&ben, practice))
        .chain([upload_key(&ben, &declared)])
    {
        while !exists(key.clone()).await {
            assert!(std::time::Instant::now() < deadline, "{key} never stored");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Two days later by the gateway's clock: past every retention, within the course's keep_submissions_until.
    c.gateway.clock.set_offset(chrono::Duration::days(2));
    let deadline = std::time::Instant::now() + LIMIT;
    for key in kinds(&ben, practice)
        .into_iter()
        .chain([upload_key(&ben, &declared)])
    {
        while exists(key.clone()).await {
            assert!(
                std::time::Instant::now() < deadline,
                "{key} was never swept"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for key in kinds(&ana, graded)
        .into_iter()
        .chain([record_key(&ana, &graded), record_key(&ben, &practice)])
    {
        assert!(exists(key.clone()).await, "{key} is kept");
    }
    // The upload that was never submitted is forgotten: its job can no longer be submitted.
    assert_eq!(
        c.gateway.bus.declared_upload(&declared).await.unwrap(),
        None
    );
    let metrics = reqwest::get(format!("{}/metrics", c.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["outputs", "logs", "declared"] {
        assert!(
            metrics.contains(&format!("rai_store_swept_objects_total{{kind=\"{kind}\"}}")),
            "{kind} not in {metrics}"
        );
    }

    // Past the course's date, the graded submission's objects go too; its record stays.
    c.gateway
        .clock
        .set_offset(keep_until - Utc::now() + chrono::Duration::days(2));
    let deadline = std::time::Instant::now() + LIMIT;
    for key in kinds(&ana, graded) {
        while exists(key.clone()).await {
            assert!(
                std::time::Instant::now() < deadline,
                "{key} was kept past the course's date"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(exists(record_key(&ana, &graded)).await);
    c.h.drain_and_stop().await;
}
