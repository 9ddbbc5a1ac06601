//! Packing and unpacking, including archives built by hand to attack the unpacker. Whatever an archive says,
//! nothing may be written outside the target directory.
//!
//! Over 450 lines: one test per attack on the unpacker, each with its hand-built archive.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rai_common::archive::{PackOptions, UnpackLimits, pack, unpack};
use rai_common::errors::ArchiveError;
use rai_testkit::raw_tar_header;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(e.path()).unwrap().display()
                ));
            } else if ft.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &e.path(), out);
            } else {
                out.push(format!(
                    "{rel} = {}",
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

#[test]
fn round_trip_honours_ignores_and_skips_secrets_and_outside_links() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    write(&s.join("main.cu"), "kernel");
    write(&s.join("lib/util.h"), "header");
    write(&s.join(".gitignore"), "*.o\nbuild/\n");
    write(&s.join(".raiignore"), "data/big.bin\n");
    write(&s.join("a.o"), "object");
    write(&s.join("build/out"), "built");
    write(&s.join("data/big.bin"), "huge");
    write(&s.join("data/small.txt"), "small");
    write(&s.join(".git/config"), "git");
    write(&s.join(".rai_profile"), "secret key");
    write(&s.join("sub/old.rai_profile"), "secret key");
    std::os::unix::fs::symlink("lib/util.h", s.join("util-link.h")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("../../outside", s.join("lib/escape")).unwrap();

    let mut archive = Vec::new();
    let mut last = None;
    let summary = pack(s, &mut archive, &PackOptions::default(), |p| last = Some(p)).unwrap();
    let skipped: Vec<String> = summary
        .skipped
        .iter()
        .map(|e| e.path.display().to_string())
        .collect();
    assert_eq!(skipped, ["lib/escape", "passwd-link"]);
    let last = last.unwrap();
    assert_eq!(
        (last.files_done, last.bytes_done),
        (last.files_total, last.bytes_total)
    );

    let dst = tempfile::tempdir().unwrap();
    let u = unpack(archive.as_slice(), dst.path(), UnpackLimits::default()).unwrap();
    assert_eq!(u.files, summary.files);
    assert_eq!(
        listing(dst.path()),
        [
            ".gitignore = *.o\nbuild/\n",
            ".raiignore = data/big.bin\n",
            "data/",
            "data/small.txt = small",
            "lib/",
            "lib/util.h = header",
            "main.cu = kernel",
            "sub/",
            "util-link.h -> lib/util.h",
        ]
    );
}

#[test]
fn executable_bits_survive_and_setuid_does_not() {
    use std::os::unix::fs::PermissionsExt;
    let src = tempfile::tempdir().unwrap();
    write(&src.path().join("run.sh"), "#!/bin/sh\n");
    std::fs::set_permissions(
        src.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let mut archive = Vec::new();
    pack(src.path(), &mut archive, &PackOptions::default(), |_| {}).unwrap();
    let dst = tempfile::tempdir().unwrap();
    unpack(archive.as_slice(), dst.path(), UnpackLimits::default()).unwrap();
    let mode = std::fs::metadata(dst.path().join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn caps_name_the_largest_offenders() {
    let src = tempfile::tempdir().unwrap();
    write(&src.path().join("small.txt"), "x");
    std::fs::write(src.path().join("weights.bin"), vec![0u8; 300_000]).unwrap();
    std::fs::write(src.path().join("data.csv"), vec![b'a'; 200_000]).unwrap();
    let opts = PackOptions {
        max_bytes: 100_000,
        ..Default::default()
    };
    let e = pack(src.path(), Vec::new(), &opts, |_| {}).unwrap_err();
    assert!(matches!(e, ArchiveError::TooLarge { .. }));
    assert_eq!(
        e.to_string(),
        "the directory holds 488 KiB of files, over the 97.7 KiB cap; the largest: weights.bin (293 KiB), \
         data.csv (195 KiB), small.txt (1 B). Add them to .raiignore, or remove them"
    );

    for i in 0..30 {
        write(&src.path().join(format!("node_modules/m{i}")), "");
    }
    let opts = PackOptions {
        max_files: 20,
        ..Default::default()
    };
    let e = pack(src.path(), Vec::new(), &opts, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("the directory holds 34 files and folders, over the 20 cap; the most are in: node_modules (31)"), "{e}");
}

// ------------------------------------------------------------------------------------------------------------
// Hostile archives, built byte by byte so that the tar writer's own checks cannot clean them up.

enum Raw<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
    Special(&'a [u8], tar::EntryType),
    FileMode(&'a [u8], &'a [u8], u32),
}

fn hostile(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match *e {
            Raw::File(name, data) => b.append(
                &raw_tar_header(
                    name,
                    tar::EntryType::Regular,
                    data.len() as u64,
                    0o644,
                    None,
                ),
                data,
            ),
            Raw::FileMode(name, data, mode) => b.append(
                &raw_tar_header(name, tar::EntryType::Regular, data.len() as u64, mode, None),
                data,
            ),
            Raw::Dir(name) => b.append(
                &raw_tar_header(name, tar::EntryType::Directory, 0, 0o755, None),
                &[][..],
            ),
            Raw::Symlink(name, to) => b.append(
                &raw_tar_header(name, tar::EntryType::Symlink, 0, 0o777, Some(to)),
                &[][..],
            ),
            Raw::Hardlink(name, to) => b.append(
                &raw_tar_header(name, tar::EntryType::Link, 0, 0o644, Some(to)),
                &[][..],
            ),
            Raw::Special(name, kind) => {
                b.append(&raw_tar_header(name, kind, 0, 0o644, None), &[][..])
            }
        }
        .unwrap();
    }
    zstd::encode_all(b.into_inner().unwrap().as_slice(), 3).unwrap()
}

/// Unpacks into `sandbox/target` and checks that nothing changed in `sandbox` outside `target`.
fn attack(
    archive: &[u8],
    limits: UnpackLimits,
) -> (
    Result<rai_common::archive::UnpackSummary, ArchiveError>,
    PathBuf,
) {
    let sandbox = tempfile::tempdir().unwrap().keep();
    write(&sandbox.join("outside"), "untouched");
    write(&sandbox.join("etc/passwd"), "root:x:0:0");
    let before = listing(&sandbox);
    let result = unpack(archive, &sandbox.join("target"), limits);
    let mut after = listing(&sandbox);
    after.retain(|l| !l.starts_with("target"));
    assert_eq!(after, before, "something outside the target changed");
    (result, sandbox)
}

fn rejected(archive: &[u8], reason: &str) {
    let (result, sandbox) = attack(archive, UnpackLimits::default());
    let e = result
        .expect_err("a hostile archive must be refused")
        .to_string();
    assert!(e.contains(reason), "expected \"{reason}\" in: {e}");
    std::fs::remove_dir_all(sandbox).unwrap();
}

#[test]
fn absolute_paths_are_refused() {
    let victim = std::env::temp_dir().join(format!("rai-victim-{}", std::process::id()));
    let name = victim.to_str().unwrap().as_bytes().to_vec();
    rejected(
        &hostile(&[Raw::File(&name, b"pwned")]),
        "is an absolute path",
    );
    assert!(!victim.exists());
}

#[test]
fn dot_dot_paths_are_refused() {
    rejected(
        &hostile(&[Raw::File(b"../outside", b"pwned")]),
        "entry \"../outside\" has a \"..\" component",
    );
    rejected(
        &hostile(&[Raw::File(b"a/../../outside", b"pwned")]),
        "has a \"..\" component",
    );
}

#[test]
fn symlink_escapes_are_refused() {
    rejected(
        &hostile(&[Raw::Symlink(b"etc", b"../etc")]),
        "is a symbolic link to ../etc, outside the directory",
    );
    rejected(
        &hostile(&[Raw::Symlink(b"abs", b"/etc")]),
        "outside the directory",
    );
    rejected(
        &hostile(&[Raw::Symlink(b"a/b/up", b"../../../x")]),
        "outside the directory",
    );
}

#[test]
fn writing_through_a_symlink_is_refused_even_an_inside_one() {
    rejected(
        &hostile(&[
            Raw::Dir(b"real"),
            Raw::Symlink(b"alias", b"real"),
            Raw::File(b"alias/x", b"data"),
        ]),
        "entry \"alias/x\" would be written through the symbolic link alias",
    );
}

#[test]
fn a_file_replacing_a_symlink_does_not_write_through_it() {
    let archive = hostile(&[
        Raw::File(b"x", b"original"),
        Raw::Symlink(b"y", b"x"),
        Raw::File(b"y", b"replaced"),
    ]);
    let (result, sandbox) = attack(&archive, UnpackLimits::default());
    result.unwrap();
    assert_eq!(
        std::fs::read_to_string(sandbox.join("target/x")).unwrap(),
        "original"
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.join("target/y")).unwrap(),
        "replaced"
    );
    std::fs::remove_dir_all(sandbox).unwrap();
}

#[test]
fn hardlink_escapes_are_refused() {
    rejected(
        &hostile(&[Raw::Hardlink(b"h", b"/etc/passwd")]),
        "is a hard link whose target is an absolute path",
    );
    rejected(
        &hostile(&[Raw::Hardlink(b"h", b"../outside")]),
        "is a hard link whose target has a \"..\" component",
    );
    rejected(
        &hostile(&[Raw::Hardlink(b"h", b"missing")]),
        "which is not a file unpacked before it",
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    rejected(
        &hostile(&[Raw::Special(b"null", tar::EntryType::Char)]),
        "is a character device",
    );
    rejected(
        &hostile(&[Raw::Special(b"sda", tar::EntryType::Block)]),
        "is a block device",
    );
    rejected(
        &hostile(&[Raw::Special(b"pipe", tar::EntryType::Fifo)]),
        "is a fifo",
    );
}

#[test]
fn setuid_and_setgid_bits_are_stripped() {
    use std::os::unix::fs::PermissionsExt;
    let (result, sandbox) = attack(
        &hostile(&[Raw::FileMode(b"suid", b"#!/bin/sh", 0o6755)]),
        UnpackLimits::default(),
    );
    result.unwrap();
    let mode = std::fs::metadata(sandbox.join("target/suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    std::fs::remove_dir_all(sandbox).unwrap();
}

#[test]
fn a_zstd_bomb_stops_at_the_byte_cap() {
    // 1 GiB of zeros compresses to about 32 KiB.
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_size(1 << 30);
    header.set_mode(0o644);
    header.set_cksum();
    let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
    enc.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let limits = UnpackLimits {
        max_bytes: 8 << 20,
        ..Default::default()
    };
    let (result, sandbox) = attack(&bomb, limits);
    let e = result.unwrap_err().to_string();
    assert_eq!(
        e,
        "the archive unpacks to more than 8.0 MiB (stopped at entry \"zeros\")"
    );
    let written = std::fs::metadata(sandbox.join("target/zeros"))
        .unwrap()
        .len();
    assert!(written <= 8 << 20);
    std::fs::remove_dir_all(sandbox).unwrap();
}

#[test]
fn too_many_entries_stop_at_the_cap() {
    let names: Vec<Vec<u8>> = (0..500).map(|i| format!("f{i}").into_bytes()).collect();
    let entries: Vec<Raw<'_>> = names.iter().map(|n| Raw::File(n, b"")).collect();
    let limits = UnpackLimits {
        max_entries: 100,
        ..Default::default()
    };
    let (result, sandbox) = attack(&hostile(&entries), limits);
    assert_eq!(
        result.unwrap_err().to_string(),
        "the archive holds more than 100 entries (stopped at entry \"f100\")"
    );
    std::fs::remove_dir_all(sandbox).unwrap();
}

#[test]
fn garbage_is_reported_as_corrupt() {
    rejected(
        b"this is not zstd at all",
        "the archive is corrupt or not tar + zstd",
    );
}

/// The peak resident memory of this test process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_long_name_claiming_8_gib_is_refused_before_it_is_read() {
    let bomb = rai_testkit::header_bomb(tar::EntryType::GNULongName, 8 << 30, 64 << 20);
    assert!(bomb.len() < 150 << 10, "{} bytes", bomb.len());
    let before = peak_rss_kib();
    let (result, sandbox) = attack(&bomb, UnpackLimits::default());
    let e = result.expect_err("refused").to_string();
    assert_eq!(
        e,
        "the archive's GNU long name claims 8.0 GiB, more than the 64.0 KiB allowed"
    );
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(grew < 50 << 10, "peak RSS grew by {grew} KiB");
    std::fs::remove_dir_all(sandbox).unwrap();
    // The same for a long link name and a PAX header: each is read whole by the tar crate.
    for (kind, what) in [
        (tar::EntryType::GNULongLink, "GNU long link name"),
        (tar::EntryType::XHeader, "PAX extended header"),
        (tar::EntryType::XGlobalHeader, "PAX global header"),
    ] {
        rejected(
            &rai_testkit::header_bomb(kind, 1 << 30, 1 << 20),
            &format!("the archive's {what} claims 1.0 GiB"),
        );
    }
}

#[test]
fn data_the_unpacker_never_writes_still_counts() {
    // A directory entry carrying 64 MiB of data: the tar crate decompresses it to skip it; it must count.
    let mut b = tar::Builder::new(Vec::new());
    b.append(
        &raw_tar_header(b"d", tar::EntryType::Directory, 64 << 20, 0o755, None),
        std::io::repeat(0).take(64 << 20),
    )
    .unwrap();
    let archive = zstd::encode_all(b.into_inner().unwrap().as_slice(), 3).unwrap();
    let limits = UnpackLimits {
        max_bytes: 1 << 20,
        max_entries: 8,
    };
    let (result, sandbox) = attack(&archive, limits);
    let e = result.expect_err("refused").to_string();
    assert!(
        e.starts_with("the archive decompresses to more than"),
        "{e}"
    );
    std::fs::remove_dir_all(sandbox).unwrap();
}

#[test]
fn a_pax_size_is_followed_like_the_tar_reader_does() {
    // A PAX header giving the next file its size (as GNU tar writes for files over 8 GiB): unpacked exactly.
    let mut b = tar::Builder::new(Vec::new());
    let pax = b"13 size=2000\n";
    b.append(
        &raw_tar_header(
            b"pax",
            tar::EntryType::XHeader,
            pax.len() as u64,
            0o644,
            None,
        ),
        &pax[..],
    )
    .unwrap();
    let mut h = raw_tar_header(b"big", tar::EntryType::Regular, 0, 0o644, None);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let mut raw = b.into_inner().unwrap();
    // The file's 2000 bytes and padding, after its header that says 0, then the end blocks.
    raw.truncate(raw.len() - 1024);
    raw.extend(std::iter::repeat_n(b'z', 2000));
    raw.extend(std::iter::repeat_n(0u8, 2048 - 2000));
    raw.extend(raw_tar_header(b"after", tar::EntryType::Regular, 1, 0o644, None).as_bytes());
    raw.extend(b"a".iter().chain(std::iter::repeat_n(&0u8, 511)));
    raw.extend([0u8; 1024]);
    let archive = zstd::encode_all(raw.as_slice(), 3).unwrap();
    let (result, sandbox) = attack(&archive, UnpackLimits::default());
    let summary = result.unwrap();
    assert_eq!(summary.files, 2);
    assert_eq!(
        std::fs::read(sandbox.join("target/big")).unwrap(),
        vec![b'z'; 2000]
    );
    assert_eq!(std::fs::read(sandbox.join("target/after")).unwrap(), b"a");
    std::fs::remove_dir_all(sandbox).unwrap();
}

/// The chain of issue 14 under `root`: each link's text stays inside; `f` and `g` lead out.
#[cfg(unix)]
fn escaping_chain(root: &Path) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(root.join("d/x")).unwrap();
    symlink("..", root.join("d/x/up")).unwrap();
    symlink("d/x/up/..", root.join("e")).unwrap();
    symlink("e/..", root.join("f")).unwrap();
    symlink("f/etc", root.join("g")).unwrap();
    write(&root.join("d/x/file"), "inside");
}

#[cfg(unix)]
#[test]
fn links_leading_out_through_other_links_are_never_packed_nor_left_unpacked() {
    use rai_common::archive::resolves_inside;
    // Packing (the worker's /build, a student's project): f and g are left out, the rest kept.
    let src = tempfile::tempdir().unwrap();
    escaping_chain(src.path());
    let mut bytes = Vec::new();
    let summary = pack(src.path(), &mut bytes, &PackOptions::default(), |_| {}).unwrap();
    let mut skipped: Vec<String> = summary
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.path.display(), s.reason))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "f: symbolic link leading outside the directory through other links",
            "g: symbolic link leading outside the directory through other links",
        ]
    );
    let (result, sandbox) = attack(&bytes, UnpackLimits::default());
    let got = result.unwrap();
    assert_eq!(got.links, 2, "d/x/up and e");
    let target = sandbox.join("target");
    assert!(resolves_inside(&target, Path::new("e")));
    assert_eq!(
        std::fs::read_to_string(target.join("e/d/x/file")).unwrap(),
        "inside"
    );
    std::fs::remove_dir_all(&sandbox).unwrap();

    // Unpacking an archive made by hand with the whole chain: f and g are removed once everything is written.
    let archive = hostile(&[
        Raw::Dir(b"d"),
        Raw::Dir(b"d/x"),
        Raw::Symlink(b"d/x/up", b".."),
        Raw::Symlink(b"e", b"d/x/up/.."),
        Raw::Symlink(b"f", b"e/.."),
        Raw::Symlink(b"g", b"f/etc"),
    ]);
    let (result, sandbox) = attack(&archive, UnpackLimits::default());
    let got = result.unwrap();
    let mut dropped: Vec<String> = got
        .links_dropped
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    dropped.sort();
    assert_eq!(dropped, ["f", "g"]);
    let target = sandbox.join("target");
    assert!(!target.join("f").exists() && target.join("f").symlink_metadata().is_err());
    assert!(target.join("g").symlink_metadata().is_err());
    assert!(target.join("e").symlink_metadata().is_ok());
    std::fs::remove_dir_all(&sandbox).unwrap();
}

#[cfg(unix)]
#[test]
fn unpacking_beside_someones_files_replaces_deletes_and_remodes_nothing() {
    use rai_common::archive::{Existing, unpack_into};
    use std::os::unix::fs::{PermissionsExt, symlink};
    // What the archive holds.
    let src = tempfile::tempdir().unwrap();
    write(&src.path().join("notes.txt"), "from the job");
    write(&src.path().join("out/result"), "from the job");
    write(&src.path().join("lib/a.so"), "from the job");
    write(&src.path().join("new.txt"), "from the job");
    std::fs::set_permissions(
        src.path().join("out"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let mut bytes = Vec::new();
    pack(src.path(), &mut bytes, &PackOptions::default(), |_| {}).unwrap();
    // The student's folder: a file, a folder with its own mode, and a link to somewhere else of theirs.
    let home = tempfile::tempdir().unwrap();
    let elsewhere = home.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let dest = home.path().join("dest");
    write(&dest.join("notes.txt"), "mine");
    std::fs::create_dir(dest.join("out")).unwrap();
    std::fs::set_permissions(dest.join("out"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(&elsewhere, dest.join("lib")).unwrap();
    let got = unpack_into(
        bytes.as_slice(),
        &dest,
        UnpackLimits::default(),
        Existing::Keep,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::metadata(dest.join("out"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755,
        "an existing folder keeps its mode"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("out/result")).unwrap(),
        "from the job"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("new.txt")).unwrap(),
        "from the job"
    );
    assert!(
        std::fs::read_link(dest.join("lib")).is_ok(),
        "the link is still theirs"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through it"
    );
    let mut kept: Vec<String> = got
        .kept_existing
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    kept.sort();
    assert_eq!(kept, ["lib", "lib/a.so", "notes.txt"]);
}
