//! The student's view of speed, on the local stack (Redis queue, fs store, one `raid` process, the real Docker
//! engine), everything through a `raid gateway` process as students use it, each figure beside a reference measured
//! in the same run:
//!
//!     deploy/local/bench.sh        (or, with the stack up and release binaries built:
//!                                   cargo bench -p rai-client --bench client)
//!
//! 1. hello end to end over a TLS gateway and a TLS Redis (mutual TLS, deploy/redis's ACL users), as a course runs
//!    it: `rai submit` wall time against `docker run --rm` of the same image and command (target ratio <= 1.0), and
//!    against the same on a stack with a plain-HTTP gateway and a plain Redis, measured in the same run (target
//!    <= 1.1: what TLS costs).
//!    The two stacks' runs are taken in turn, and each one's three phases (start -> posted, posted -> first line,
//!    first line -> exit) printed beside each other, to show where a difference lies. `RAI_BENCH_HELLO_ONLY=1`
//!    stops after this part.
//! 2. enqueue -> first output line on the client, p50 of 20 runs (target <= 0.3 s).
//! 3. a job printing 2,000,000 lines (`seq 1 2000000`, 14.9 MB) through TLS (Redis and the gateway): until the
//!    client has printed the last line,
//!    against `docker run --log-driver none` of the same container and command with its output sent to /dev/null
//!    (target ratio <= 1.3), with every line received (count and SHA-256 against the expected output).
//! 4. the client's peak RSS while submitting a 1 GiB directory (target <= 64 MiB), beside `tar` + `zstd` packing
//!    the same directory; on the local stack (streamed through the gateway) and again to S3 on moto (parts sent in
//!    parallel on presigned links).
//!
//! The gateway serves HTTPS and Redis speaks only TLS, with the stack's test CA, as a course's do.
//!
//! Over 450 lines: one benchmark per figure of the student's view, all on one stack.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rai_testkit::bench::{header, peak_rss_kib, percentile, row, secs};
use rai_testkit::stack::{Kind, Options, Stack, project};
use sha2::{Digest, Sha256};

const RUNS: usize = 20;
const LINES: u64 = 2_000_000;

/// One `rai` run, observed from outside: when each interesting thing happened.
struct Observed {
    wall: Duration,
    posted: Option<Duration>,
    first_line: Option<Duration>,
    last_line: Option<Duration>,
    lines: u64,
    sha256: String,
    code: Option<i32>,
}

fn observe(stack: &Stack, args: &[&str]) -> Observed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rai"));
    cmd.args(args)
        .env("HOME", stack.home(0))
        .env_remove("RAI_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let posted = std::thread::spawn(move || {
        let mut posted = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if posted.is_none() && line.contains("posted to the queue") {
                posted = Some(start.elapsed());
            }
        }
        posted
    });
    let mut stdout = child.stdout.take().unwrap();
    let (mut first_line, mut last_line, mut lines) = (None, None, 0u64);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let now = start.elapsed();
        first_line.get_or_insert(now);
        let newlines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if newlines > 0 {
            last_line = Some(now);
        }
        lines += newlines;
        hash.update(&buf[..n]);
    }
    let status = child.wait().unwrap();
    Observed {
        wall: start.elapsed(),
        posted: posted.join().unwrap(),
        first_line,
        last_line,
        lines,
        sha256: format!("{:x}", hash.finalize()),
        code: status.code(),
    }
}

/// [`observe`] on a blocking thread, for the async benchmark.
async fn observed(stack: std::sync::Arc<Stack>, args: Vec<String>) -> Observed {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        observe(&stack, &args)
    })
    .await
    .unwrap()
}

/// One stack's hello runs: each one's wall time and its three phases as the student sees them.
#[derive(Default)]
struct HelloRuns {
    wall: Vec<Duration>,
    /// Start of `rai` to "posted to the queue": profile, key, archive, upload and submit (the client's TLS set-up).
    to_posted: Vec<Duration>,
    /// Posted to the first output line: the worker's lease, container and the event through Redis and the gateway.
    to_first: Vec<Duration>,
    /// First line to `rai`'s exit: the end of the job, the stream's close and the /build download.
    to_exit: Vec<Duration>,
}

impl HelloRuns {
    fn push(&mut self, o: &Observed) {
        assert_eq!((o.code, o.lines), (Some(0), 1), "hello");
        let (posted, first) = (o.posted.unwrap(), o.first_line.unwrap());
        self.wall.push(o.wall);
        self.to_posted.push(posted);
        self.to_first.push(first - posted);
        self.to_exit.push(o.wall - first);
    }
}

/// `RUNS` hello jobs on each of `stacks`, after three to warm up, taken in turn (one on each, then the next) so
/// that a drift of the machine (page cache, CPU clock, Docker's state) weighs on every stack alike.
async fn hello_runs(stacks: &[std::sync::Arc<Stack>], project: &std::path::Path) -> Vec<HelloRuns> {
    let args = vec!["-p".to_string(), project.display().to_string()];
    for stack in stacks {
        for _ in 0..3 {
            assert_eq!(
                observed(stack.clone(), args.clone()).await.code,
                Some(0),
                "warm-up"
            );
        }
    }
    let mut runs: Vec<HelloRuns> = stacks.iter().map(|_| HelloRuns::default()).collect();
    for _ in 0..RUNS {
        for (stack, runs) in stacks.iter().zip(&mut runs) {
            runs.push(&observed(stack.clone(), args.clone()).await);
        }
    }
    runs
}

fn docker_run(args: &[&str], stdout: Stdio) -> Duration {
    let start = Instant::now();
    let ok = Command::new("docker")
        .args(["run", "--rm", "--network", "none"])
        .args(args)
        .stdout(stdout)
        .status()
        .unwrap()
        .success();
    assert!(ok, "docker run {args:?} failed");
    start.elapsed()
}

/// A 1 GiB project: 1,024 files of 1 MiB of incompressible bytes (the worst case for the client: nothing shrinks).
fn gigabyte_project() -> tempfile::TempDir {
    let dir = project(&["true"], &[]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for i in 0..1024 {
        for chunk in block.chunks_mut(8) {
            // xorshift64*: fast and incompressible enough for zstd.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let mut f = std::fs::File::create(dir.path().join(format!("data-{i:04}.bin"))).unwrap();
        f.write_all(&block).unwrap();
    }
    dir
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let image = rai_testkit::image();
    let stack = Stack::start(
        Kind::Local,
        Options {
            concurrency: 1,
            raid_extra: "  limits:\n    log_bytes: 64m\n    upload_bytes: 2g\n",
            client_extra: "  max_upload: 2g\n",
            ..Options::default()
        },
    )
    .await;
    let stack = std::sync::Arc::new(stack);
    let run = |args: Vec<String>| observed(stack.clone(), args);

    // 1 and 2: hello, over TLS and on a plain stack (plain HTTP gateway, plain Redis) for reference, in turn.
    let hello = project(&["echo hello"], &[]);
    let plain = std::sync::Arc::new(
        Stack::start(
            Kind::Local,
            Options {
                concurrency: 1,
                plain_gateway: true,
                plain_redis: true,
                ..Options::default()
            },
        )
        .await,
    );
    let mut hello_by_stack = hello_runs(&[stack.clone(), plain.clone()], hello.path()).await;
    drop(plain);
    let mut plain_runs = hello_by_stack.pop().unwrap();
    let mut tls_runs = hello_by_stack.pop().unwrap();
    let docker_wall: Vec<Duration> = (0..RUNS)
        .map(|_| docker_run(&[&image, "sh", "-c", "echo hello"], Stdio::null()))
        .collect();
    let phases = [
        ("start -> posted to the queue", 0usize),
        ("posted -> first line", 1),
        ("first line -> exit", 2),
    ];
    let phase = |runs: &mut HelloRuns, i: usize| -> Duration {
        let v = match i {
            0 => &mut runs.to_posted,
            1 => &mut runs.to_first,
            _ => &mut runs.to_exit,
        };
        percentile(v, 0.5)
    };
    let mut phase_rows = Vec::new();
    for (name, i) in phases {
        phase_rows.push((name, phase(&mut tls_runs, i), phase(&mut plain_runs, i)));
    }
    if std::env::var_os("RAI_BENCH_HELLO_ONLY").is_some() {
        println!(
            "hello, p50 of {RUNS}: TLS {:.3} s, plain {:.3} s, docker run {:.3} s",
            secs(percentile(&tls_runs.wall, 0.5)),
            secs(percentile(&plain_runs.wall, 0.5)),
            secs(percentile(&docker_wall, 0.5))
        );
        for (name, t, pl) in &phase_rows {
            println!(
                "  {name:<30} TLS {:.4} s  plain {:.4} s",
                secs(*t),
                secs(*pl)
            );
        }
        return;
    }
    let rai_wall = std::mem::take(&mut tls_runs.wall);
    let plain_wall = std::mem::take(&mut plain_runs.wall);
    let to_first = std::mem::take(&mut tls_runs.to_first);

    // 3: 2,000,000 lines.
    let expected = {
        let mut h = Sha256::new();
        for i in 1..=LINES {
            h.update(format!("{i}\n").as_bytes());
        }
        format!("{:x}", h.finalize())
    };
    let seq = project(&[&format!("seq 1 {LINES}")], &[]);
    let seq_args = vec!["-p".to_string(), seq.path().display().to_string()];
    let (mut rai_seq, mut docker_seq, mut lost) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..3 {
        let o = run(seq_args.clone()).await;
        assert_eq!(o.code, Some(0));
        if o.lines != LINES || o.sha256 != expected {
            lost += LINES.saturating_sub(o.lines).max(1);
        }
        rai_seq.push(o.last_line.unwrap());
        docker_seq.push(docker_run(
            &[
                "--log-driver",
                "none",
                &image,
                "seq",
                "1",
                &LINES.to_string(),
            ],
            Stdio::null(),
        ));
    }

    // 4: peak RSS submitting 1 GiB.
    let big = gigabyte_project();
    let (rai_kib, ok) = peak_rss_kib(
        Command::new(env!("CARGO_BIN_EXE_rai"))
            .args(["submit", "--detach", "-p", big.path().to_str().unwrap()])
            .env("HOME", stack.home(0)),
    );
    assert!(ok, "the 1 GiB submit failed");
    // The same on the AWS stack: presigned parts straight to S3 (moto), the gateway completing it; no worker needed.
    let aws = Stack::start(
        Kind::Aws,
        Options {
            workers: 0,
            raid_extra: "  limits:\n    upload_bytes: 2g\n",
            client_extra: "  max_upload: 2g\n",
            ..Options::default()
        },
    )
    .await;
    let (aws_kib, ok) = peak_rss_kib(
        Command::new(env!("CARGO_BIN_EXE_rai"))
            .args(["submit", "--detach", "-p", big.path().to_str().unwrap()])
            .env("HOME", aws.home(0)),
    );
    assert!(ok, "the 1 GiB submit to S3 failed");
    // The shell waits for both, so its peak is the larger of tar's and zstd's.
    let (tar_kib, _) = peak_rss_kib(
        Command::new("sh")
            .args([
                "-c",
                &format!(
                    "tar -cf - -C '{}' . | zstd -T0 -3 -q > /dev/null",
                    big.path().display()
                ),
            ])
            .env("HOME", stack.home(0)),
    );

    println!(
        "rai client, local stack (Redis queue, fs store, one raid, a raid gateway, Docker {image})"
    );
    header("rai", "reference");
    let (r50, d50) = (percentile(&rai_wall, 0.5), percentile(&docker_wall, 0.5));
    row(
        &format!("hello end to end, TLS gateway + TLS Redis, p50 of {RUNS} (ref: docker run --rm)"),
        format!("{:.3} s", secs(r50)),
        format!("{:.3} s", secs(d50)),
        Some(secs(r50) / secs(d50)),
        "<= 1.0",
        Some(secs(r50) / secs(d50) <= 1.0),
    );
    let pl50 = percentile(&plain_wall, 0.5);
    row(
        "  the same against plain HTTP + plain Redis, p50",
        format!("{:.3} s", secs(r50)),
        format!("{:.3} s", secs(pl50)),
        Some(secs(r50) / secs(pl50)),
        "<= 1.1",
        Some(secs(r50) / secs(pl50) <= 1.1),
    );
    for (name, tls, plain) in &phase_rows {
        row(
            &format!("    {name}, p50 (ref: plain)"),
            format!("{:.3} s", secs(*tls)),
            format!("{:.3} s", secs(*plain)),
            Some(secs(*tls) / secs(*plain)),
            "",
            None,
        );
    }
    row(
        "  p99",
        format!("{:.3} s", secs(percentile(&rai_wall, 0.99))),
        format!("{:.3} s", secs(percentile(&docker_wall, 0.99))),
        None,
        "",
        None,
    );
    let (f50, f99) = (percentile(&to_first, 0.5), percentile(&to_first, 0.99));
    row(
        &format!("enqueue -> first line, p50 of {RUNS} (p99)"),
        format!("{:.3} s", secs(f50)),
        format!("({:.3} s)", secs(f99)),
        None,
        "p50 <= 0.3 s",
        Some(secs(f50) <= 0.3),
    );
    let (q50, e50) = (percentile(&rai_seq, 0.5), percentile(&docker_seq, 0.5));
    row(
        "2,000,000 lines through TLS to the last line, median of 3",
        format!("{:.3} s", secs(q50)),
        format!("{:.3} s", secs(e50)),
        Some(secs(q50) / secs(e50)),
        "<= 1.3 (ref: docker run --log-driver none > /dev/null)",
        Some(secs(q50) / secs(e50) <= 1.3),
    );
    row(
        "  lines lost (count and SHA-256 checked)",
        lost.to_string(),
        String::new(),
        None,
        "0",
        Some(lost == 0),
    );
    row(
        "client peak RSS submitting 1 GiB (ref: tar | zstd -T0)",
        format!("{:.1} MiB", rai_kib as f64 / 1024.0),
        format!("{:.1} MiB", tar_kib as f64 / 1024.0),
        Some(rai_kib as f64 / tar_kib as f64),
        "<= 64 MiB",
        Some(rai_kib <= 64 * 1024),
    );
    row(
        "  the same to S3 (moto), presigned parts (ref: tar | zstd -T0)",
        format!("{:.1} MiB", aws_kib as f64 / 1024.0),
        format!("{:.1} MiB", tar_kib as f64 / 1024.0),
        Some(aws_kib as f64 / tar_kib as f64),
        "<= 64 MiB",
        Some(aws_kib <= 64 * 1024),
    );
}
