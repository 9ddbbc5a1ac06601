//! Sweeps (issue 31, part 2), through the `rai` binary on the local stack as a course runs it (gateway over TLS,
//! Redis over TLS with deploy/redis's ACL users): `matrix:` makes one job per combination from one upload, each
//! with its values in its environment; `rai submit` follows them all with prefixed lines and ends with a table and
//! the first failing job's code; a sweep is one submission to the course's interval quota; the history keeps each job's sweep and combination; the course caps a sweep's size
//! before anything is queued; `rai status SWEEP` lists its jobs, and the line `rai submit --detach` prints
//! (`rai cancel SWEEP`) stops them all, which no other student can.

use rai_testkit::stack::{Kind, Options, Stack, text};

/// A project of a source file and some data, whose build file has the matrix `matrix` and runs `commands`.
fn project(matrix: &str, commands: &[&str]) -> tempfile::TempDir {
    let dir = rai_testkit::stack::project_with(
        &rai_testkit::image(),
        &format!("matrix:\n{matrix}"),
        commands,
    );
    std::fs::write(dir.path().join("main.cu"), "int main() { return 0; }\n").unwrap();
    std::fs::write(dir.path().join("data.bin"), vec![7u8; 256 * 1024]).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_makes_one_job_per_combination_from_one_upload() {
    let s = Stack::start(
        Kind::Local,
        Options {
            // One submission every 30 s: a sweep is one submission, so all four jobs are taken.
            gateway_extra: "  max_sweep: 4\n  quotas:\n    min_interval: 30s\n",
            ..Options::default()
        },
    )
    .await;
    let p = project(
        "  block: [16, 32]\n  n: [1000000, 10000000]\n",
        &[
            "echo \"block $RAI_MATRIX_BLOCK n $RAI_MATRIX_N\"",
            "[ \"$RAI_MATRIX_BLOCK\" != 32 ] || [ \"$RAI_MATRIX_N\" != 10000000 ] || { echo bad setting >&2; exit 4; }",
        ],
    );
    let out = s
        .rai(0, &["submit", "-p", p.path().to_str().unwrap()])
        .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // The first unsuccessful job's code, in the matrix's order.
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    for line in [
        "[block=16 n=1e6] block 16 n 1000000\n",
        "[block=16 n=1e7] block 16 n 10000000\n",
        "[block=32 n=1e6] block 32 n 1000000\n",
        "[block=32 n=1e7] block 32 n 10000000\n",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(
        stderr.contains("[block=32 n=1e7] bad setting\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("✱ A sweep of 4 jobs: one per combination of block (2) x n (2)."),
        "{stderr}"
    );
    assert!(
        stderr.contains("[block=16 n=1e6] ✱ Running echo"),
        "{stderr}"
    );
    // The table: every combination, its status and code, and the worker's time of each command.
    let table: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("combination"))
        .collect();
    assert_eq!(table.len(), 5, "{stderr}");
    for (row, (label, status, code)) in table[1..].iter().zip([
        ("block=16 n=1e6", "succeeded", "0"),
        ("block=16 n=1e7", "succeeded", "0"),
        ("block=32 n=1e6", "succeeded", "0"),
        ("block=32 n=1e7", "failed", "4"),
    ]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            (format!("{} {}", cells[0], cells[1]), cells[3], cells[4]),
            (label.to_string(), status, code),
            "{row}"
        );
        assert_eq!(cells.len(), 7, "two command times: {row}");
        assert!(cells[5].parse::<f64>().is_ok(), "{row}");
    }
    // Sent once: the first job's declaration lacked the chunks, the three others lacked none.
    let logs = s.worker_logs();
    let declared: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("a project was declared"))
        .collect();
    assert_eq!(declared.len(), 4, "{logs}");
    assert_eq!(
        declared
            .iter()
            .filter(|l| l.contains(" missing=0 "))
            .count(),
        3,
        "{declared:#?}"
    );
    // The history keeps each job's sweep and combination.
    let out = s.rai(0, &["history", "--json"]).await;
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4);
    let sweep = records[0]["sweep"].as_str().unwrap().to_string();
    assert!(records.iter().all(|r| r["sweep"] == sweep.as_str()));
    let mut labels: Vec<&str> = records
        .iter()
        .map(|r| r["combination"].as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            "block=16 n=1e6",
            "block=16 n=1e7",
            "block=32 n=1e6",
            "block=32 n=1e7"
        ]
    );

    // Over the course's cap: refused before anything is queued.
    let p = project("  block: [16, 32, 64]\n  n: [1, 2]\n", &["echo never"]);
    let out = s
        .rai(0, &["submit", "-p", p.path().to_str().unwrap()])
        .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("the matrix makes 6 jobs; this course allows at most 4"),
        "{stderr}"
    );
    let out = s.rai(0, &["history", "--json"]).await;
    assert_eq!(text(&out.stdout).lines().count(), 4, "nothing more ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_a_detached_sweep_prints_cancels_all_its_jobs() {
    let s = Stack::start(
        Kind::Local,
        Options {
            users: 2,
            ..Options::default()
        },
    )
    .await;
    let p = project("  block: [16, 32, 64]\n", &["echo started; sleep 60"]);
    let out = s
        .rai(0, &["submit", "--detach", "-p", p.path().to_str().unwrap()])
        .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let cancel = stderr
        .split("stop them all with `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or_else(|| panic!("no cancel line in {stderr}"));
    let args: Vec<&str> = cancel.split_whitespace().skip(1).collect();
    assert_eq!(args.len(), 2, "cancel and the sweep's id: {cancel}");
    let sweep = args[1];
    let jobs: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("✱ Job "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(jobs.len(), 3, "{stderr}");
    // The sweep's status lists its jobs, by combination.
    let out = s.rai(0, &["status", sweep]).await;
    let status = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        status.contains(&format!("sweep:    {sweep} (3 jobs)")),
        "{status}"
    );
    for (job, label) in jobs.iter().zip(["block=16", "block=32", "block=64"]) {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(label) && l.contains(job)),
            "{label} {job} in {status}"
        );
    }
    // Over TLS, an unsigned request learns nothing and stops nothing.
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/sweeps/{sweep}")),
        (reqwest::Method::POST, format!("/v1/sweeps/{sweep}/cancel")),
    ] {
        let unsigned = s
            .http()
            .request(method, format!("{}{path}", s.gateways[0].url))
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401, "{path}");
    }
    // Another student neither sees nor cancels it.
    let out = s.rai(1, &["status", sweep]).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = s.rai(1, &["cancel", sweep]).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = s.rai(0, &args).await;
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("cancel the 3 jobs of sweep"), "{said}");
    for id in &jobs {
        let out = s.rai(0, &["logs", "-f", id]).await;
        assert_eq!(
            out.status.code(),
            Some(143),
            "job {id} was cancelled: {}",
            text(&out.stderr)
        );
    }
}
