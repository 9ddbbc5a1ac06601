//! kill -9 at each point of a job's life, on a worker that comes back under its own name (issue 25): leased, claimed,
//! ready for a busy slot, started, storing `/build`, ended; and the case the full chaos run lost jobs to: a container
//! of an earlier run that Docker finished making after the killed worker's successor had cleared its leftovers.
//!
//! Each point is reached from outside, as an operator would see it (the queue's lease, the job's claim in Redis, its
//! container, its output, its end): the worker is stopped (SIGSTOP) the moment the point shows, the point is checked
//! while it cannot move on, and only then is the worker killed. A second worker is down while a point is set up and
//! comes up with the killed one's successor, so either may take the job back. Every job must end exactly once, with
//! its whole output in its last run, one record, and nothing left behind.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rai_backends::keys;
use rai_common::JobId;
use rai_testkit::stack::{Kind, Options, Running, Stack, project};

/// The stack: worker `a` runs the points, `b` is down until a point has been killed.
struct Bench {
    s: Stack,
    a: String,
    b: String,
    redis: redis::aio::MultiplexedConnection,
}

/// A job whose whole stdout is `expected`.
struct Submitted {
    running: Running,
    job: String,
    expected: String,
}

impl Bench {
    async fn start() -> Bench {
        let mut s = Stack::start(
            Kind::Local,
            Options {
                workers: 2,
                users: 2,
                concurrency: 1,
                lease: "3s",
                ..Options::default()
            },
        )
        .await;
        let (a, b) = (s.workers[0].name.clone(), s.workers[1].name.clone());
        s.kill9(&b);
        let redis = s.redis.connection().await;
        Bench { s, a, b, redis }
    }

    /// Student `user` submits a project running `commands` (with `files`), followed by `rai`.
    fn submit(
        &self,
        user: usize,
        commands: &[&str],
        files: &[(&str, &[u8])],
    ) -> (Running, tempfile::TempDir) {
        let dir = project(commands, &[]);
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        (
            self.s
                .spawn_rai(user, &["-p", dir.path().to_str().unwrap()]),
            dir,
        )
    }

    async fn job_of(running: &Running) -> String {
        let line = running.wait_stderr("✱ Job ", Duration::from_secs(60)).await;
        line.trim_start_matches("✱ Job ")
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    /// The ids of the jobs that have a claim now.
    async fn claimed(&mut self) -> HashSet<String> {
        let found: Vec<String> = redis::cmd("KEYS")
            .arg("rai:job:*:claim")
            .query_async(&mut self.redis)
            .await
            .unwrap();
        found
            .iter()
            .filter_map(|k| k.strip_prefix("rai:job:")?.strip_suffix(":claim"))
            .map(str::to_string)
            .collect()
    }

    /// How many events the job has published.
    async fn events(&mut self, job: &str) -> u64 {
        let id: JobId = job.parse().unwrap();
        let seq: Option<u64> = redis::cmd("GET")
            .arg(keys::event_seq(&id))
            .query_async(&mut self.redis)
            .await
            .unwrap();
        seq.unwrap_or(0)
    }

    /// The kind of the job's last event (`end` once it ended).
    async fn last_event_kind(&mut self, job: &str) -> String {
        let id: JobId = job.parse().unwrap();
        let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(keys::event_log(&id))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis)
            .await
            .unwrap();
        let Some((_, fields)) = last.first() else {
            return String::new();
        };
        let event: serde_json::Value = serde_json::from_str(&fields[0].1).unwrap();
        event["kind"].as_str().unwrap_or_default().to_string()
    }

    fn stop_a(&mut self) {
        let a = self.a.clone();
        self.s.signal_worker(&a, "STOP");
    }

    /// Kills the stopped worker `a`, then brings it back under its name, and `b` with it.
    fn kill_a_and_restart_both(&mut self) {
        let (a, b) = (self.a.clone(), self.b.clone());
        self.s.kill9(&a);
        self.s.restart(&a);
        self.s.restart(&b);
    }

    /// The job ended once, with its whole output last, one record, nothing left behind; then `b` goes down again.
    async fn check(&mut self, point: &str, user: usize, done: Submitted) {
        let Submitted {
            running,
            job,
            expected,
        } = done;
        let ended = running.finish().await;
        self.verify(point, user, &job, &expected, ended).await;
    }

    /// [`Bench::check`] once its student's `rai` has exited.
    async fn verify(
        &mut self,
        point: &str,
        user: usize,
        job: &str,
        expected: &str,
        (code, stdout, stderr): (Option<i32>, String, String),
    ) {
        let logs = || self.s.worker_logs();
        assert_eq!(
            code,
            Some(0),
            "{point}: job {job} did not succeed: {stderr}\n{}",
            logs()
        );
        assert!(
            stdout.ends_with(expected),
            "{point}: job {job}'s last run is not its whole output: {stdout:?}\n{stderr}"
        );
        let history = self.s.rai(user, &["history", "--json", "-n", "1000"]).await;
        let records: Vec<serde_json::Value> = String::from_utf8_lossy(&history.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["id"] == job)
            .collect();
        assert_eq!(
            records.len(),
            1,
            "{point}: job {job} has {} records",
            records.len()
        );
        assert_eq!(
            records[0]["status"], "succeeded",
            "{point}: {:?}",
            records[0]
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.s.containers_left().is_empty() || !self.s.job_dirs_left().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{point}: left behind: {:?} {:?}",
                self.s.containers_left(),
                self.s.job_dirs_left()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let b = self.b.clone();
        self.s.kill9(&b);
    }

    /// Waits until a job holds a claim, checking every millisecond; returns its id.
    async fn wait_claim(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let claimed = self.claimed().await;
            if let Some(found) = claimed.into_iter().next() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no claim within a minute\n{}",
                self.s.worker_logs()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn containers_of_job(job: &str) -> usize {
    rai_testkit::jobs::containers_of(&format!("rai.job={job}"))
}

/// Bytes that do not compress, so the worker takes a while to fetch and unpack them.
fn incompressible(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(n);
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(n as u64)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_point_of_a_jobs_life_loses_nothing() {
    let mut b = Bench::start().await;
    let data = incompressible(48 << 20);

    // Leased, not claimed: the worker is stopped while it waits in the queue, and the job is delivered to it there.
    let mut done = None;
    for attempt in 0..5 {
        b.stop_a();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (running, _dir) = b.submit(0, &["echo leased a", "echo leased b"], &[]);
        let job = Bench::job_of(&running).await;
        let queue = b.s.queue().await;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut leased = false;
        while Instant::now() < deadline && !leased {
            leased = queue.depth().await.unwrap().leased == 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if leased && b.claimed().await.is_empty() {
            b.kill_a_and_restart_both();
            done = Some(Submitted {
                running,
                job,
                expected: "leased a\nleased b\n".into(),
            });
            break;
        }
        // The worker was stopped between two reads: let it run this job, and try again.
        let a = b.a.clone();
        b.s.signal_worker(&a, "CONT");
        let (code, _, stderr) = running.finish().await;
        assert_eq!(code, Some(0), "attempt {attempt}: {stderr}");
    }
    let done = done.expect("the worker was never stopped holding a lease in five tries");
    b.check("leased", 0, done).await;

    // Claimed, before its container: the upload is large, so fetching it takes a while.
    let (running, _dir) = b.submit(
        0,
        &["echo claimed a", "echo claimed b"],
        &[("data.bin", &data)],
    );
    let job = b.wait_claim().await;
    b.stop_a();
    assert_eq!(
        containers_of_job(&job),
        0,
        "claimed: stopped too late, the container exists"
    );
    b.kill_a_and_restart_both();
    let done = Submitted {
        running,
        job,
        expected: "claimed a\nclaimed b\n".into(),
    };
    b.check("claimed", 0, done).await;

    // Ready for a busy slot: another student's long job runs; this one's container is made and waits, unstarted.
    let (long, _long_dir) = b.submit(1, &["echo long; sleep 4; echo long done"], &[]);
    long.wait_stderr("Your job is running on", Duration::from_secs(60))
        .await;
    let (running, _dir) = b.submit(0, &["echo ready a", "echo ready b"], &[]);
    let job = Bench::job_of(&running).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of_job(&job) == 0 {
        assert!(
            Instant::now() < deadline,
            "ready: never made ready\n{}",
            b.s.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop_a();
    assert_eq!(b.events(&job).await, 0, "ready: the job had begun");
    b.kill_a_and_restart_both();
    let long_job = Bench::job_of(&long).await;
    let done = Submitted {
        running,
        job,
        expected: "ready a\nready b\n".into(),
    };
    b.check("ready", 0, done).await;
    let other = b.b.clone();
    b.s.restart(&other);
    let done = Submitted {
        running: long,
        job: long_job,
        expected: "long\nlong done\n".into(),
    };
    b.check("ready (the running job)", 1, done).await;

    // Started: its first line was printed, its second is two seconds away.
    let (running, _dir) = b.submit(0, &["echo started a; sleep 2; echo started b"], &[]);
    let job = Bench::job_of(&running).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.stdout.lock().unwrap().contains("started a") {
        assert!(Instant::now() < deadline, "started: no first line");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.stop_a();
    assert_eq!(
        b.last_event_kind(&job).await,
        "stdout",
        "started: not where it was meant to be"
    );
    b.kill_a_and_restart_both();
    let done = Submitted {
        running,
        job,
        expected: "started a\nstarted b\n".into(),
    };
    b.check("started", 0, done).await;

    // Storing /build: its commands are over; 64 MB that do not compress take a while to pack and store.
    let (running, _dir) = b.submit(
        0,
        &["head -c 67108864 /dev/urandom > /build/big && echo written"],
        &[],
    );
    let job = Bench::job_of(&running).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.stdout.lock().unwrap().contains("written") {
        assert!(
            Instant::now() < deadline,
            "storing: the command never ended"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    b.stop_a();
    assert_ne!(
        b.last_event_kind(&job).await,
        "end",
        "storing: the job had already ended"
    );
    b.kill_a_and_restart_both();
    let done = Submitted {
        running,
        job,
        expected: "written\n".into(),
    };
    b.check("storing /build", 0, done).await;

    // Ended: its end event is out (its student saw it); the ack may not be.
    let (running, _dir) = b.submit(0, &["echo ended"], &[]);
    let job = Bench::job_of(&running).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.last_event_kind(&job).await != "end" {
        assert!(Instant::now() < deadline, "ended: no end");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    b.stop_a();
    b.kill_a_and_restart_both();
    let done = Submitted {
        running,
        job: job.clone(),
        expected: "ended\n".into(),
    };
    b.check("ended", 0, done).await;
    // Never run again: nothing after its end.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.last_event_kind(&job).await, "end", "ended: it ran again");

    // A container of the killed run, made after its successor cleared its leftovers: the job's next run (a first
    // run: it had published nothing) finds the job's container name taken.
    let (running, _dir) = b.submit(0, &["echo stray a", "echo stray b"], &[("data.bin", &data)]);
    let job = b.wait_claim().await;
    b.stop_a();
    assert_eq!(b.events(&job).await, 0, "stray: the job had begun");
    let (a, other) = (b.a.clone(), b.b.clone());
    b.s.kill9(&a);
    // The claim runs out (one and a half leases), so the next run is the job's first, not a rerun.
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.claimed().await.contains(&job) {
        assert!(
            Instant::now() < deadline,
            "stray: the dead worker's claim never ran out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rai_testkit::jobs::leftover_container(&job, &a);
    b.s.restart(&other);
    let ended = running.finish().await;
    assert!(
        b.s.worker_logs()
            .contains("removing a container an earlier run of this job left behind"),
        "stray: the run never met the earlier run's container\n{}",
        b.s.worker_logs()
    );
    b.s.restart(&a);
    b.verify("stray container", 0, &job, "stray a\nstray b\n", ended)
        .await;
}
