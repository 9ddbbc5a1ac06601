//! `rai submit` of a build file with `matrix:`: a sweep. One job per combination of values, the project sent once
//! (the first job sends its chunks; each other job declares the same chunks, which the gateway then has, so only its
//! manifest travels), all of them followed at once with each line prefixed by its combination (`[block=32 n=1e7]`),
//! and a table at the end: combination, job, status, exit code and the worker's time of each command, so the fastest
//! setting is read off at once. `--json` gives each event with its job and combination, then the table as JSON.
//!
//! A sweep is queued whole or not at all: when a job of it is refused, the ones already queued are cancelled.
//! `rai status SWEEP` lists its jobs and `rai cancel SWEEP` stops them all (the gateway knows a sweep's jobs).

use std::collections::HashMap;
use std::io::Write;

use chrono::Utc;
use rai_common::JobId;
use rai_common::build_spec::Combination;
use rai_common::event::{Event, EventBody, JobStatus};
use rai_common::job::{JobRequest, SweepMember};

use super::submit::{Checked, SubmitArgs, refused, say, upload};
use crate::client::ClientError;
use crate::{Client, exit, follow, terminal};

/// One job of the sweep.
struct Member {
    job: JobId,
    combination: Combination,
    label: String,
    /// Whether the next byte of its stdout / stderr starts a line (and so gets the prefix).
    at_line_start: [bool; 2],
    end: Option<(JobStatus, Option<i64>)>,
}

pub(super) async fn run(args: &SubmitArgs, checked: Checked) -> anyhow::Result<u8> {
    let json = args.json;
    if args.assignment.is_some() {
        eprintln!(
            "rai: a sweep (matrix: in the build file) cannot be a graded submission; submit the setting you chose, \
             without the matrix"
        );
        return Ok(exit::USAGE);
    }
    let Checked {
        spec,
        config,
        profile,
        key,
        queue_name,
        project,
        ..
    } = checked;
    let client = Client::new(&config.client, &profile.username, key.clone())?;
    let combinations = spec.matrix.combinations();
    let size = combinations.len() as u32;
    let sweep = JobId::new();
    let datasets: Vec<String> = spec.datasets().into_iter().map(String::from).collect();
    say(
        json,
        &format!(
            "A sweep of {size} job{}: one per combination of {}.",
            if size == 1 { "" } else { "s" },
            spec.matrix
                .0
                .iter()
                .map(|(n, v)| format!("{n} ({})", v.len()))
                .collect::<Vec<_>>()
                .join(" x ")
        ),
    );
    let mut members: Vec<Member> = Vec::new();
    let mut shown = None;
    for (i, combination) in combinations.into_iter().enumerate() {
        let job = JobId::new();
        // The first job sends the project; the others only declare it (quietly): its chunks are there by then.
        let sent = upload(
            &client,
            json || i > 0,
            job,
            &project,
            &datasets,
            config.client.chunked_uploads,
        )
        .await?;
        let uploaded = match sent {
            Ok(uploaded) => uploaded,
            Err(code) => {
                withdraw(&client, &members).await;
                return Ok(code);
            }
        };
        if i == 0 {
            for skipped in &uploaded.summary.skipped {
                say(
                    json,
                    &format!("Left out {}: {}.", skipped.path.display(), skipped.reason),
                );
            }
            shown = Some((uploaded.summary.files, uploaded.shown_size));
        }
        let request = JobRequest {
            id: job,
            user: profile.username.clone(),
            team: profile.team.name.clone(),
            queue: queue_name.clone(),
            created_at: Utc::now(),
            client_version: rai_common::VERSION.into(),
            build: spec.clone(),
            input: uploaded.input,
            assignment: None,
            sweep: Some(SweepMember {
                id: sweep,
                combination: combination.clone(),
                size,
            }),
        };
        if let Err(e) = client.submit(&request.sign(&key)).await {
            let code = refused(
                &format!("the job [{}] was not queued", combination.label()),
                &e,
            );
            withdraw(&client, &members).await;
            return Ok(code);
        }
        members.push(Member {
            job,
            label: combination.label(),
            combination,
            at_line_start: [true, true],
            end: None,
        });
    }
    let (files, bytes) = shown.unwrap_or_default();
    if json {
        let jobs: Vec<_> = members
            .iter()
            .map(|m| serde_json::json!({"job": m.job.to_string(), "combination": m.label}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"sweep": sweep.to_string(), "queue": queue_name, "jobs": jobs})
        );
    } else {
        eprintln!(
            "✱ Sweep {sweep}: {size} jobs posted to the queue ({files} files, {}, sent once).",
            rai_common::units::Bytes(bytes).human()
        );
        for m in &members {
            eprintln!("✱ Job {} [{}]", m.job, m.label);
        }
    }
    if args.detach {
        say(
            json,
            &format!(
                "See them with `rai status {sweep}`, follow one with `rai logs -f ID`; stop them all with \
                 `rai cancel {sweep}`."
            ),
        );
        return Ok(exit::OK);
    }
    follow_all(&client, sweep, &mut members, json).await
}

/// Cancels the jobs of a sweep that were queued before one was refused, so a sweep is queued whole or not at all.
async fn withdraw(client: &Client, members: &[Member]) {
    for m in members {
        match client.cancel(&m.job).await {
            Ok(()) => eprintln!(
                "✱ Cancelled job {} [{}]: the sweep is queued whole or not at all.",
                m.job, m.label
            ),
            Err(e) => eprintln!(
                "rai: cannot cancel job {} [{}] ({e}); cancel it with `rai cancel {}`",
                m.job, m.label, m.job
            ),
        }
    }
}

/// Follows every job of the sweep at once, each line prefixed with its combination, then prints the table.
async fn follow_all(
    client: &Client,
    sweep: JobId,
    members: &mut [Member],
    json: bool,
) -> anyhow::Result<u8> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Result<Event, ClientError>)>(1024);
    for (i, m) in members.iter().enumerate() {
        let (tx, mut events) = (tx.clone(), client.follow(m.job, 0));
        tokio::spawn(async move {
            while let Some(got) = events.next().await {
                let end = matches!(&got, Ok(e) if e.is_end()) || got.is_err();
                if tx.send((i, got)).await.is_err() || end {
                    break;
                }
            }
        });
    }
    drop(tx);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut lost: Vec<(usize, ClientError)> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut ctrl_c => {
                eprintln!();
                eprintln!(
                    "✱ Sweep {sweep} goes on: see it with `rai status {sweep}`, follow a job with \
                     `rai logs -f ID`; stop them all with `rai cancel {sweep}`"
                );
                return Ok(exit::DETACHED);
            }
            got = rx.recv() => match got {
                None => break,
                Some((i, Ok(event))) => {
                    print(&mut members[i], &event, json);
                    if let EventBody::End { status, exit_code, .. } = event.body {
                        members[i].end = Some((status, exit_code));
                    }
                }
                Some((i, Err(e))) => lost.push((i, e)),
            },
        }
    }
    for (i, e) in &lost {
        let m = &members[*i];
        eprintln!(
            "✱ [{}] lost the job's output ({e}); job {} goes on: try `rai logs -f {}`",
            m.label, m.job, m.job
        );
    }
    summarize(client, members, json).await;
    // The sweep's code: 0 when every job succeeded, else the first unsuccessful job's (in the matrix's order).
    Ok(members
        .iter()
        .map(|m| match m.end {
            Some((status, code)) => exit::for_end(status, code),
            None => exit::USAGE,
        })
        .find(|c| *c != exit::OK)
        .unwrap_or(exit::OK))
}

/// Prints one event of one job: its output with the combination at the start of each line; rai's lines likewise.
fn print(m: &mut Member, event: &Event, json: bool) {
    if json {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("job".into(), m.job.to_string().into());
            object.insert("combination".into(), m.label.clone().into());
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
        return;
    }
    let prefix = format!("[{}] ", m.label);
    match &event.body {
        EventBody::Stdout { data } | EventBody::Stderr { data } => {
            let stdout = matches!(event.body, EventBody::Stdout { .. });
            let at_start = &mut m.at_line_start[usize::from(!stdout)];
            let text = prefixed(&prefix, data, at_start);
            let terminal = if stdout {
                terminal::stdout_is_terminal()
            } else {
                terminal::stderr_is_terminal()
            };
            let text = if terminal {
                terminal::job_output(&text)
            } else {
                text
            };
            if stdout {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            } else {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
        }
        EventBody::System { data } => {
            for line in data.trim_end().lines() {
                eprintln!("{prefix}{}", terminal::visible(line));
            }
        }
        body => {
            if let Some(line) = follow::own_line(body, &m.job) {
                eprintln!("{prefix}✱ {}", terminal::visible(&line));
            }
        }
    }
}

/// `data` with `prefix` at the start of each line; `at_start` says whether `data` starts one, and is left saying
/// whether the next output does.
fn prefixed(prefix: &str, data: &str, at_start: &mut bool) -> String {
    let mut out = String::with_capacity(data.len() + prefix.len());
    for piece in data.split_inclusive('\n') {
        if *at_start {
            out.push_str(prefix);
        }
        out.push_str(piece);
        *at_start = piece.ends_with('\n');
    }
    out
}

/// The table at the end of a sweep: each job's combination, status, exit code and command times (from the worker's
/// record of it).
async fn summarize(client: &Client, members: &[Member], json: bool) {
    let records: HashMap<String, rai_common::record::JobRecord> = client
        .history(None, (members.len() * 2).max(50))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let times = |m: &Member| -> Vec<f64> {
        records
            .get(&m.job.to_string())
            .map(|r| r.commands.iter().map(|c| c.seconds).collect())
            .unwrap_or_default()
    };
    if json {
        let rows: Vec<_> = members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "combination": m.label,
                    "values": m.combination.0.iter().map(|(n, v)| (n.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<String, serde_json::Value>>(),
                    "job": m.job.to_string(),
                    "status": m.end.map(|(s, _)| s.as_str()),
                    "exit_code": m.end.and_then(|(_, c)| c),
                    "command_seconds": times(m),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "summary": rows }));
        return;
    }
    let width = members
        .iter()
        .map(|m| m.label.len())
        .max()
        .unwrap_or(0)
        .max("combination".len());
    let mut table = format!(
        "{:<width$}  {:<26}  {:<10}  {:>4}  command times (s)\n",
        "combination", "job", "status", "exit"
    );
    for m in members {
        let (status, code) = match m.end {
            Some((s, c)) => (s.as_str(), c.map(|c| c.to_string()).unwrap_or("-".into())),
            None => ("unknown", "-".into()),
        };
        let times: Vec<String> = times(m).iter().map(|t| format!("{t:.2}")).collect();
        table.push_str(&format!(
            "{:<width$}  {:<26}  {:<10}  {:>4}  {}\n",
            m.label,
            m.job.to_string(),
            status,
            code,
            if times.is_empty() {
                "-".to_string()
            } else {
                times.join(" ")
            }
        ));
    }
    eprint!("{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_gets_the_prefix_once_even_across_events() {
        let mut at = true;
        assert_eq!(prefixed("[a] ", "x\ny", &mut at), "[a] x\n[a] y");
        assert!(!at, "the line goes on");
        assert_eq!(prefixed("[a] ", "z\n", &mut at), "z\n");
        assert!(at);
        assert_eq!(prefixed("[a] ", "\n\n", &mut at), "[a] \n[a] \n");
    }
}
