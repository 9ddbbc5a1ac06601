//! Hostile archives for tests: tar headers no well-behaved packer writes.

/// A tar header with any name and link target, even ones the `tar` crate refuses to write (`../x`, `/etc/x`): for
/// tests that build hostile archives.
pub fn raw_tar_header(
    name: &[u8],
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    link: Option<&[u8]>,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// A tar + zstd stream whose first entry is a metadata header of `kind` (a GNU long name, a PAX header) claiming
/// `claimed` bytes, followed by `zeros` bytes of zeros and nothing else: a few KiB that ask a naive reader for
/// `claimed` bytes of memory.
pub fn header_bomb(kind: tar::EntryType, claimed: u64, zeros: u64) -> Vec<u8> {
    use std::io::Write;
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(raw_tar_header(b"././@LongLink", kind, claimed, 0o644, None).as_bytes())
        .unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        enc.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    enc.finish().unwrap()
}
