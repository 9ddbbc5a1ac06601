//! Every kind of broken `rai_build.yml` we have seen or can imagine, each with the exact message a student gets.

use rai_common::BuildSpec;

fn error_of(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/broken/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    match BuildSpec::parse_bytes(&bytes, "rai_build.yml") {
        Ok(spec) => panic!("{name} should not parse, got {spec:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_broken_file_has_its_own_precise_message() {
    let cases: &[(&str, &str)] = &[
        (
            "01-unknown-top-key.yml",
            "rai_build.yml:1:1: missing key \"commands\"; \"comands\" at line 7 looks like a misspelling of it",
        ),
        (
            "02-unknown-nested-key.yml",
            "rai_build.yml:2:3: rai.image: no image: name a Docker image such as nvidia/cuda:12.4.1-devel-ubuntu22.04, or build one from a Dockerfile in the project with commands.build_image; \"imag\" at line 3 looks like a misspelling of it",
        ),
        (
            "03-missing-image.yml",
            "rai_build.yml:2:3: rai.image: no image: name a Docker image such as nvidia/cuda:12.4.1-devel-ubuntu22.04, or build one from a Dockerfile in the project with commands.build_image",
        ),
        (
            "04-missing-commands.yml",
            "rai_build.yml:1:1: missing key \"commands\"",
        ),
        (
            "05-empty-build.yml",
            "rai_build.yml:5:10: commands.build: the command list is empty; list at least one command to run",
        ),
        (
            "06-negative-gpus.yml",
            "rai_build.yml:6:12: resources.gpu.count: invalid value -1: expected a whole number (0 or more)",
        ),
        (
            "07-build-not-a-list.yml",
            "rai_build.yml:5:10: commands.build: expected a list, found \"make all\"",
        ),
        (
            "08-bad-duration.yml",
            "rai_build.yml:6:11: resources.limits.time: \"ten minutes\" is not a duration; write it like 90s, 10m, 1h or 1h30m",
        ),
        (
            "09-bad-size.yml",
            "rai_build.yml:6:13: resources.limits.memory: \"4 gigs\" is not a size; write it like 512m, 4g or 1073741824 (bytes)",
        ),
        (
            "10-build-image-name-rai.yml",
            "rai_build.yml:5:17: commands.build_image.image_name: \"raid/evil\" starts with \"rai\"; those names belong to the service",
        ),
        ("11-unclosed-quote.yml", "rai_build.yml:"),
        (
            "12-alias-bomb.yml",
            "values (counting what aliases expand to); refusing to read it",
        ),
        (
            "14-empty.yml",
            "rai_build.yml: the file is empty; it needs at least rai.image and commands.build (run `rai init` for a commented example)",
        ),
        (
            "15-two-documents.yml",
            "rai_build.yml:6:1: the file holds more than one YAML document (a second \"---\"); keep one",
        ),
        (
            "16-dockerfile-outside.yml",
            "rai_build.yml:5:17: commands.build_image.dockerfile: \"../../etc/Dockerfile\" is not a path inside the project",
        ),
        (
            "17-all-commands-blank.yml",
            "rai_build.yml:6:5: commands.build: the command list is empty; list at least one command to run",
        ),
        (
            "18-unknown-architecture.yml",
            "rai_build.yml:6:19: resources.cpu.architecture: unknown value \"x86\" (expected one of \"amd64\", \"arm64\", \"ppc64le\")",
        ),
        (
            "19-build-image-not-a-mapping.yml",
            "rai_build.yml:4:16: commands.build_image: expected a mapping, found \"Dockerfile\"",
        ),
        (
            "20-not-a-mapping.yml",
            "rai_build.yml:1:1: expected a mapping, found a list",
        ),
        (
            "21-gpu-count-text.yml",
            "rai_build.yml:6:12: resources.gpu.count: expected a whole number (0 or more), found \"many\"",
        ),
        (
            "22-image-with-space.yml",
            "rai_build.yml:3:10: rai.image: \"nvidia cuda\" is not a Docker image reference (no spaces, must not start with '-')",
        ),
        (
            "23-zero-time.yml",
            "rai_build.yml:6:11: resources.limits.time: the time limit is zero; give a positive duration such as 10m",
        ),
        (
            "24-command-is-a-mapping.yml",
            "rai_build.yml:7:7: commands.build[1]: expected text, found a mapping",
        ),
        (
            "25-network-not-bool.yml",
            "rai_build.yml:6:14: resources.limits.network: expected true or false, found \"maybe\"",
        ),
        ("26-tab-indent.yml", "rai_build.yml:2:"),
        (
            "27-bad-queue.yml",
            "rai_build.yml:4:10: rai.queue: \"gpu queue\" is not a queue name (letters, digits, - _ . : / only)",
        ),
    ];
    let mut failures = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, expected) in cases {
        let got = error_of(name);
        if !got.starts_with(expected) && !got.contains(expected) {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  got:      {got}"
            ));
        }
        assert!(
            seen.insert(got.clone()),
            "{name} repeats another fixture's message: {got}"
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(cases.len() >= 15);
}

#[test]
fn syntax_errors_point_at_line_and_column() {
    let e = error_of("11-unclosed-quote.yml");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = error_of("26-tab-indent.yml");
    assert!(
        e.starts_with("rai_build.yml:2:") && e.contains("invalid YAML"),
        "{e}"
    );
}

#[test]
fn huge_and_binary_files_are_refused() {
    let huge = format!(
        "rai:\n  image: x\ncommands:\n  build:\n{}",
        "    - echo hello world\n".repeat(4000)
    );
    let e = BuildSpec::parse(&huge, "rai_build.yml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rai_build.yml: the file is larger than the 65536 bytes accepted"),
        "{e}"
    );
    let e = BuildSpec::parse_bytes(b"rai:\n  image: \xff\xfe\n", "rai_build.yml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "rai_build.yml:2:10: the file is not UTF-8 text (byte 0xff); save it as UTF-8"
    );
}

/// What the original RAI ignored or read loosely: each file is read, and each surprise is a warning at its key.
#[test]
fn what_the_original_ignored_is_a_warning_at_its_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "01-future-version.yml",
            &[
                "rai_build.yml:2:12: rai.version: \"9.9\" is not a version the original rai wrote (0.x or 0.x.y)",
            ],
        ),
        (
            "02-repeated-key.yml",
            &[
                "rai_build.yml:4:3: rai.image: key \"image\" appears twice in the same mapping (first at line 3); the later value is used",
            ],
        ),
        (
            "03-old-network-key.yml",
            &[
                "rai_build.yml:5:3: resources.network: has no effect here and is ignored: the original rai ignored resources.network too: the network is off unless resources.limits.network is true",
            ],
        ),
        (
            "04-empty-command.yml",
            &["rai_build.yml:7:7: commands.build[1]: the command is empty and is skipped"],
        ),
        (
            "05-misspelt-limit.yml",
            &[
                "rai_build.yml:6:5: resources.limits.memroy: unknown key \"memroy\", ignored (did you mean \"memory\"?)",
            ],
        ),
        (
            "06-original-keys-with-no-effect.yml",
            &[
                "rai_build.yml:5:3: resources.cache: has no effect here",
                "rai_build.yml:8:5: resources.gpu.memory: has no effect here",
                "rai_build.yml:10:5: resources.limits.datasize: has no effect here",
                "rai_build.yml:13:7: resources.dataresources[0].source: data is not fetched from URLs; the entry mounts the course dataset \"data\"",
            ],
        ),
        (
            "07-build-image-and-image.yml",
            &[
                "rai_build.yml:3:10: rai.image: is not used: commands.build_image builds the image",
                "rai_build.yml:8:5: commands.build_image.push: has no effect here and is ignored: images built by a worker stay on that worker",
            ],
        ),
    ];
    for (name, expected) in cases {
        let path = format!(
            "{}/tests/fixtures/warned/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap();
        let (spec, warnings) = BuildSpec::read(&bytes, "rai_build.yml")
            .unwrap_or_else(|e| panic!("{name} should be read with warnings, got {e}"));
        let got: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), expected.len(), "{name}: {got:#?}");
        for (g, e) in got.iter().zip(expected.iter()) {
            assert!(
                g.starts_with(e),
                "{name}:\n  expected: {e}\n  got:      {g}"
            );
        }
        assert_eq!(spec.warnings, got, "{name}: the spec carries its warnings");
    }
    // What the warnings describe is what rai does.
    let read = |name: &str| {
        let path = format!(
            "{}/tests/fixtures/warned/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        BuildSpec::read(&std::fs::read(path).unwrap(), "rai_build.yml")
            .unwrap()
            .0
    };
    assert_eq!(read("02-repeated-key.yml").rai.image, "ubuntu");
    let old_network = read("03-old-network-key.yml");
    assert!(!old_network.wants_network());
    assert_eq!(read("04-empty-command.yml").commands.build, ["make"]);
    assert_eq!(read("06-original-keys-with-no-effect.yml").gpu_count(), 1);
    let built = read("07-build-image-and-image.yml");
    let image = built.commands.build_image.unwrap();
    assert_eq!(image.image_name.as_deref(), Some("course/lab1"));
    assert_eq!(image.dockerfile(), "./Dockerfile");
}

/// The course fixtures: build files in the styles real courses wrote them (2016 to 2022), each beside what it must
/// mean (`NAME.expect.json`: the commands exactly as the container gets them, their output, how many warnings).
/// raid-server's `course_build_files_run_as_written` runs the same files in a container.
#[test]
fn course_build_files_validate_and_keep_their_commands() {
    let dir = format!("{}/tests/fixtures/courses", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
        let expect: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{dir}/{}", name.replace(".yml", ".expect.json"))).unwrap(),
        )
        .unwrap();
        let (spec, warnings) = BuildSpec::read(&bytes, "rai_build.yml")
            .unwrap_or_else(|e| panic!("{name} must validate: {e}"));
        let commands: Vec<String> = serde_json::from_value(expect["commands"].clone()).unwrap();
        assert_eq!(spec.commands.build, commands, "{name}");
        assert_eq!(
            warnings.len() as u64,
            expect["warnings"].as_u64().unwrap(),
            "{name}: {:#?}",
            warnings.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
}
