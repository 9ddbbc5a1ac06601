//! The deadline rush (issue 16): many students submit many quick jobs at once through the gateway, each with the
//! real `rai` client; then every job's state is read back from Redis and the queue's fairness is measured.
//!
//! A job's *wait* is what other students cost it: from the moment it could run to its start. It could run once the
//! gateway accepted it and, since a student's own jobs take one turn at a time, once its owner's previous job ended,
//! or earlier if the queue let it in beside that job (work-conserving turn-taking lets a student's next job start
//! when slots are free and nobody else waits; issue 29): then from its lease. Per student: the mean of their jobs'
//! waits; fairness: Jain's index of those means across students (1 = everyone waited alike). Head-of-line: for each
//! student with a single job, the most jobs of any one other student that a worker leased between that job's
//! acceptance and its lease (jobs leased before it arrived were not put ahead of it).
//!
//! The strict forms of issue 16 are reported beside them: the wait from the previous job's end whatever the lease
//! (a job let in beside its owner's running one then counts as having waited 0), and head-of-line by starts (jobs
//! already leased when the single job arrived count too).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rai_backends::events::EventBus;
use rai_common::JobId;

use crate::stack::{Kind, Options, Stack, job_id, project, rai_command};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub workers: usize,
    pub students: usize,
    pub jobs: usize,
    /// The most jobs one student submits (each submits 1 to this many).
    pub most_per_student: usize,
    /// `rai` processes submitting at once.
    pub parallel: usize,
    /// The window the students arrive in: each starts at a random moment of it and submits their jobs one after
    /// another.
    pub window: Duration,
    pub fair_share: bool,
    /// How long the whole run may take.
    pub limit: Duration,
}

/// What came of it.
#[derive(Debug, Default)]
pub struct Report {
    pub submitted: usize,
    pub accepted: usize,
    /// Refusals by reason.
    pub refused: BTreeMap<String, usize>,
    /// Accepted jobs that did not end (or ended other than succeeded) within the limit.
    pub lost: Vec<String>,
    pub submit_time: Duration,
    pub elapsed: Duration,
    /// Per-student mean waits, in seconds.
    pub student_waits: Vec<f64>,
    pub per_job_waits: Vec<f64>,
    pub jain: f64,
    /// Jain's index of the students' mean waits per competing student: each wait divided by how many other
    /// students had a job in the system when it became ready (at least 1). It discounts what the arrival time
    /// alone explains (a quiet queue, a full one) and keeps what the scheduler decides.
    pub jain_per_competitor: f64,
    /// The most jobs of one other student leased while a one-job student's job waited.
    pub worst_head_of_line: usize,
    /// Jain's index of mean waits counted from the owner's previous job's end (issue 16's form).
    pub jain_strict: f64,
    /// The most jobs of one other student that started while a one-job student's job waited (issue 16's form).
    pub worst_head_of_line_by_start: usize,
    /// Every ended job's times, for looking into a figure ([`Report::write_csv`]).
    pub jobs: Vec<JobTimes>,
}

/// One job of the rush, its times in seconds from the run's start.
#[derive(Debug, Clone)]
pub struct JobTimes {
    pub student: usize,
    /// How many jobs its student submitted.
    pub of: usize,
    pub accepted: f64,
    /// When it could run (see the module's overview): its wait is `started - ready`.
    pub ready: f64,
    pub leased: f64,
    pub started: f64,
    pub finished: f64,
}

impl Report {
    /// Each job's wait until a worker leased it: the queue's part of the wait.
    pub fn lease_waits(&self) -> Vec<f64> {
        self.jobs
            .iter()
            .map(|j| (j.leased - j.ready).max(0.0))
            .collect()
    }

    /// Each job's time from its lease (or its ready moment, if later) to its start: the worker's set-up, which
    /// includes a job prepared ahead waiting for its slot.
    pub fn setups(&self) -> Vec<f64> {
        self.jobs
            .iter()
            .map(|j| j.started - j.leased.max(j.ready))
            .collect()
    }

    /// Writes [`Report::jobs`] as CSV (student, of, accepted, ready, leased, started, finished, wait).
    pub fn write_csv(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::fmt::Write;
        let mut out = String::from("student,of,accepted,ready,leased,started,finished,wait\n");
        for j in &self.jobs {
            let _ = writeln!(
                out,
                "{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}",
                j.student,
                j.of,
                j.accepted,
                j.ready,
                j.leased,
                j.started,
                j.finished,
                j.started - j.ready
            );
        }
        std::fs::write(path, out)
    }
}

/// How many jobs each student submits: 1 to `most`, skewed toward few (as in a real rush), summing to `jobs`.
pub fn job_counts(students: usize, jobs: usize, most: usize) -> Vec<usize> {
    assert!(students <= jobs && jobs <= students * most);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut counts: Vec<usize> = (0..students)
        .map(|_| {
            // The square of a uniform number: many students with a few jobs, some with many.
            let u = (next() % 10_000) as f64 / 10_000.0;
            1 + ((most - 1) as f64 * u * u) as usize
        })
        .collect();
    let mut total: usize = counts.iter().sum();
    let mut i = 0;
    while total != jobs {
        let c = &mut counts[i % students];
        if total < jobs && *c < most {
            *c += 1;
            total += 1;
        } else if total > jobs && *c > 1 {
            *c -= 1;
            total -= 1;
        }
        i += 7;
    }
    counts
}

/// Jain's fairness index of `xs`: (Σx)² / (n·Σx²); 1 when all are equal.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (xs.len() as f64 * squares)
}

struct Submitted {
    student: usize,
    job: String,
}

/// Runs the rush.
pub async fn run(plan: Plan) -> Report {
    let extra: &'static str = if plan.fair_share {
        "  fair_share: true\n"
    } else {
        "  fair_share: false\n"
    };
    let stack = Stack::start(
        plan.kind,
        Options {
            workers: plan.workers,
            users: plan.students,
            concurrency: 2,
            gateway_extra: extra,
            ..Options::default()
        },
    )
    .await;
    let counts = job_counts(plan.students, plan.jobs, plan.most_per_student);
    let started = Instant::now();
    // Each student arrives at a random moment of the window and submits their jobs one after another
    // (`rai submit --detach`); `parallel` submitting at a time.
    let homes: Vec<PathBuf> = stack.homes.iter().map(|h| h.path().to_path_buf()).collect();
    let project = Arc::new(project(&["echo ok"], &[]));
    let queue = Arc::new(std::sync::Mutex::new({
        let mut seed: u64 = 42;
        let mut arrivals: Vec<(Duration, usize)> = (0..plan.students)
            .map(|s| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let frac = (seed >> 11) as f64 / (1u64 << 53) as f64;
                (plan.window.mul_f64(frac), s)
            })
            .collect();
        // Latest last: workers pop from the end, so reverse.
        arrivals.sort();
        arrivals.reverse();
        arrivals
    }));
    let results = Arc::new(std::sync::Mutex::new((
        Vec::<Submitted>::new(),
        BTreeMap::<String, usize>::new(),
    )));
    let mut tasks = Vec::new();
    for _ in 0..plan.parallel {
        let (queue, results, homes, counts, project) = (
            queue.clone(),
            results.clone(),
            homes.clone(),
            counts.clone(),
            project.clone(),
        );
        tasks.push(tokio::task::spawn_blocking(move || {
            loop {
                let Some((at, student)) = queue.lock().unwrap().pop() else {
                    return;
                };
                if let Some(wait) = at.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
                for _ in 0..counts[student] {
                    let out = rai_command(
                        &homes[student],
                        &["submit", "--detach", "-p", project.path().to_str().unwrap()],
                    )
                    .output()
                    .unwrap();
                    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
                    let mut r = results.lock().unwrap();
                    if out.status.success() {
                        r.0.push(Submitted {
                            student,
                            job: job_id(&stderr),
                        });
                    } else {
                        let reason = stderr
                            .lines()
                            .find(|l| l.contains("rejected") || l.starts_with("rai:"))
                            .unwrap_or("no reason given")
                            .to_string();
                        *r.1.entry(reason).or_default() += 1;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let submit_time = started.elapsed();
    let (submitted, refused) = std::mem::take(&mut *results.lock().unwrap());
    let bus = EventBus::connect(stack.redis.target(), Duration::from_secs(3600))
        .await
        .unwrap();
    // Wait for every accepted job to end.
    let mut states = HashMap::new();
    let deadline = started + plan.limit;
    loop {
        for s in &submitted {
            if states.contains_key(&s.job) {
                continue;
            }
            let Ok(id) = s.job.parse::<JobId>() else {
                continue;
            };
            if let Ok(Some(state)) = bus.state(&id).await
                && state.status.is_some_and(|st| st.is_final())
            {
                states.insert(s.job.clone(), state);
            }
        }
        if states.len() == submitted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut report = Report {
        submitted: counts.iter().sum(),
        accepted: submitted.len(),
        refused,
        submit_time,
        elapsed: started.elapsed(),
        ..Report::default()
    };
    /// accepted, leased, started, finished.
    type Times = (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);
    let mut by_student: BTreeMap<usize, Vec<(String, Times)>> = BTreeMap::new();
    for s in &submitted {
        let state = states.get(&s.job);
        let times = state.and_then(|st| {
            Some((
                st.submitted_at?,
                st.leased_at?,
                st.started_at?,
                st.finished_at?,
            ))
        });
        match (state.and_then(|st| st.status), times) {
            (Some(rai_common::event::JobStatus::Succeeded), Some(t)) => by_student
                .entry(s.student)
                .or_default()
                .push((s.job.clone(), t)),
            (status, _) => report.lost.push(format!("{} ({status:?})", s.job)),
        }
    }
    let secs = |d: chrono::Duration| d.num_milliseconds().max(0) as f64 / 1000.0;
    let run_start = Utc::now() - chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    let at = |t: DateTime<Utc>| (t - run_start).num_milliseconds() as f64 / 1000.0;
    // (student, leased, started) of every job.
    let mut starts: Vec<(usize, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    // Who is in the system when: (student, accepted, finished) of every job.
    let spans: Vec<(usize, DateTime<Utc>, DateTime<Utc>)> = by_student
        .iter()
        .flat_map(|(s, jobs)| jobs.iter().map(move |(_, t)| (*s, t.0, t.3)))
        .collect();
    let mut per_competitor = Vec::new();
    let mut strict_means = Vec::new();
    for (student, jobs) in &mut by_student {
        jobs.sort_by_key(|(_, t)| t.0);
        let mut previous_end: Option<DateTime<Utc>> = None;
        let (mut waits, mut strict, mut normalized) = (Vec::new(), Vec::new(), Vec::new());
        for (_, (accepted, leased, start, end)) in jobs.iter() {
            let after_previous = previous_end.map_or(*accepted, |p| p.max(*accepted));
            // Let in beside the previous job: it could run from its lease.
            let ready = after_previous.min((*leased).max(*accepted));
            waits.push(secs(*start - ready));
            strict.push(secs(*start - after_previous));
            let mut others: Vec<usize> = spans
                .iter()
                .filter(|(s, a, f)| s != student && *a <= ready && *f > ready)
                .map(|(s, _, _)| *s)
                .collect();
            others.sort_unstable();
            others.dedup();
            normalized.push(secs(*start - ready) / others.len().max(1) as f64);
            report.jobs.push(JobTimes {
                student: *student,
                of: counts[*student],
                accepted: at(*accepted),
                ready: at(ready),
                leased: at(*leased),
                started: at(*start),
                finished: at(*end),
            });
            previous_end = Some(*end);
            starts.push((*student, *leased, *start));
        }
        report.per_job_waits.extend(&waits);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        report.student_waits.push(mean(&waits));
        strict_means.push(mean(&strict));
        per_competitor.push(mean(&normalized));
    }
    report.jain = jain(&report.student_waits);
    report.jain_strict = jain(&strict_means);
    report.jain_per_competitor = jain(&per_competitor);
    for (student, jobs) in &by_student {
        if counts[*student] != 1 || jobs.len() != 1 {
            continue;
        }
        let (accepted, leased, start, _) = jobs[0].1;
        let (mut by_lease, mut by_start): (HashMap<usize, usize>, HashMap<usize, usize>) =
            (HashMap::new(), HashMap::new());
        for (other, other_leased, other_start) in &starts {
            if other == student {
                continue;
            }
            if *other_leased > accepted && *other_leased < leased {
                *by_lease.entry(*other).or_default() += 1;
            }
            if *other_start > accepted && *other_start < start {
                *by_start.entry(*other).or_default() += 1;
            }
        }
        let worst = |m: &HashMap<usize, usize>| m.values().copied().max().unwrap_or(0);
        report.worst_head_of_line = report.worst_head_of_line.max(worst(&by_lease));
        report.worst_head_of_line_by_start =
            report.worst_head_of_line_by_start.max(worst(&by_start));
    }
    report.per_job_waits.sort_by(f64::total_cmp);
    report.student_waits.sort_by(f64::total_cmp);
    drop(stack);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_and_stay_in_range() {
        let c = job_counts(300, 1500, 20);
        assert_eq!(c.iter().sum::<usize>(), 1500);
        assert!(c.iter().all(|&n| (1..=20).contains(&n)));
        assert!(
            c.iter().filter(|&&n| n == 1).count() > 10,
            "some students have one job"
        );
        assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-9);
        assert!((jain(&[1.0, 0.0]) - 0.5).abs() < 1e-9);
    }
}
