//! What staff views cost on a busy term (issue 17):
//!
//!     cargo bench -p rai-client --bench operability [-- JOBS]   (stack up, release binaries built)
//!
//! A gateway (the local stack: Redis, fs store) with 10,000 jobs in its history, written as the gateway and the
//! workers write them: a record in the store, a state and an index entry in Redis. Then, one request at a time over
//! loopback (so the time is the server's plus a loopback round trip):
//!
//! - `GET /metrics`, 1,000 times: p50/p99, target p99 <= 50 ms; beside `GET /healthz`, the cheapest answer the same
//!   server gives (the floor).
//! - the dashboard's job list, first page (`GET /ui/jobs`, a staff session's cookie), 300 times: p50/p99, target
//!   p99 <= 100 ms; beside the API's `rai history --all` (`GET /v1/jobs?all=true&limit=50`, signed), which lists the
//!   records in the store, measured the same way (the way a list would be drawn without the index).

use std::time::{Duration, Instant};

use rai_backends::events::EventBus;
use rai_backends::store::{FsStore, ObjectStore};
use rai_client::client::{Client, Whose};
use rai_common::JobId;
use rai_common::event::JobStatus;
use rai_common::record::JobRecord;
use rai_common::state::JobState;
use rai_testkit::bench::{ms, percentile, timed};
use rai_testkit::stack::{Kind, Options, Stack};

fn row(what: &str, times: &[Duration], target: Option<f64>) {
    let p99 = ms(percentile(times, 0.99));
    let verdict = match target {
        Some(t) if p99 <= t => format!("target p99 <= {t} ms: met"),
        Some(t) => format!("target p99 <= {t} ms: MISSED"),
        None => "reference".to_string(),
    };
    println!(
        "  {what:<52} p50 {:>7.2} ms  p99 {:>7.2} ms  ({verdict})",
        ms(percentile(times, 0.5)),
        p99
    );
}

fn figure(name: &str, times: &[Duration], reference: &[Duration], target: &str, p99_ms: f64) {
    let p99 = ms(percentile(times, 0.99));
    rai_testkit::report(rai_testkit::Figure {
        name,
        value: format!("{:.1} / {:.1} ms", ms(percentile(times, 0.5)), p99),
        reference: format!(
            "{:.1} / {:.1} ms",
            ms(percentile(reference, 0.5)),
            ms(percentile(reference, 0.99))
        ),
        ratio: Some(p99 / ms(percentile(reference, 0.99))),
        target,
        met: p99 <= p99_ms,
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let s = Stack::start(
        Kind::Local,
        Options {
            workers: 0,
            users: 2,
            staff: &[1],
            // Plain HTTP: these figures compare with the earlier issues' plain ones (the HTTPS rows are
            // issue 26's).
            plain_gateway: true,
            ..Options::default()
        },
    )
    .await;
    let gateway = s.gateways[0].url.clone();
    // Wait for the gateway to answer.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{gateway}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the gateway never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The history: 10,000 finished jobs of 300 students in 60 teams.
    let seeded = Instant::now();
    let bus = EventBus::connect(s.redis.target(), Duration::from_secs(7 * 86400))
        .await
        .unwrap();
    let store = FsStore::open(s.dir.path().join("store")).unwrap();
    let t0 = chrono::Utc::now() - chrono::Duration::hours(6);
    for i in 0..jobs {
        let job = JobId::new();
        let user = format!("student{}", i % 300);
        let team = format!("team{}", i % 60);
        let at = t0 + chrono::Duration::milliseconds(i as i64 * 2000);
        let status = if i % 7 == 0 {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        };
        let record = JobRecord {
            id: job.to_string(),
            user: user.clone(),
            team: team.clone(),
            queue: s.queue.clone(),
            worker: "gpu1".into(),
            status,
            exit_code: Some(i64::from(status != JobStatus::Succeeded)),
            reason: None,
            image: "rai-test/busybox:latest".into(),
            accepted_at: at,
            started_at: at,
            finished_at: at + chrono::Duration::seconds(1),
            output_key: None,
            output_truncated: false,
            assignment: None,
            late: false,
            commands: Vec::new(),
            gpus: Vec::new(),
            gpu_use: Vec::new(),
            results: None,
            regrade_of: None,
            sweep: None,
            combination: None,
        };
        store
            .put_bytes(
                &rai_common::objects::record_key(&user, &job),
                serde_json::to_vec(&record).unwrap(),
            )
            .await
            .unwrap();
        let state = JobState {
            status: Some(status),
            user: Some(user.clone()),
            team: Some(team.clone()),
            queue: Some(s.queue.clone()),
            worker: Some("gpu1".into()),
            submitted_at: Some(at),
            ..JobState::default()
        };
        bus.update_state(&job, &state).await.unwrap();
        bus.index_job(&job, at, &user, &team, None).await.unwrap();
    }
    println!(
        "operability: a gateway with {jobs} jobs in its history (seeded in {:.0} s)",
        seeded.elapsed().as_secs_f64()
    );

    let metrics = timed(1000, || async {
        let text = http
            .get(format!("{gateway}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("rai_queue_jobs"));
    })
    .await;
    let healthz = timed(1000, || async {
        http.get(format!("{gateway}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    })
    .await;
    row("GET /metrics", &metrics, Some(50.0));
    row("GET /healthz (the floor)", &healthz, None);
    figure(
        &format!("/metrics scrape, {jobs} jobs in history, p50 / p99"),
        &metrics,
        &healthz,
        "p99 <= 50 ms (reference: GET /healthz)",
        50.0,
    );

    // A staff session, as `rai dashboard` opens one.
    let profile = rai_common::account::Profile::load(&s.home(1).join(".rai_profile")).unwrap();
    let key = profile.signing_key("student1").unwrap();
    let link = rai_client::commands::dashboard::link(&key, "student1", &gateway).unwrap();
    let login = http.get(&link).send().await.unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let dashboard = timed(300, || async {
        let page = http
            .get(format!("{gateway}/ui/jobs"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.matches("<tr><td><a href=\"/ui/jobs/").count() == 50,
            "{page}"
        );
    })
    .await;
    let client = Client::new(
        &rai_common::config::ClientConfig {
            gateway: Some(gateway.clone()),
            ..rai_common::Config::defaults().client
        },
        "student1",
        key,
    )
    .unwrap();
    let history = timed(30, || async {
        assert_eq!(client.history_of(Whose::All, 50).await.unwrap().len(), 50);
    })
    .await;
    row(
        "dashboard job list, first page (GET /ui/jobs)",
        &dashboard,
        Some(100.0),
    );
    row("rai history --all -n 50 (store listing)", &history, None);
    figure(
        &format!("dashboard job list of {jobs} jobs, first page, p50 / p99"),
        &dashboard,
        &history,
        "p99 <= 100 ms (reference: rai history --all -n 50, the store listing)",
        100.0,
    );
}
