//! The idle pool (issue 29): fair share must not waste a slot when nobody else waits. One student alone on a
//! worker with as many slots as jobs; the deadline rush ([`crate::rush`]) measures the same queue under load.

use std::time::{Duration, Instant};

use rai_backends::events::EventBus;
use rai_common::JobId;

use crate::stack::{Kind, Options, Stack, job_id, project, rai_command};

/// The idle pool (issue 29): one student submits `jobs` jobs of `seconds` each to one worker with as many slots,
/// and nobody else submits. Returns how long all of them took, from the first acceptance to the last end, and, as
/// the reference, how long one such job alone took on the same stack. Turn-taking that wastes no slot runs them
/// side by side (about one job's time); turn-taking that does runs them one after another (`jobs` times it).
pub async fn run(kind: Kind, jobs: usize, seconds: u64) -> (Duration, Duration) {
    let stack = Stack::start(
        kind,
        Options {
            workers: 1,
            users: 1,
            concurrency: jobs,
            ..Options::default()
        },
    )
    .await;
    let p = project(&[&format!("sleep {seconds}")], &[]);
    // The test projects' time limit is a minute; these jobs may take longer.
    let build_file = p.path().join("rai_build.yml");
    let text = std::fs::read_to_string(&build_file).unwrap();
    std::fs::write(
        &build_file,
        text.replace("time: 60s", &format!("time: {}s", seconds + 120)),
    )
    .unwrap();
    let bus = EventBus::connect(stack.redis.target(), Duration::from_secs(3600))
        .await
        .unwrap();
    let submit = |n: usize| {
        let mut ids = Vec::new();
        for _ in 0..n {
            let out = rai_command(
                stack.home(0),
                &["submit", "--detach", "-p", p.path().to_str().unwrap()],
            )
            .output()
            .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            ids.push(
                job_id(&String::from_utf8_lossy(&out.stderr))
                    .parse::<JobId>()
                    .unwrap(),
            );
        }
        ids
    };
    let span = |ids: Vec<JobId>| {
        let bus = bus.clone();
        async move {
            let deadline =
                Instant::now() + Duration::from_secs(seconds * (ids.len() as u64 + 2) + 60);
            loop {
                let mut times = Vec::new();
                for id in &ids {
                    if let Ok(Some(s)) = bus.state(id).await
                        && s.status.is_some_and(|st| st.is_final())
                    {
                        assert_eq!(
                            s.status,
                            Some(rai_common::event::JobStatus::Succeeded),
                            "{id}: {s:?}"
                        );
                        times.push((s.submitted_at.unwrap(), s.finished_at.unwrap()));
                    }
                }
                if times.len() == ids.len() {
                    let first = times.iter().map(|t| t.0).min().unwrap();
                    let last = times.iter().map(|t| t.1).max().unwrap();
                    return (last - first).to_std().unwrap_or_default();
                }
                assert!(Instant::now() < deadline, "the jobs did not end in time");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let one = span(submit(1)).await;
    let all = span(submit(jobs)).await;
    (all, one)
}
