//! Unpacking an archive that may be hostile.
//!
//! Every entry is checked before anything is written: its path must be relative and free of `..`; it must not be
//! written through a symbolic link (even one the archive itself made); links must point inside the target; only
//! files, directories and links are allowed; setuid, setgid and sticky bits are dropped; and the total bytes and
//! entries are capped as they are written, so a zstd bomb stops at the cap instead of filling the disk. The first
//! violation aborts with an error naming the entry; the caller removes the half-written directory.
//!
//! Below the tar reader sits a [`TarGuard`] that follows the tar stream's own framing: it counts every byte
//! decompressed (headers, padding and the data of entries never written count too) and refuses a GNU long name or
//! PAX header that claims more than [`MAX_HEADER_BODY`] before the tar crate, which reads those whole into memory,
//! asks for its body.
//!
//! Over 450 lines: the unpacker and its byte-counting TarGuard share invariants a split would hide.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

use crate::errors::ArchiveError;

/// Caps on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 4 << 30,
            max_entries: 200_000,
        }
    }
}

/// What an unpack wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackSummary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
    /// Entries not written because something was already at their path ([`Existing::Keep`]).
    pub kept_existing: Vec<PathBuf>,
    /// Links written and then removed because they lead outside the target (see [`super::resolves_inside`]).
    pub links_dropped: Vec<PathBuf>,
}

/// What an unpack does with what is already in its target directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// The target is the unpack's own (the worker's fresh job directory): an entry replaces an earlier one at the
    /// same path, as tar does.
    Replace,
    /// The target is someone's folder (`rai download --force`): nothing there is deleted, replaced, written
    /// through or re-moded; an entry whose path is taken is left out and listed in
    /// [`UnpackSummary::kept_existing`], and so is every entry under it.
    Keep,
}

/// What to do with one entry after its parents were checked.
enum Parents {
    Ready,
    /// Something already there is in the way ([`Existing::Keep`]): leave the entry out.
    Taken,
}

const CHUNK: usize = 1 << 20;

/// The most a GNU long name or link, or a PAX extended header, may hold. Real ones are a path (4 KiB at most on
/// Linux) or a few attributes.
pub const MAX_HEADER_BODY: u64 = 64 << 10;

/// What an archive may decompress to beyond its file content: a header and padding per entry, and long names.
fn framing_allowance(limits: &UnpackLimits) -> u64 {
    limits
        .max_entries
        .saturating_mul(2 * 512)
        .saturating_add(16 << 20)
}

/// Where the guard is in the tar stream.
enum Frame {
    /// Reading a 512-byte header block (`have` bytes of it so far).
    Header { have: usize },
    /// In an entry's data and padding; `meta` when the data is a long name or PAX header (collected to read PAX's
    /// `size`).
    Body { left: u64, meta: Option<u8> },
}

/// Follows a tar stream's framing as the tar crate reads it, counting and capping (see the module's overview).
/// The first refusal is kept in `refused` for [`unpack`] to report, since the tar crate's error would hide it.
struct TarGuard<R> {
    inner: R,
    read: u64,
    max: u64,
    frame: Frame,
    header: [u8; 512],
    /// The body of the PAX header being read, and the size it gives the next entry.
    pax: Vec<u8>,
    pax_size: Option<u64>,
    refused: std::sync::Arc<std::sync::Mutex<Option<ArchiveError>>>,
}

/// A tar size field: octal text, or GNU's base-256 when its first byte's high bit is set.
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The `size` a PAX header body gives the next entry, read as the tar crate reads it (its first `size` record; none
/// once a record is malformed), so the guard and the tar reader never disagree on where an entry ends.
fn pax_size(body: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(body) {
        let record = record.ok()?;
        if record.key() == Ok("size") {
            return record.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> TarGuard<R> {
    fn refuse(&self, e: ArchiveError) -> io::Error {
        let message = e.to_string();
        *self.refused.lock().expect("never poisoned") = Some(e);
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    /// Moves the framing over `bytes`, which were just read.
    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), ArchiveError> {
        while !bytes.is_empty() {
            match &mut self.frame {
                Frame::Header { have } => {
                    let n = (512 - *have).min(bytes.len());
                    self.header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == 512 {
                        self.frame = self.on_header()?;
                    }
                }
                Frame::Body { left, meta } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if *meta == Some(b'x') {
                        let room = (MAX_HEADER_BODY as usize).saturating_sub(self.pax.len());
                        self.pax.extend_from_slice(&bytes[..n.min(room)]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if *meta == Some(b'x') {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.frame = Frame::Header { have: 0 };
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads a complete header block: what follows it, or why the archive is refused.
    fn on_header(&mut self) -> Result<Frame, ArchiveError> {
        let h = &self.header;
        if h.iter().all(|b| *b == 0) {
            // The end-of-archive blocks (or padding): another header may follow.
            return Ok(Frame::Header { have: 0 });
        }
        let kind = h[156];
        let size = tar_size(&h[124..136])
            .ok_or_else(|| ArchiveError::Corrupt("a tar header has an unreadable size".into()))?;
        let meta = match kind {
            b'L' => Some("GNU long name"),
            b'K' => Some("GNU long link name"),
            b'x' => Some("PAX extended header"),
            b'g' => Some("PAX global header"),
            _ => None,
        };
        let size = match meta {
            Some(what) if size > MAX_HEADER_BODY => {
                return Err(ArchiveError::HeaderTooLarge {
                    what,
                    size,
                    cap: MAX_HEADER_BODY,
                });
            }
            Some(_) => size,
            // A PAX header's size applies to the next real entry only.
            None => self.pax_size.take().unwrap_or(size),
        };
        if kind == b'S' {
            let name = String::from_utf8_lossy(&h[..100]);
            return Err(ArchiveError::Sparse {
                entry: name.trim_end_matches('\0').to_string(),
            });
        }
        let left = size.div_ceil(512).saturating_mul(512);
        Ok(if left == 0 {
            Frame::Header { have: 0 }
        } else {
            Frame::Body {
                left,
                meta: meta.map(|_| kind),
            }
        })
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max {
            return Err(self.refuse(ArchiveError::StreamTooLarge { cap: self.max }));
        }
        if let Err(e) = self.follow(&buf[..n]) {
            return Err(self.refuse(e));
        }
        Ok(n)
    }
}

/// A reader over chunks that another thread decompresses.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The path of an entry, relative and without `..`, or why not.
fn safe_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => {
                #[cfg(windows)]
                if part.to_string_lossy().contains([':', '\\']) {
                    return Err("has a name this system cannot hold");
                }
                out.push(part)
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("has a \"..\" component"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(out)
}

struct Unpacker<'a> {
    dest: &'a Path,
    limits: UnpackLimits,
    existing: Existing,
    /// Links this unpack made, checked once every entry is written.
    links_made: Vec<PathBuf>,
    /// Directories this unpack made (the others are someone's, under [`Existing::Keep`]).
    dirs_made: HashSet<PathBuf>,
    summary: UnpackSummary,
    /// Directories this unpack made or checked: known not to be links.
    safe_dirs: HashSet<PathBuf>,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn reject(entry: &Path, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::UnsafeEntry {
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Makes sure every directory above `rel` exists and is a real directory, not a link.
    fn prepare_parents(&mut self, rel: &Path) -> Result<Parents, ArchiveError> {
        let mut at = PathBuf::new();
        let parents: Vec<_> = rel
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        for c in parents {
            at.push(c);
            if self.safe_dirs.contains(&at) {
                continue;
            }
            let full = self.dest.join(&at);
            match std::fs::symlink_metadata(&full) {
                // Someone else's link or file in the way: never written through, never replaced.
                Ok(m) if !m.is_dir() && self.existing == Existing::Keep && !self.made(&at) => {
                    return Ok(Parents::Taken);
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Self::reject(
                        rel,
                        format!(
                            "would be written through the symbolic link {}",
                            at.display()
                        ),
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Self::reject(
                        rel,
                        format!("{} is a file, not a directory", at.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&full).map_err(|e| ArchiveError::io(&full, e))?;
                    self.dirs_made.insert(at.clone());
                }
                Err(e) => return Err(ArchiveError::io(&full, e)),
            }
            self.safe_dirs.insert(at.clone());
        }
        Ok(Parents::Ready)
    }

    /// Whether this unpack wrote what is at `rel` (a link of its own may be in the way of a later entry, which is
    /// then refused, not left out).
    fn made(&self, rel: &Path) -> bool {
        self.links_made.iter().any(|l| l == rel)
    }

    /// Whether an entry at `full` is left out because something not of this unpack is there ([`Existing::Keep`]).
    fn taken(&mut self, rel: &Path, full: &Path) -> bool {
        if self.existing == Existing::Keep
            && !self.made(rel)
            && std::fs::symlink_metadata(full).is_ok()
        {
            self.summary.kept_existing.push(rel.to_path_buf());
            return true;
        }
        false
    }

    /// Removes whatever is at `full` (never following a link) so a new entry cannot write through it.
    fn clear(full: &Path) -> Result<(), ArchiveError> {
        match std::fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(full).map_err(|e| ArchiveError::io(full, e))
            }
            Ok(_) => std::fs::remove_file(full).map_err(|e| ArchiveError::io(full, e)),
            Err(_) => Ok(()),
        }
    }

    // Long (about 130 lines) on purpose: one arm per tar entry type, each with its own safety check, so every kind
    // of entry an archive can hold is judged in one place a reviewer can read top to bottom.
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let raw = entry
            .path()
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
            .into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        self.summary_entries_check(&raw)?;
        let rel = safe_relative(&raw).map_err(|why| Self::reject(&raw, why))?;
        if rel.as_os_str().is_empty() {
            return if kind.is_dir() {
                Ok(())
            } else {
                Err(Self::reject(&raw, "has an empty name"))
            };
        }
        if let Parents::Taken = self.prepare_parents(&rel)? {
            self.summary.kept_existing.push(rel);
            return Ok(());
        }
        let full = self.dest.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            tar::EntryType::Directory => {
                match std::fs::symlink_metadata(&full) {
                    // Someone's folder: used as it is, its mode untouched.
                    Ok(m)
                        if m.is_dir()
                            && self.existing == Existing::Keep
                            && !self.dirs_made.contains(&rel) =>
                    {
                        self.safe_dirs.insert(rel);
                        return Ok(());
                    }
                    Ok(m) if m.is_dir() => {}
                    Ok(_) if self.taken(&rel, &full) => return Ok(()),
                    Ok(_) => Self::clear(&full).and_then(|_| {
                        std::fs::create_dir(&full).map_err(|e| ArchiveError::io(&full, e))
                    })?,
                    Err(_) => std::fs::create_dir(&full).map_err(|e| ArchiveError::io(&full, e))?,
                }
                self.dirs_made.insert(rel.clone());
                set_mode(&full, mode | 0o700)?;
                self.safe_dirs.insert(rel);
                self.summary.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if self.taken(&rel, &full) {
                    return Ok(());
                }
                Self::clear(&full)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&full)
                    .map_err(|e| ArchiveError::io(&full, e))?;
                loop {
                    let n = entry
                        .read(&mut self.buf)
                        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    self.summary.bytes += n as u64;
                    if self.summary.bytes > self.limits.max_bytes {
                        return Err(ArchiveError::UnpackTooLarge {
                            cap: self.limits.max_bytes,
                            entry: rel.display().to_string(),
                        });
                    }
                    file.write_all(&self.buf[..n])
                        .map_err(|e| ArchiveError::io(&full, e))?;
                }
                if let Ok(Some(mtime)) = entry
                    .header()
                    .mtime()
                    .map(|t| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(t)))
                {
                    let _ = file.set_modified(mtime);
                }
                drop(file);
                set_mode(&full, mode)?;
                self.summary.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
                    .ok_or_else(|| Self::reject(&raw, "is a link without a target"))?
                    .into_owned();
                if !super::pack::link_stays_inside(&rel, &target) {
                    return Err(Self::reject(
                        &raw,
                        format!(
                            "is a symbolic link to {}, outside the directory",
                            target.display()
                        ),
                    ));
                }
                if self.taken(&rel, &full) {
                    return Ok(());
                }
                Self::clear(&full)?;
                make_symlink(&target, &full)?;
                self.links_made.push(rel);
                self.summary.links += 1;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
                    .ok_or_else(|| Self::reject(&raw, "is a link without a target"))?
                    .into_owned();
                let target_rel = safe_relative(&target).map_err(|why| {
                    Self::reject(&raw, format!("is a hard link whose target {why}"))
                })?;
                if let Parents::Taken = self.prepare_parents(&target_rel)? {
                    self.summary.kept_existing.push(rel);
                    return Ok(());
                }
                let target_full = self.dest.join(&target_rel);
                match std::fs::symlink_metadata(&target_full) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(Self::reject(
                            &raw,
                            format!(
                                "is a hard link to {}, which is not a file unpacked before it",
                                target.display()
                            ),
                        ));
                    }
                }
                if self.taken(&rel, &full) {
                    return Ok(());
                }
                Self::clear(&full)?;
                std::fs::hard_link(&target_full, &full).map_err(|e| ArchiveError::io(&full, e))?;
                self.summary.links += 1;
            }
            other => {
                let what = match other {
                    tar::EntryType::Char => "a character device",
                    tar::EntryType::Block => "a block device",
                    tar::EntryType::Fifo => "a fifo",
                    _ => "an entry of an unsupported type",
                };
                return Err(Self::reject(
                    &raw,
                    format!("is {what}; archives may hold only files, directories and links"),
                ));
            }
        }
        Ok(())
    }

    fn summary_entries_check(&self, raw: &Path) -> Result<(), ArchiveError> {
        let n = self.summary.files + self.summary.dirs + self.summary.links;
        if n >= self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                cap: self.limits.max_entries,
                entry: raw.display().to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ArchiveError::io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), ArchiveError> {
    Ok(())
}

#[cfg(unix)]
fn make_symlink(target: &Path, at: &Path) -> Result<(), ArchiveError> {
    std::os::unix::fs::symlink(target, at).map_err(|e| ArchiveError::io(at, e))
}

#[cfg(windows)]
fn make_symlink(target: &Path, at: &Path) -> Result<(), ArchiveError> {
    std::os::windows::fs::symlink_file(target, at).map_err(|e| ArchiveError::io(at, e))
}

impl Unpacker<'_> {
    /// Once every entry is written: removes each link of this unpack that leads outside `dest` through other
    /// links (a later entry could have changed where an earlier link leads, so this runs last).
    fn drop_escaping_links(&mut self) {
        // Removing one link can only make another that went through it dangle; loop until none escapes.
        loop {
            let escaping: Vec<PathBuf> = self
                .links_made
                .iter()
                .filter(|rel| !super::links::resolves_inside(self.dest, rel))
                .cloned()
                .collect();
            if escaping.is_empty() {
                return;
            }
            for rel in escaping {
                let full = self.dest.join(&rel);
                if std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = std::fs::remove_file(&full);
                }
                self.links_made.retain(|l| *l != rel);
                self.summary.links -= 1;
                self.summary.links_dropped.push(rel);
            }
        }
    }
}

/// Unpacks a tar + zstd stream into `dest` (created if missing), within `limits`, replacing what is there
/// ([`Existing::Replace`]: `dest` is the caller's own, fresh directory).
pub fn unpack<R: Read + Send>(
    input: R,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<UnpackSummary, ArchiveError> {
    unpack_into(input, dest, limits, Existing::Replace)
}

/// [`unpack`], saying what happens to what is already in `dest`.
pub fn unpack_into<R: Read + Send>(
    input: R,
    dest: &Path,
    limits: UnpackLimits,
    existing: Existing,
) -> Result<UnpackSummary, ArchiveError> {
    std::fs::create_dir_all(dest).map_err(|e| ArchiveError::io(dest, e))?;
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut decoder = match zstd::Decoder::new(input) {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            // Decompression is bounded by the consumer: it stops reading at the cap and drops the receiver.
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match decoder.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                chunk.truncate(filled);
                if tx.send(Ok(chunk)).is_err() {
                    return;
                }
            }
        });
        let refused = std::sync::Arc::new(std::sync::Mutex::new(None));
        let reader = TarGuard {
            inner: ChunkReader {
                rx,
                current: Vec::new(),
                pos: 0,
            },
            read: 0,
            max: limits.max_bytes.saturating_add(framing_allowance(&limits)),
            frame: Frame::Header { have: 0 },
            header: [0; 512],
            pax: Vec::new(),
            pax_size: None,
            refused: refused.clone(),
        };
        // The guard's own refusal says more than the tar crate's wrapping of it.
        let guarded = |e: ArchiveError| refused.lock().expect("never poisoned").take().unwrap_or(e);
        let mut archive = tar::Archive::new(reader);
        let mut unpacker = Unpacker {
            dest,
            limits,
            existing,
            links_made: Vec::new(),
            dirs_made: HashSet::new(),
            summary: UnpackSummary::default(),
            safe_dirs: HashSet::new(),
            buf: vec![0u8; 256 * 1024],
        };
        let entries = archive
            .entries()
            .map_err(|e| guarded(ArchiveError::Corrupt(e.to_string())))?;
        for entry in entries {
            let entry = entry.map_err(|e| guarded(ArchiveError::Corrupt(e.to_string())))?;
            unpacker.entry(entry).map_err(guarded)?;
        }
        unpacker.drop_escaping_links();
        Ok(unpacker.summary)
    })
}
