//! Uploads put straight in the store under a validly signed job: archives that climb out, point out or link out of
//! the job directory, device files, a zstd bomb, a million empty files, a header that claims 8 GiB, bytes that are
//! no archive, an upload swapped after signing, one missing. Each ends `rejected` with nothing written outside.

use rai_backends::store::ObjectStore;
use rai_common::objects::upload_key;

use super::harness::{Harness, refused};
use super::inputs::{Entry, archive, as_is, bomb, empty_files, no_tweak, plain, raw_header};
use super::{HostileCase, Scale, case};

/// An archive's entries, made once the harness knows where its canary folder is.
type EntriesFor = fn(&Harness) -> Vec<Entry>;

pub(super) fn cases(scale: Scale) -> Vec<HostileCase> {
    let unsafe_archives: Vec<(&str, EntriesFor, &str)> = vec![
        (
            "path traversal (../ to a host folder)",
            |c| {
                vec![(
                    raw_header(&c.climb(), tar::EntryType::Regular, 5, None),
                    b"pwned".to_vec(),
                )]
            },
            "..",
        ),
        (
            "absolute path",
            |c| {
                vec![(
                    raw_header(&c.canary_file(), tar::EntryType::Regular, 5, None),
                    b"pwned".to_vec(),
                )]
            },
            "absolute path",
        ),
        (
            "symlink escape",
            |c| {
                vec![
                    (
                        raw_header(
                            "esc",
                            tar::EntryType::Symlink,
                            0,
                            Some(&c.canary.path().display().to_string()),
                        ),
                        vec![],
                    ),
                    (
                        raw_header("esc/pwned", tar::EntryType::Regular, 5, None),
                        b"pwned".to_vec(),
                    ),
                ]
            },
            "",
        ),
        (
            "hardlink escape",
            |c| {
                vec![(
                    raw_header("h", tar::EntryType::Link, 0, Some(&c.canary_file())),
                    vec![],
                )]
            },
            "",
        ),
        (
            "device file",
            |_| vec![(raw_header("dev", tar::EntryType::Char, 0, None), vec![])],
            "",
        ),
    ];
    let mut cases: Vec<HostileCase> = unsafe_archives
        .into_iter()
        .map(|(name, entries, words)| {
            case("upload", name, "rejected: not a safe archive", move |c| {
                Box::pin(async move {
                    let e = c
                        .queued(0, archive(&plain(), &entries(c)), no_tweak, as_is)
                        .await;
                    (
                        e.line(),
                        refused(&e, "the upload is not a safe archive") && e.reason.contains(words),
                    )
                })
            })
        })
        .collect();
    cases.extend([
        case(
            "upload",
            "zstd bomb",
            "rejected: unpacks to more than 64 MiB",
            move |c| {
                Box::pin(async move {
                    let bytes = bomb(&plain(), scale.bomb_bytes);
                    let e = c.queued(0, bytes, no_tweak, as_is).await;
                    (
                        format!("{} GiB claimed; {}", scale.bomb_bytes >> 30, e.line()),
                        refused(&e, "unpacks to more than 64.0 MiB"),
                    )
                })
            },
        ),
        case(
            "upload",
            "a million empty files",
            "rejected: more than 200000 entries",
            move |c| {
                Box::pin(async move {
                    let bytes = empty_files(&plain(), scale.empty_files);
                    let size = bytes.len();
                    let e = c.queued(0, bytes, no_tweak, as_is).await;
                    (
                        format!(
                            "{} files in {:.1} MiB; {}",
                            scale.empty_files,
                            size as f64 / 1048576.0,
                            e.line()
                        ),
                        refused(&e, "more than 200000 entries"),
                    )
                })
            },
        ),
        case(
            "upload",
            "GNU long name claiming 8 GiB",
            "rejected before it is read; raid's peak RSS +<50 MiB",
            move |c| {
                Box::pin(async move {
                    let bytes = crate::header_bomb(tar::EntryType::GNULongName, 8 << 30, 64 << 20);
                    let size = bytes.len();
                    let before = c.stack.worker_peak_rss_kib().into_iter().max().unwrap_or(0);
                    let e = c.queued(0, bytes, no_tweak, as_is).await;
                    let grew = c
                        .stack
                        .worker_peak_rss_kib()
                        .into_iter()
                        .max()
                        .unwrap_or(0)
                        .saturating_sub(before);
                    (
                        format!(
                            "{} KiB archive; peak RSS +{:.1} MiB; {}",
                            size >> 10,
                            grew as f64 / 1024.0,
                            e.line()
                        ),
                        refused(&e, "GNU long name claims 8.0 GiB") && grew < 50 << 10,
                    )
                })
            },
        ),
        case("upload", "not an archive", "rejected: corrupt", move |c| {
            Box::pin(async move {
                let garbage = b"MZ\x90\x00 definitely not tar+zstd".to_vec();
                let e = c.queued(0, garbage, no_tweak, as_is).await;
                (e.line(), refused(&e, "corrupt"))
            })
        }),
        case(
            "upload",
            "swapped for a bigger object",
            "rejected: larger than signed",
            move |c| {
                Box::pin(async move {
                    let (wire, job) = c.signed(0, &plain(), archive(&plain(), &[]), |_| {}).await;
                    let key = upload_key(&c.user(0), &job);
                    let mut bytes = archive(&plain(), &[]);
                    bytes.extend(std::iter::repeat_n(1u8, 32 << 20));
                    c.store.put_bytes(&key, bytes).await.unwrap();
                    c.send(&wire).await;
                    let e = c.ended(job).await;
                    (e.line(), refused(&e, "larger than"))
                })
            },
        ),
        case("upload", "missing", "rejected: cannot fetch", move |c| {
            Box::pin(async move {
                let (wire, job) = c.signed(0, &plain(), archive(&plain(), &[]), |_| {}).await;
                c.store.delete(&upload_key(&c.user(0), &job)).await.unwrap();
                c.send(&wire).await;
                let e = c.ended(job).await;
                (e.line(), refused(&e, "cannot fetch the upload"))
            })
        }),
    ]);
    cases
}
