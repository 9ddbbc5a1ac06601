//! The hostile inputs made by hand: tar headers with any name and link, archives of them, a zstd bomb, a million
//! empty files; and the plain build file and the no-op changes most message and upload cases start from.

use rai_common::job::{JobRequest, SignedJob};

use crate::jobs::build_file;

/// The plain job every message and upload case signs: it prints `hi`.
pub(super) fn plain() -> String {
    build_file(&["echo hi"], "time: 20s")
}

/// Leaves the signed request as it is.
pub(super) fn no_tweak(_: &mut JobRequest) {}

/// Leaves the signed message as it is.
pub(super) fn as_is(env: SignedJob) -> SignedJob {
    env
}

/// A tar header with any name and link target (`../x`, `/etc/x`).
pub(super) fn raw_header(
    name: &str,
    kind: tar::EntryType,
    size: u64,
    link: Option<&str>,
) -> tar::Header {
    crate::raw_tar_header(name.as_bytes(), kind, size, 0o644, link.map(str::as_bytes))
}

/// One archive entry: its header and its bytes.
pub(super) type Entry = (tar::Header, Vec<u8>);

/// An archive (tar + zstd, as rai makes them) of a build file and `entries`.
pub(super) fn archive(build: &str, entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).unwrap());
    let h = raw_header(
        "rai_build.yml",
        tar::EntryType::Regular,
        build.len() as u64,
        None,
    );
    b.append(&h, build.as_bytes()).unwrap();
    for (h, data) in entries {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// One file that claims `bytes` of zeros: a few hundred KiB compressed.
pub(super) fn bomb(build: &str, bytes: u64) -> Vec<u8> {
    use std::io::Write;
    let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
    let h = raw_header(
        "rai_build.yml",
        tar::EntryType::Regular,
        build.len() as u64,
        None,
    );
    enc.write_all(h.as_bytes()).unwrap();
    let mut data = build.as_bytes().to_vec();
    data.resize(data.len().div_ceil(512) * 512, 0);
    enc.write_all(&data).unwrap();
    enc.write_all(raw_header("zeros", tar::EntryType::Regular, bytes, None).as_bytes())
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..bytes >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

/// `n` empty files, streamed into the encoder (the plain tar would be n × 512 bytes).
pub(super) fn empty_files(build: &str, n: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).unwrap());
    let h = raw_header(
        "rai_build.yml",
        tar::EntryType::Regular,
        build.len() as u64,
        None,
    );
    b.append(&h, build.as_bytes()).unwrap();
    for i in 0..n {
        let h = raw_header(
            &format!("e/{:03}/{i}", i % 1000),
            tar::EntryType::Regular,
            0,
            None,
        );
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}
