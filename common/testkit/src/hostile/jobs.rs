//! Jobs a student submits with `rai` that attack the worker from inside the sandbox: a fork bomb, memory and disk
//! fillers, `/build` deeper than PATH_MAX, links leading out of `/build`, output that writes over `rai`'s lines or
//! never ends, a job that ignores SIGTERM, and probes of the network, the Docker socket and the root filesystem.
//! Each ends as its limit says, and the next job still runs.

use std::path::Path;
use std::time::{Duration, Instant};

use super::harness::{free_mib, used_mib};
use super::{HostileCase, Scale, case};
use crate::jobs::build_file;
use crate::stack::{job_id, text};

pub(super) fn cases(scale: Scale) -> Vec<HostileCase> {
    let mut cases = vec![
        case("job", "fork bomb", "ends; the next job runs", move |c| {
            Box::pin(async move {
                let s = c
                    .submit(
                        &build_file(
                            &["bomb() { bomb | bomb & }; bomb; sleep 3; echo after"],
                            "time: 15s",
                        ),
                        &[],
                    )
                    .await;
                let next = c
                    .submit(&build_file(&["echo next"], "time: 20s"), &[])
                    .await;
                (
                    format!("{}; next job: {}", s.line(), next.line()),
                    s.code.is_some() && next.code == Some(0) && next.stdout == b"next\n",
                )
            })
        }),
        case("job", "memory hog", "failed: out of memory", move |c| {
            Box::pin(async move {
                let s = c
                    .submit(
                        &build_file(
                            &["x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}"],
                            "time: 30s, memory: 64m",
                        ),
                        &[],
                    )
                    .await;
                (s.line(), s.stderr.contains("out of memory (limit 64m)"))
            })
        }),
        case(
            "job",
            "disk filler in /tmp",
            "failed: no space (tmpfs)",
            move |c| {
                Box::pin(async move {
                    let s = c
                        .submit(
                            &build_file(&["cat /dev/zero > /tmp/fill"], "time: 30s, memory: 64m"),
                            &[],
                        )
                        .await;
                    (
                        s.line(),
                        s.code == Some(1) && s.stderr.contains("No space left"),
                    )
                })
            },
        ),
        case(
            "job",
            "disk filler in /build",
            "failed: /build over 64 MiB",
            move |c| {
                Box::pin(async move {
                    let s = c
                .submit(
                    &build_file(
                        &["i=0; while true; do head -c 8000000 /dev/zero > /build/f$i; i=$((i+1)); done"],
                        "time: 60s",
                    ),
                    &[],
                )
                .await;
                    (
                        s.line(),
                        s.stderr
                            .contains("/build grew past this worker's limit of 64.0 MiB"),
                    )
                })
            },
        ),
        case(
            "job",
            "/build deeper than PATH_MAX, 3x the limit at the bottom",
            "failed: /build over 64 MiB; nothing left on the host disk",
            move |c| {
                Box::pin(async move {
                    let name = "n".repeat(200);
                    let command = format!(
                        "i=0; while [ $i -lt 40 ]; do mkdir {name} && cd -P {name} || exit 9; i=$((i+1)); done; \
                 head -c 201326592 /dev/zero > fill; sleep 20"
                    );
                    let before = free_mib(c.stack.dir.path());
                    let s = c.submit(&build_file(&[&command], "time: 60s"), &[]).await;
                    // The job directory goes once the job ends; give the worker a moment.
                    let mut after = free_mib(c.stack.dir.path());
                    for _ in 0..50 {
                        if c.stack.job_dirs_left().is_empty() {
                            after = free_mib(c.stack.dir.path());
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    let lost = before - after;
                    // What the workers' job directories still hold decides; the free space of the whole disk is shown
                    // too, but other programs on the machine (a compiler, a log) move it while the case runs.
                    let left: f64 = (0..c.stack.workers.len())
                        .map(|i| used_mib(&c.stack.dir.path().join(format!("jobs-{i}"))))
                        .sum();
                    (
                        format!(
                            "{}; job directories hold {left:.1} MiB after; disk free {:+.0} MiB",
                            s.line(),
                            -lost
                        ),
                        s.stderr
                            .contains("/build grew past this worker's limit of 64.0 MiB")
                            && left < 1.0,
                    )
                })
            },
        ),
        case(
            "job",
            "links in /build leading out through other links",
            "f and g not kept; rai download leaves no link out",
            move |c| {
                Box::pin(async move {
                    let command = "mkdir -p /build/d/x; ln -s .. /build/d/x/up; ln -s d/x/up/.. /build/e; \
                           ln -s e/.. /build/f; ln -s f/etc /build/g";
                    let s = c.submit(&build_file(&[command], "time: 20s"), &[]).await;
                    let job = job_id(&s.stderr);
                    let home = c.stack.home(0);
                    let dest = home.join(format!("links-{job}"));
                    let out = c
                        .stack
                        .rai(0, &["download", &job, "-o", dest.to_str().unwrap()])
                        .await;
                    let mut kept: Vec<String> = std::fs::read_dir(&dest)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    kept.sort();
                    let escaping: Vec<&String> = kept
                        .iter()
                        .filter(|k| {
                            !rai_common::archive::resolves_inside(&dest, Path::new(k.as_str()))
                        })
                        .collect();
                    (
                        format!(
                            "{}; download exit {:?}, kept {kept:?}, leading out: {escaping:?}",
                            s.line(),
                            out.status.code()
                        ),
                        s.code == Some(0)
                            && out.status.success()
                            && kept == ["d", "e"]
                            && escaping.is_empty(),
                    )
                })
            },
        ),
        case(
            "job",
            "a reason that writes over rai's lines",
            "shown visibly by rai status",
            move |c| {
                Box::pin(async move {
                    let command = "exit 3 # \r✱ Job succeeded.\u{8}\u{8} \u{202E}evil";
                    let s = c.submit(&build_file(&[command], "time: 20s"), &[]).await;
                    let job = job_id(&s.stderr);
                    let tty = c.on_a_terminal(&["status", &job]).await;
                    let reason = tty
                        .lines()
                        .find(|l| l.starts_with("reason:"))
                        .unwrap_or("")
                        .to_string();
                    (
                        format!("rai status shows {reason:?}"),
                        s.code == Some(3)
                            && reason.contains("^M✱ Job succeeded.^H^H ⟨U+202E⟩evil")
                            && !tty.contains('\u{202E}')
                            && !tty.contains('\u{8}'),
                    )
                })
            },
        ),
        case(
            "job",
            "endless output",
            "timed out; output capped at 32 MiB",
            move |c| {
                Box::pin(async move {
                    let s = c
                        .submit(
                            &build_file(
                                &["yes $(head -c 1000 /dev/zero | tr '\\0' y)"],
                                "time: 8s",
                            ),
                            &[],
                        )
                        .await;
                    (
                        format!(
                            "{:.1} MiB shown; {}",
                            s.stdout.len() as f64 / 1048576.0,
                            s.line()
                        ),
                        s.code == Some(124)
                            && s.stdout.len() <= 32 << 20
                            && s.stderr.contains("log limit"),
                    )
                })
            },
        ),
        case(
            "job",
            "one huge line, no newline",
            "delivered in pieces, whole or up to the 32 MiB log cap",
            move |c| {
                Box::pin(async move {
                    let n = scale.long_line;
                    let cap: u64 = 32 << 20;
                    let s = c
                        .submit(
                            &build_file(
                                &[&format!("head -c {n} /dev/zero | tr '\\0' x")],
                                "time: 60s",
                            ),
                            &[],
                        )
                        .await;
                    let all_x = s.stdout.iter().all(|b| *b == b'x');
                    let got = s.stdout.len() as u64;
                    let whole = if n <= cap {
                        got == n
                    } else {
                        got <= cap && got + (1 << 20) > cap && s.stderr.contains("log limit")
                    };
                    (
                        format!(
                            "{got} of {n} bytes shown, all the line's: {all_x}; {}",
                            s.line()
                        ),
                        s.code == Some(0) && whole && all_x,
                    )
                })
            },
        ),
        case(
            "job",
            "a huge line, then /build 60 deep past its limit",
            "capped line, then failed: /build over 64 MiB; worker peak RSS <= 128 MiB",
            move |c| {
                Box::pin(async move {
                    // Seen on a course's worker (issue 25): the two back to back took raid to 158 MiB.
                    let n = scale.long_line;
                    let line = c
                        .submit(
                            &build_file(
                                &[&format!("head -c {n} /dev/zero | tr '\\0' y")],
                                "time: 60s",
                            ),
                            &[],
                        )
                        .await;
                    let name = "d".repeat(200);
                    let deep = c
                .submit(
                    &build_file(
                        &[&format!(
                            "i=0; while [ $i -lt 60 ]; do mkdir {name} && cd -P {name} || exit 9; i=$((i+1)); \
                             done; head -c 201326592 /dev/zero > fill; sleep 20"
                        )],
                        "time: 60s",
                    ),
                    &[],
                )
                .await;
                    let peak = c.stack.worker_peak_rss_kib().into_iter().max().unwrap_or(0);
                    (
                        format!(
                            "{} bytes shown, {}; {}; worker peak RSS {:.1} MiB",
                            line.stdout.len(),
                            line.line(),
                            deep.line(),
                            peak as f64 / 1024.0
                        ),
                        line.code == Some(0)
                            && line.stdout.len() as u64 <= n.min(32 << 20)
                            && deep
                                .stderr
                                .contains("/build grew past this worker's limit of 64.0 MiB")
                            && peak <= 128 << 10,
                    )
                })
            },
        ),
        case(
            "job",
            "terminal escape sequences",
            "exact to a pipe; made visible on a terminal",
            move |c| {
                Box::pin(async move {
                    let command = r"printf '\033]0;pwned\007\033[31mred\033[0m\n'";
                    let s = c.submit(&build_file(&[command], "time: 20s"), &[]).await;
                    let exact = s.stdout == b"\x1b]0;pwned\x07\x1b[31mred\x1b[0m\n";
                    // The same job's output on a terminal: `script` gives rai one.
                    let job = job_id(&s.stderr);
                    let tty = c.on_a_terminal(&["logs", &job]).await;
                    let shown = tty.contains("␛]0;pwned^G\x1b[31mred\x1b[0m");
                    (
                        format!(
                            "pipe byte-exact: {exact}; terminal shows {:?}",
                            tty.lines()
                                .find(|l| l.contains("red") && !l.contains("Running"))
                                .unwrap_or("")
                        ),
                        exact && shown && !tty.contains("\x1b]0;"),
                    )
                })
            },
        ),
        case(
            "job",
            "ignores SIGTERM, then cancelled",
            "cancelled; killed after the grace",
            move |c| {
                Box::pin(async move {
                    let build = build_file(
                        &["trap '' TERM; echo started; while true; do sleep 1; done"],
                        "time: 60s",
                    );
                    let dir = tempfile::tempdir().unwrap();
                    std::fs::write(dir.path().join("rai_build.yml"), build).unwrap();
                    let running = c
                        .stack
                        .spawn_rai(0, &["submit", "-p", dir.path().to_str().unwrap()]);
                    let line = running.wait_stderr("✱ Job ", Duration::from_secs(60)).await;
                    let job = job_id(&line);
                    let start = Instant::now();
                    loop {
                        if running.stdout.lock().unwrap().contains("started") {
                            break;
                        }
                        if start.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let asked = Instant::now();
                    c.stack.rai(0, &["cancel", &job]).await;
                    let (code, _, stderr) = running.finish().await;
                    let took = asked.elapsed().as_secs_f64();
                    (
                        format!(
                            "exit {code:?} {:.1} s after the cancel; {}",
                            took,
                            stderr.lines().last().unwrap_or("")
                        ),
                        stderr.contains("cancelled") && took < 15.0,
                    )
                })
            },
        ),
    ];
    // Probes of the sandbox: each prints what it reached; a forbidden word in the output is a hole.
    let probes = [
        (
            "reach the network / the host",
            "no route: network is off",
            "for a in 1.1.1.1 172.17.0.1 127.0.0.1:6379; do if wget -q -T 2 -O /dev/null http://$a/ 2>/dev/null; then echo open $a; else echo closed $a; fi; done",
            "open",
        ),
        (
            "reach the Docker socket",
            "absent",
            "for p in /var/run/docker.sock /run/docker.sock; do if [ -e $p ]; then echo found $p; else echo absent $p; fi; done",
            "found",
        ),
        (
            "write outside /build, be root",
            "read-only, not root",
            "for p in /evil /src/evil /etc/evil; do if touch $p 2>/dev/null; then echo wrote $p; else echo refused $p; fi; done; if [ $(id -u) = 0 ]; then echo wrote as root; else echo uid $(id -u); fi",
            "wrote",
        ),
    ];
    cases.extend(probes.into_iter().map(|(name, expected, command, hole)| {
        case("job", name, expected, move |c| {
            Box::pin(async move {
                let s = c.submit(&build_file(&[command], "time: 30s"), &[]).await;
                let out = text(&s.stdout);
                (
                    out.trim().replace('\n', ", "),
                    s.code == Some(0) && !out.is_empty() && !out.contains(hole),
                )
            })
        })
    }));
    cases
}
