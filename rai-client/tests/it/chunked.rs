//! Chunked uploads (issue 30) through the `rai` binary, on both stacks as a course runs them (gateway over TLS,
//! Redis over TLS with deploy/redis's ACL users): a first submit sends every chunk; a second after one source
//! changed sends that one chunk only, and the worker makes `/src` from its cache; another student's identical
//! project is stored apart; an older client's archive still runs; a manifest naming chunks that were never sent cannot
//! be submitted.

use std::collections::BTreeSet;

use rai_testkit::stack::{Kind, Options, Stack, job_id, project, text};

/// The chunk objects of `user` in the stack's store.
async fn chunks_of(s: &Stack, user: &str) -> BTreeSet<String> {
    s.store()
        .await
        .list(&format!("chunks/{user}/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// A stack of three students: two whose `rai` sends chunked uploads (the default), and student 2, who sends
/// archives as the clients before issue 30 do (`chunked_uploads: false`).
async fn two_students(kind: Kind) -> Stack {
    let s = Stack::start(
        kind,
        Options {
            users: 3,
            ..Options::default()
        },
    )
    .await;
    let config = s.home(2).join(".rai_config.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("client:\n", "client:\n  chunked_uploads: false\n", 1),
    )
    .unwrap();
    s
}

async fn the_second_submit_sends_only_what_changed(kind: Kind) {
    let s = two_students(kind).await;
    // 3 MB that do not compress: several chunks; a source; an executable script.
    let mut seed: u32 = 7;
    let data: String = (0..3_000_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    let p = project(
        &["cat /src/main.c; wc -c < /src/data.txt; sh /src/run.sh"],
        &[
            ("main.c", "version 1\n"),
            ("data.txt", &data),
            ("run.sh", "echo script ran\n"),
        ],
    );
    let dir = p.path().to_str().unwrap();
    let out = s.rai(0, &["submit", "-p", dir]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "version 1\n3000000\nscript ran\n");
    let first = chunks_of(&s, "student0").await;
    assert!(first.len() >= 4, "{first:?}");
    assert!(
        s.store()
            .await
            .head(&format!("manifests/student0/{}.json", job_id(&stderr)))
            .await
            .unwrap()
            .is_some()
    );

    std::fs::write(p.path().join("main.c"), "version 2\n").unwrap();
    let out = s.rai(0, &["submit", "-p", dir]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "version 2\n3000000\nscript ran\n");
    let second = chunks_of(&s, "student0").await;
    assert_eq!(
        second.difference(&first).count(),
        1,
        "only the changed source's chunk is new: {first:?} -> {second:?}"
    );
    assert!(
        s.worker_logs().contains("made /src from the manifest"),
        "{}",
        s.worker_logs()
    );

    // Another student with the same project sends it all again, into a part of the store of their own.
    let out = s.rai(1, &["submit", "-p", dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let theirs = chunks_of(&s, "student1").await;
    assert_eq!(theirs.len(), second.len() - 1);

    // An archive from an older client is still taken, behind the same checks, and runs the same.
    let out = s.rai(2, &["submit", "-p", dir]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "version 2\n3000000\nscript ran\n");
    let archive = rai_common::objects::upload_key("student2", &job_id(&stderr).parse().unwrap());
    assert!(
        s.store().await.head(&archive).await.unwrap().is_some(),
        "{archive}"
    );
    assert!(chunks_of(&s, "student2").await.is_empty());
}

/// Hostile declarations: a path out of the project and sizes that do not add up are refused with what is wrong, and
/// nothing is stored; a manifest naming another student's chunks is answered as if they did not exist (they are all
/// missing), and cannot be completed without sending them.
async fn hostile_manifests_are_refused_and_nothing_is_stored(kind: Kind) {
    use rai_common::project::{ChunkId, ChunkRef, Entry, EntryKind, MANIFEST_VERSION, Manifest};
    let s = two_students(kind).await;
    let file = |path: &str, size: u64, chunk: u64| Entry {
        path: path.into(),
        kind: EntryKind::File {
            executable: false,
            size,
            chunks: vec![ChunkRef {
                id: ChunkId::of(path.as_bytes()),
                size: chunk,
            }],
        },
    };
    let client = crate::client_of(&s, 1);
    for (manifest, says) in [
        (
            Manifest {
                version: MANIFEST_VERSION,
                entries: vec![file("../../etc/cron.d/x", 1, 1)],
            },
            "cannot be written",
        ),
        (
            Manifest::new(vec![file("main.c", 10, 3)]),
            "its chunks add up to 3",
        ),
    ] {
        let job = rai_common::job::JobId::new();
        let e = client
            .declare_project(&job, &manifest, &[])
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert!(
            s.store()
                .await
                .head(&format!("manifests/student1/{job}.json"))
                .await
                .unwrap()
                .is_none()
        );
    }
    // student0 submits a project; student1 names its chunks without having them.
    let p = project(&["echo ok"], &[("main.c", "int main;\n")]);
    let out = s
        .rai(0, &["submit", "-p", p.path().to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (scanned, _) =
        rai_common::archive::scan(p.path(), &rai_common::archive::PackOptions::default()).unwrap();
    let manifest = rai_common::project::describe(
        p.path(),
        &scanned,
        &mut rai_common::project::LocalIndex::default(),
    )
    .unwrap()
    .manifest;
    let plan = client
        .declare_project(&rai_common::job::JobId::new(), &manifest, &[])
        .await
        .unwrap();
    assert_eq!(plan.missing.len(), manifest.chunk_ids().len());
    let e = client.complete_project(&plan).await.unwrap_err();
    assert!(e.to_string().contains("did not arrive"), "{e}");

    // Unsigned, nothing is taken; a chunk for another student's job is refused as if the job did not exist.
    let gateway = &s.gateways[0].url;
    let unsigned = s
        .http()
        .post(format!("{gateway}/v1/projects"))
        .json(&serde_json::json!({ "job": rai_common::job::JobId::new(), "manifest": manifest }))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let theirs = rai_common::job::JobId::new();
    let plan = crate::client_of(&s, 0)
        .declare_project(&theirs, &manifest, &[])
        .await
        .unwrap();
    assert!(plan.missing.is_empty(), "student0 sent these before");
    let chunk = manifest.distinct_chunks()[0].id;
    let batch = || {
        let mut batch = rai_common::project::batch::Batch::default();
        batch.push(chunk, 10, &rai_common::project::seal(b"int main;\n"));
        batch
    };
    let unsigned = s
        .http()
        .put(format!(
            "{gateway}{}",
            rai_common::api::PROJECT_CHUNKS.path(theirs)
        ))
        .body(batch().into_body())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // Signed by student1, a chunk for student0's job is refused as if the job did not exist, and not stored.
    let e = client
        .put_chunks(&theirs, batch(), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(reqwest::StatusCode::NOT_FOUND), "{e}");
    assert!(
        !chunks_of(&s, "student1")
            .await
            .iter()
            .any(|k| k.contains(&chunk.to_string()))
    );
    let e = client.complete_project(&plan).await.unwrap_err();
    assert_eq!(e.status(), Some(reqwest::StatusCode::NOT_FOUND), "{e}");
}

on_both_stacks!(
    the_second_submit_sends_only_what_changed,
    hostile_manifests_are_refused_and_nothing_is_stored,
);
