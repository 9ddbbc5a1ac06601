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
            "rai_build.yml:7:1: unknown key \"comands\" (did you mean \"commands\"?)",
        ),
        (
            "02-unknown-nested-key.yml",
            "rai_build.yml:3:3: rai: unknown key \"imag\" (did you mean \"image\"?)",
        ),
        (
            "03-missing-image.yml",
            "rai_build.yml:2:3: rai: missing key \"image\"",
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
            "10-unsupported-version.yml",
            "rai_build.yml:2:12: rai.version: unsupported version \"9.9\"; this rai reads versions 0.1, 0.2, 0.3",
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
            "16-duplicate-key.yml",
            "rai_build.yml:4:3: key \"image\" appears twice in the same mapping",
        ),
        (
            "17-network-contradiction.yml",
            "rai_build.yml:7:14: resources.limits.network: contradicts resources.network (true vs false); keep one of the two spellings",
        ),
        (
            "18-unknown-architecture.yml",
            "rai_build.yml:6:19: resources.cpu.architecture: unknown value \"x86\" (expected one of \"amd64\", \"arm64\", \"ppc64le\")",
        ),
        (
            "19-empty-command.yml",
            "rai_build.yml:7:7: commands.build[1]: the command is empty; remove it or write a command",
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
