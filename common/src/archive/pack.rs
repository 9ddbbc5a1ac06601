//! Packing a directory.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::errors::ArchiveError;

/// The zstd job size when compressing on several threads (zstd's minimum is 512 KiB).
const JOB_BYTES: u32 = 1 << 20;

/// The most zstd worker threads [`PackOptions::default`] uses: with [`JOB_BYTES`] jobs, about 6 MiB each, so a
/// student's many-core laptop packs a 1 GiB project within the client's 64 MiB.
pub const MAX_THREADS: u32 = 4;

/// Limits and settings of [`pack`].
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Most bytes of file content.
    pub max_bytes: u64,
    /// Most files (directories and links count too).
    pub max_files: u64,
    /// zstd level.
    pub level: i32,
    /// zstd worker threads (0: compress on the calling thread).
    pub threads: u32,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            max_bytes: 1 << 30,
            max_files: 100_000,
            level: super::ZSTD_LEVEL,
            threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get() as u32)
                .min(MAX_THREADS),
        }
    }
}

/// Progress of a pack, for progress bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackProgress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Something left out of the archive, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    pub path: PathBuf,
    pub reason: &'static str,
}

/// What a pack did.
#[derive(Debug, Clone, Default)]
pub struct PackSummary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    /// Bytes of file content.
    pub bytes: u64,
    pub skipped: Vec<SkippedEntry>,
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(u64),
    Symlink(PathBuf),
}

/// One entry to pack: its path relative to the root.
#[derive(Debug, Clone)]
pub struct ScannedEntry {
    rel: PathBuf,
    kind: Kind,
}

impl ScannedEntry {
    /// Its path, relative to the root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// Whether it is a folder.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir)
    }

    /// Where it points, when it is a link (one that stays inside the root: others were skipped).
    pub fn link_target(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Symlink(t) => Some(t),
            _ => None,
        }
    }
}

/// The files a project must never upload, whatever the ignore files say.
fn always_skipped(name: &str) -> bool {
    name == ".git"
        || name == ".rai_profile"
        || name.ends_with(".rai_profile")
        || name == ".rai_secret"
}

/// Whether a link at `rel` (relative to the root) pointing at `target` stays inside the root.
pub(crate) fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() || target.has_root() {
        return false;
    }
    let mut depth: i64 = rel.parent().map_or(0, |p| p.components().count() as i64);
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

// Long (about 100 lines) on purpose: the walk's rules (ignore files, links, caps, largest offenders) share its
// state; split, they would pass it all around.
/// Walks `root` and checks the caps: what [`pack`] would write, or why it will not.
pub fn scan(
    root: &Path,
    opts: &PackOptions,
) -> Result<(Vec<ScannedEntry>, Vec<SkippedEntry>), ArchiveError> {
    let meta = std::fs::metadata(root).map_err(|e| ArchiveError::io(root, e))?;
    if !meta.is_dir() {
        return Err(ArchiveError::NotADirectory(root.to_path_buf()));
    }
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .ignore(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .add_custom_ignore_filename(".raiignore")
        .filter_entry(|e| !always_skipped(&e.file_name().to_string_lossy()))
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let (mut bytes, mut count) = (0u64, 0u64);
    for item in walker {
        let item = item.map_err(|e| ArchiveError::Walk(e.to_string()))?;
        let rel = item
            .path()
            .strip_prefix(root)
            .expect("the walk stays under its root")
            .to_path_buf();
        if rel.as_os_str().is_empty() {
            continue;
        }
        let ft = item
            .file_type()
            .ok_or_else(|| ArchiveError::Walk(format!("{}: no file type", rel.display())))?;
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            let len = item
                .metadata()
                .map_err(|e| ArchiveError::Walk(e.to_string()))?
                .len();
            bytes += len;
            Kind::File(len)
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(item.path()).map_err(|e| ArchiveError::io(item.path(), e))?;
            if !link_stays_inside(&rel, &target) {
                skipped.push(SkippedEntry {
                    path: rel,
                    reason: "symbolic link pointing outside the directory",
                });
                continue;
            }
            if !super::links::resolves_inside(root, &rel) {
                skipped.push(SkippedEntry {
                    path: rel,
                    reason: "symbolic link leading outside the directory through other links",
                });
                continue;
            }
            Kind::Symlink(target)
        } else {
            skipped.push(SkippedEntry {
                path: rel,
                reason: "not a regular file, directory or link",
            });
            continue;
        };
        count += 1;
        entries.push(ScannedEntry { rel, kind });
    }
    if bytes > opts.max_bytes {
        let mut files: Vec<(PathBuf, u64)> = entries
            .iter()
            .filter_map(|e| match e.kind {
                Kind::File(n) => Some((e.rel.clone(), n)),
                _ => None,
            })
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.1));
        files.truncate(5);
        return Err(ArchiveError::TooLarge {
            bytes,
            cap: opts.max_bytes,
            largest: files,
        });
    }
    if count > opts.max_files {
        let mut per_dir: std::collections::HashMap<PathBuf, u64> = Default::default();
        for e in &entries {
            let top = e
                .rel
                .components()
                .next()
                .map(|c| PathBuf::from(c.as_os_str()))
                .unwrap_or_default();
            *per_dir.entry(top).or_default() += 1;
        }
        let mut dirs: Vec<(PathBuf, u64)> = per_dir.into_iter().collect();
        dirs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        dirs.truncate(5);
        return Err(ArchiveError::TooManyFiles {
            count,
            cap: opts.max_files,
            largest: dirs,
        });
    }
    Ok((entries, skipped))
}

/// Reads exactly `remaining` bytes or fails: a file that shrank while packing must not corrupt the archive.
struct Exact<R> {
    inner: R,
    remaining: u64,
    path: PathBuf,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being packed", self.path.display()),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    // Keep permission bits, never setuid/setgid/sticky.
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

fn mtime_of(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Opens a file the scan saw as a regular file, refusing to follow a link put in its place since (on the worker,
/// `/build` is packed only after its container is gone, but nothing is taken on trust).
fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)
}

/// Packs `root` as tar + zstd into `out`, calling `progress` as it goes. Returns what was packed.
pub fn pack<W: Write>(
    root: &Path,
    out: W,
    opts: &PackOptions,
    progress: impl FnMut(PackProgress),
) -> Result<PackSummary, ArchiveError> {
    pack_scanned(root, scan(root, opts)?, out, opts, progress)
}

// Long (about 90 lines): one arm per entry kind, as in `scan`.
/// [`pack`] of what an earlier [`scan`] of `root` found (a caller that checked the caps first walks only once).
pub fn pack_scanned<W: Write>(
    root: &Path,
    (entries, skipped): (Vec<ScannedEntry>, Vec<SkippedEntry>),
    out: W,
    opts: &PackOptions,
    mut progress: impl FnMut(PackProgress),
) -> Result<PackSummary, ArchiveError> {
    let mut state = PackProgress {
        files_total: entries.len() as u64,
        bytes_total: entries
            .iter()
            .map(|e| if let Kind::File(n) = e.kind { n } else { 0 })
            .sum(),
        ..Default::default()
    };
    progress(state);
    let mut encoder = zstd::Encoder::new(out, opts.level).map_err(ArchiveError::Compress)?;
    if opts.threads > 1 {
        encoder
            .multithread(opts.threads)
            .map_err(ArchiveError::Compress)?;
        // zstd's own job size at this level is 8 MiB and each worker holds about six jobs' worth of buffers:
        // 112 MiB with two workers. 1 MiB jobs keep a worker near 6 MiB (measured: 18 MiB peak for two).
        encoder
            .set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_BYTES))
            .map_err(ArchiveError::Compress)?;
    }
    let mut builder = tar::Builder::new(BufWriter::with_capacity(256 * 1024, encoder));
    let mut summary = PackSummary {
        skipped,
        ..Default::default()
    };
    for e in &entries {
        let full = root.join(&e.rel);
        let meta = std::fs::symlink_metadata(&full).map_err(|err| ArchiveError::io(&full, err))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode_of(&meta));
        header.set_mtime(mtime_of(&meta));
        header.set_uid(0);
        header.set_gid(0);
        match &e.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, &e.rel, io::empty())
                    .map_err(|err| ArchiveError::io(&full, err))?;
                summary.dirs += 1;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &e.rel, target)
                    .map_err(|err| ArchiveError::io(&full, err))?;
                summary.links += 1;
            }
            Kind::File(size) => {
                let file = open_no_follow(&full).map_err(|err| ArchiveError::io(&full, err))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let reader = Exact {
                    inner: file,
                    remaining: *size,
                    path: e.rel.clone(),
                };
                builder
                    .append_data(&mut header, &e.rel, reader)
                    .map_err(|err| ArchiveError::io(&full, err))?;
                summary.files += 1;
                summary.bytes += size;
                state.bytes_done += size;
            }
        }
        state.files_done += 1;
        progress(state);
    }
    let buffered = builder.into_inner().map_err(ArchiveError::Compress)?;
    let encoder = buffered
        .into_inner()
        .map_err(|e| ArchiveError::Compress(e.into_error()))?;
    encoder
        .finish()
        .map_err(ArchiveError::Compress)?
        .flush()
        .map_err(ArchiveError::Compress)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_containment() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("c")));
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("../../c")));
        assert!(!link_stays_inside(Path::new("b"), Path::new("/etc/passwd")));
        assert!(link_stays_inside(
            Path::new("x/y/z"),
            Path::new("./../../q")
        ));
    }
}
