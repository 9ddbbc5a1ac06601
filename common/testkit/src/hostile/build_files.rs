//! Build files a student submits with `rai`: an alias bomb, a huge file, an unknown key, absurd limits, images the
//! worker does not allow. `rai` refuses what it can check (exit 2, saying where and why); the rest is refused by the
//! worker, naming its limit or allow-list.

use super::{HostileCase, case};
use crate::jobs::build_file;

pub(super) fn cases() -> Vec<HostileCase> {
    vec![
        case(
            "build",
            "alias bomb",
            "refused by rai, nothing queued",
            move |c| {
                Box::pin(async move {
                    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
                    for i in 1..12 {
                        let prev = if i == 1 {
                            "a".to_string()
                        } else {
                            format!("a{}", i - 1)
                        };
                        text.push_str(&format!(
                    "a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
                ));
                    }
                    text.push_str(&build_file(&["echo hi"], "time: 10s"));
                    let s = c.submit(&text, &[]).await;
                    (s.line(), s.code == Some(2) && s.stderr.contains("alias"))
                })
            },
        ),
        case(
            "build",
            "huge build file (3 MB)",
            "refused by rai",
            move |c| {
                Box::pin(async move {
                    let mut text = build_file(&["echo hi"], "time: 10s");
                    text.push_str(&format!("# {}\n", "x".repeat(3_000_000)));
                    let s = c.submit(&text, &[]).await;
                    (
                        s.line(),
                        s.code == Some(2) && s.stderr.contains("rai_build.yml"),
                    )
                })
            },
        ),
        case(
            "build",
            "unknown key",
            "refused by rai, with a suggestion",
            move |c| {
                Box::pin(async move {
                    let text =
                        build_file(&["echo hi"], "time: 10s").replace("commands:", "comands:");
                    let s = c.submit(&text, &[]).await;
                    (
                        s.line(),
                        s.code == Some(2)
                            && s.stderr.contains("comands")
                            && s.stderr.contains("commands"),
                    )
                })
            },
        ),
        case(
            "build",
            "absurd limits",
            "refused, naming the maximum",
            move |c| {
                Box::pin(async move {
                    let s = c
                        .submit(&build_file(&["echo hi"], "time: 1000h, memory: 100t"), &[])
                        .await;
                    (s.line(), s.code != Some(0) && s.stderr.contains("maximum"))
                })
            },
        ),
        case(
            "build",
            "image allow-list: * crossing /",
            "rejected: rai-test/* does not allow rai-test/a/b",
            move |c| {
                Box::pin(async move {
                    let text = build_file(&["echo hi"], "time: 10s")
                        .replace(&crate::image(), "rai-test/nested/evil:latest");
                    let s = c.submit(&text, &[]).await;
                    (
                        s.line(),
                        s.code != Some(0) && s.stderr.contains("is not allowed on this worker"),
                    )
                })
            },
        ),
        case(
            "build",
            "image not allowed",
            "rejected by the worker",
            move |c| {
                Box::pin(async move {
                    let text = build_file(&["echo hi"], "time: 10s")
                        .replace(&crate::image(), "evil/miner:latest");
                    let s = c.submit(&text, &[]).await;
                    (
                        s.line(),
                        s.code != Some(0) && s.stderr.contains("is not allowed on this worker"),
                    )
                })
            },
        ),
    ]
}
