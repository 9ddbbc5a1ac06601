//! Old projects run unchanged: the build files courses wrote from 2016 to 2022 (common/tests/fixtures/courses), run
//! by a real worker in real containers, reach the container exactly as their authors wrote them.

use std::time::Duration;

use rai_testkit::jobs::{end, text};

use crate::harness::Harness;

const LIMIT: Duration = Duration::from_secs(120);

/// The test image with a `/bin/bash` (busybox has none), for the `/bin/bash -c "..."` idiom of course files; built
/// from the local busybox image, nothing pulled.
fn bash_image() -> String {
    let name = "rai-test/bash:latest".to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN printf '#!/bin/sh\\nexec /bin/sh \"$@\"\\n' > /bin/bash && chmod 755 /bin/bash\n",
            rai_testkit::image()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("docker")
        // The RUN step needs no network, and a machine's engine may have no default bridge (no docker0).
        .args(["build", "-q", "--network", "none", "-t", &name])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot build {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn course_build_files_run_as_written() {
    let image = bash_image();
    let h = Harness::start(|c| c.raid.concurrency = Some(2)).await;
    let fixtures = format!(
        "{}/../common/tests/fixtures/courses",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    assert!(names.len() >= 20);
    let mut jobs = Vec::new();
    for name in &names {
        let project = tempfile::tempdir().unwrap();
        std::fs::copy(
            format!("{fixtures}/{name}"),
            project.path().join("rai_build.yml"),
        )
        .unwrap();
        // The course's image and GPUs are not on this machine: only those change; the commands go as written.
        let image = image.clone();
        let job = h
            .submit_dir(project.path(), move |r| {
                r.build.rai.image = image;
                r.build.resources = Default::default();
            })
            .await;
        jobs.push((name.clone(), job));
    }
    let mut failures = Vec::new();
    for (name, job) in jobs {
        let expect: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!(
                "{fixtures}/{}",
                name.replace(".yml", ".expect.json")
            ))
            .unwrap(),
        )
        .unwrap();
        let events = h.events(job, LIMIT).await;
        let stdout = text(&events, "stdout");
        if end(&events).0 != "succeeded" || stdout != expect["stdout"].as_str().unwrap() {
            failures.push(format!(
                "{name}: {:?}\n  stdout: {stdout:?}\n  expected: {:?}\n  system: {}",
                end(&events),
                expect["stdout"],
                text(&events, "system")
            ));
        }
        // Each command is announced as it starts, exactly as written.
        let commands: Vec<String> = serde_json::from_value(expect["commands"].clone()).unwrap();
        let system = text(&events, "system");
        for command in &commands {
            assert!(
                system.contains(&format!("✱ Running {command}")),
                "{name}: {system}"
            );
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    h.drain_and_stop().await;
}

/// A project with a Dockerfile and `commands.build_image`, on the test image.
fn dockerfile_project(marker: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY tool.sh /bin/tool\nRUN chmod 755 /bin/tool && echo {marker} > /etc/marker\n",
            rai_testkit::image()
        ),
    )
    .unwrap();
    std::fs::write(
        project.path().join("tool.sh"),
        "#!/bin/sh\necho tool says $1\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join("rai_build.yml"),
        "rai:\n  version: 0.2\ncommands:\n  build_image:\n    image_name: course/lab1\n    dockerfile: Dockerfile\n  build:\n    - tool hello\n    - cat /etc/marker\n",
    )
    .unwrap();
    project
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_builds_from_the_dockerfile_then_reuses_it() {
    let h = Harness::start(|c| c.raid.build_images.allowed = true).await;
    // A marker of this run's own, so the first build is a real one whatever earlier runs left.
    let marker = format!("m{}", rai_common::job::JobId::new());
    let project = dockerfile_project(&marker);

    let first = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(first, LIMIT).await;
    let (stdout, system) = (text(&events, "stdout"), text(&events, "system"));
    assert_eq!(end(&events).0, "succeeded", "{system}\n{stdout}");
    assert!(
        system.contains("✱ Building course/lab1 from Dockerfile"),
        "{system}"
    );
    assert!(
        stdout.starts_with("Step 1/5 : FROM"),
        "the build's output is the job's: {stdout}"
    );
    assert!(
        stdout.ends_with(&format!("tool says hello\n{marker}\n")),
        "{stdout}"
    );

    // The same files again: the image built a moment ago is used, not built again.
    let second = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(second, LIMIT).await;
    let (stdout, system) = (text(&events, "stdout"), text(&events, "system"));
    assert_eq!(end(&events).0, "succeeded", "{system}");
    assert!(
        system.contains("built earlier on this worker from the same files"),
        "{system}"
    );
    assert_eq!(stdout, format!("tool says hello\n{marker}\n"));

    // Only build_image, no commands (two public course build files have it): the image is there, nothing runs.
    std::fs::write(
        project.path().join("rai_build.yml"),
        "rai:\n  version: 0.2\ncommands:\n  build_image:\n    image_name: course/lab1\n    dockerfile: Dockerfile\n",
    )
    .unwrap();
    let image_only = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(image_only, LIMIT).await;
    let (stdout, system) = (text(&events, "stdout"), text(&events, "system"));
    assert_eq!(end(&events).0, "succeeded", "{system}\n{stdout}");
    // (The build context changed with the build file, so the image may be built again.)
    assert!(
        system.contains("built earlier on this worker from the same files")
            || system.contains("✱ Building course/lab1 from Dockerfile"),
        "{system}"
    );
    assert!(!stdout.contains("tool says"), "no command ran: {stdout}");

    // A base image off the allow-list is refused before anything is built.
    std::fs::write(
        project.path().join("Dockerfile"),
        "FROM evil/miner:latest\nRUN true\n",
    )
    .unwrap();
    let refused = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(refused, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(status, "rejected");
    assert!(
        reason
            .unwrap_or_default()
            .contains("the base image \"evil/miner:latest\" is not allowed"),
        "{events:?}"
    );

    // A step that fails ends the job as failed, with Docker's message.
    std::fs::write(
        project.path().join("Dockerfile"),
        format!("FROM {}\nRUN echo {marker}; exit 3\n", rai_testkit::image()),
    )
    .unwrap();
    let failed = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(failed, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(status, "failed", "{events:?}");
    assert!(
        reason
            .unwrap_or_default()
            .starts_with("the image build failed"),
        "{events:?}"
    );
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_is_refused_where_the_policy_does_not_allow_it() {
    let h = Harness::start(|_| {}).await;
    let project = dockerfile_project("never");
    let job = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(job, LIMIT).await;
    let (status, _, reason) = end(&events);
    assert_eq!(status, "rejected");
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains("raid.build_images.allowed") && reason.contains("rai.image"),
        "{reason}"
    );
    assert!(!text(&events, "stdout").contains("Step 1"));
    h.drain_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_build_with_the_network_runs_behind_the_job_networks_firewall() {
    let h = Harness::start(|c| {
        c.raid.build_images.allowed = true;
        c.raid.build_images.network = true;
    })
    .await;
    let network = raid::sandbox::network::JobNetwork::new(&h.config.raid.job_network).unwrap();
    assert_eq!(network.missing_rules(), Vec::<String>::new());
    let gateway = h
        .ctx
        .docker
        .inspect_network(&network.name, None)
        .await
        .unwrap()
        .ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| c.gateway)
        .expect("the job network has a gateway");
    let marker = format!("m{}", rai_common::job::JobId::new());
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {marker} && ip route | head -1 > /etc/route && \\\n  \
             (wget -q -T 3 -O- http://169.254.169.254/ >/dev/null 2>&1 && echo open || echo closed) > /etc/metadata\n",
            rai_testkit::image()
        ),
    )
    .unwrap();
    std::fs::write(
        project.path().join("rai_build.yml"),
        "rai:\n  version: 0.2\ncommands:\n  build_image:\n    dockerfile: Dockerfile\n  build:\n    - cat /etc/route /etc/metadata\n",
    )
    .unwrap();
    let job = h.submit_dir(project.path(), |_| {}).await;
    let events = h.events(job, LIMIT).await;
    let (stdout, system) = (text(&events, "stdout"), text(&events, "system"));
    assert_eq!(end(&events).0, "succeeded", "{system}\n{stdout}");
    // The RUN step's route goes out through the job network (not docker0), and the metadata service is closed.
    assert!(
        stdout.ends_with(&format!("default via {gateway} dev eth0 \nclosed\n")),
        "{stdout}"
    );
    h.drain_and_stop().await;
}
