//! What admins and course staff see of a running system: `/metrics` on the gateway and on a worker, and `rai
//! workers`, including a worker that stopped heartbeating.

use std::time::Duration;

use rai_testkit::stack::{Kind, Options, Stack, project, text};

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    response.text().await.unwrap()
}

/// The value of the first sample whose line starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_workers_show_what_ran_and_who_stopped() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra: &'static str =
        Box::leak(format!("  metrics_address: 127.0.0.1:{port}\n").into_boxed_str());
    let mut s = Stack::start(
        Kind::Local,
        Options {
            users: 2,
            staff: &[1],
            raid_extra: extra,
            ..Options::default()
        },
    )
    .await;
    let p = project(&["echo one", "echo two"], &[]);
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let gateway = scrape(&s.http(), &format!("{}/metrics", s.gateways[0].url)).await;
    assert!(
        sample(&gateway, "rai_upload_bytes_total") > 0.0,
        "{gateway}"
    );
    let waiting = format!("rai_queue_jobs{{queue=\"{}\",state=\"waiting\"}}", s.queue);
    assert_eq!(sample(&gateway, &waiting), 0.0, "{gateway}");
    assert!(
        sample(&gateway, "rai_redis_memory_bytes") > 0.0,
        "{gateway}"
    );
    assert!(sample(&gateway, "rai_redis_live_logs") >= 1.0, "{gateway}");
    let before = sample(&gateway, "rai_auth_failures_total");
    let unsigned = s
        .http()
        .get(format!("{}/v1/jobs", s.gateways[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let gateway = scrape(&s.http(), &format!("{}/metrics", s.gateways[0].url)).await;
    assert_eq!(sample(&gateway, "rai_auth_failures_total"), before + 1.0);

    let worker = scrape(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}/metrics"),
    )
    .await;
    let q = &s.queue;
    assert_eq!(
        sample(
            &worker,
            &format!("rai_jobs_total{{queue=\"{q}\",outcome=\"succeeded\"}}")
        ),
        1.0,
        "{worker}"
    );
    assert_eq!(
        sample(
            &worker,
            &format!("rai_job_run_seconds_count{{queue=\"{q}\"}}")
        ),
        1.0
    );
    assert_eq!(sample(&worker, "rai_slots "), 2.0);
    assert_eq!(sample(&worker, "rai_slots_busy "), 0.0);
    assert!(sample(&worker, "rai_events_total") >= 1.0, "{worker}");
    assert!(sample(&worker, "rai_output_bytes_total") >= 8.0, "{worker}");

    let out = s.rai(0, &["workers"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("the list of workers is for course staff"),
        "{}",
        text(&out.stderr)
    );
    let name = s.workers[0].name.clone();
    let out = s.rai(1, &["workers"]).await;
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row = table
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(" up ") && row.contains(&s.queue) && row.contains("0/2"),
        "{table}"
    );

    s.kill9(&name);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = s.rai(1, &["workers"]).await;
        let table = text(&out.stdout);
        let row = table
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{table}"));
        if row.contains("STOPPED") {
            assert!(table.contains("1 worker stopped heartbeating"), "{table}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never shown stopped:\n{table}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
