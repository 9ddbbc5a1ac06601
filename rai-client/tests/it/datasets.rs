//! Course datasets (issue 31, part 3), through the `rai` binary on the local stack as a course runs it (gateway
//! over TLS, Redis over TLS with deploy/redis's ACL users): `rai datasets` lists what the course offers; a job
//! that asks for one reads it at `/data/NAME` and cannot write it; a 2017 `dataresources` entry whose mount names it
//! is honoured, and one naming nothing here gets a `✱` line saying what to ask for; a job asking for a dataset the
//! course does not offer is refused before its upload, naming the ones it does, and nothing is stored.

use std::os::unix::fs::PermissionsExt;

use rai_testkit::stack::{Kind, Options, Stack, text};

/// A project whose build file has the `resources:` lines `resources` and runs `commands` in the test image.
fn project(resources: &str, commands: &[&str]) -> tempfile::TempDir {
    rai_testkit::stack::project_asking(&rai_testkit::image(), resources, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reads_a_course_dataset_it_asked_for_and_cannot_change_it() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("labels.txt"), "cat\ndog\n").unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.path().join("labels.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let raid: &'static str = Box::leak(
        format!(
            "  datasets:\n    imagenet-mini: {}\n",
            data.path().display()
        )
        .into_boxed_str(),
    );
    let s = Stack::start(
        Kind::Local,
        Options {
            raid_extra: raid,
            gateway_extra: "  datasets:\n    imagenet-mini: \"ImageNet, 64x64, 100 classes\"\n",
            ..Options::default()
        },
    )
    .await;

    let out = s.rai(0, &["datasets"]).await;
    let listed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        listed.contains("imagenet-mini  /data/imagenet-mini  ImageNet, 64x64, 100 classes"),
        "{listed}"
    );

    // Read: the data is there, at /data/NAME, without being uploaded.
    let p = project(
        "  datasets: [imagenet-mini]\n",
        &["cat /data/imagenet-mini/labels.txt"],
    );
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "cat\ndog\n");

    // Written: refused by the read-only mount, and the folder is as it was.
    let p = project(
        "  datasets: [imagenet-mini]\n",
        &["echo changed > /data/imagenet-mini/labels.txt"],
    );
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(data.path().join("labels.txt")).unwrap(),
        "cat\ndog\n"
    );
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 1);

    // The 2017 form: the mount naming a dataset is honoured; the other is said, with what to ask for.
    let p = project(
        "  dataresources:\n    - mount: /data/imagenet-mini\n      source: { url: \"http://example.com/imagenet.tar\" }\n    - mount: /mnt/coco\n",
        &["cat /data/imagenet-mini/labels.txt"],
    );
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "cat\ndog\n");
    assert!(
        stderr.contains("✱ resources.dataresources[1] (mount /mnt/coco) is not mounted")
            && stderr.contains("Datasets here: imagenet-mini"),
        "{stderr}"
    );

    // Not offered: refused before the upload, naming what is; nothing of it stored.
    let uploads = || async {
        let store = s.store().await;
        let mut keys = Vec::new();
        for prefix in ["uploads/", "manifests/", "chunks/"] {
            keys.extend(store.list(prefix).await.unwrap().into_iter().map(|o| o.key));
        }
        keys
    };
    let before = uploads().await;
    let p = project("  datasets: [coco]\n", &["ls /data/coco"]);
    let out = s.rai(0, &["-p", p.path().to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("asks for dataset \"coco\", which the course does not offer")
            && stderr.contains("it offers: imagenet-mini"),
        "{stderr}"
    );
    assert_eq!(uploads().await, before);
}

/// `GET /v1/datasets` is for members of the course: an unsigned request is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_of_datasets_asks_who_is_asking() {
    let s = Stack::start(Kind::Local, Options::default()).await;
    let unsigned = s
        .http()
        .get(format!("{}/v1/datasets", s.gateways[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let listed = crate::client_of(&s, 0).datasets().await.unwrap();
    assert!(listed.datasets.is_empty());
}
