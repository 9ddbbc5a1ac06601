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
