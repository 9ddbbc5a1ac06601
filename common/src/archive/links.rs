//! Where a symbolic link really leads: every link on its way followed, on disk, never leaving its root.
//!
//! A link's own target can look harmless and still lead out: `e -> d/x/up/..` stays inside as text, but when
//! `d/x/up -> ..`, `e` is the root itself, and `f -> e/..` is the root's parent. So both sides of rai keep a link
//! only when [`resolves_inside`] walks it, component by component, following each link it meets (as the kernel
//! would), and never steps above the root. Packing drops the others (the student's upload and the worker's
//! `/build`), and unpacking checks again once every entry is written, when no later entry can change the answer.

use std::path::{Component, Path, PathBuf};

/// The most links one resolution may follow (the kernel's own limit is 40).
const MAX_HOPS: u32 = 40;

/// Whether the link at `rel` (relative to `root`; its parent directories are real directories) resolves inside
/// `root` with every link on its way resolved too. A dangling part is taken as written, and a `..` after it still
/// may not climb out. A loop, an absolute target, or a path too long to check count as outside.
pub fn resolves_inside(root: &Path, rel: &Path) -> bool {
    let Some(name) = rel.file_name() else {
        return false;
    };
    let mut at: Vec<std::ffi::OsString> = rel
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    // Components still to walk, the next one last.
    let mut pending: Vec<PathBuf> = vec![PathBuf::from(name)];
    let mut hops = 0;
    while let Some(next) = pending.pop() {
        match next.components().next() {
            None => {}
            Some(Component::CurDir) => {}
            Some(Component::ParentDir) if at.pop().is_none() => return false,
            Some(Component::ParentDir) => {}
            Some(Component::RootDir | Component::Prefix(_)) => return false,
            Some(Component::Normal(part)) => {
                let mut here = root.to_path_buf();
                here.extend(&at);
                here.push(part);
                match std::fs::symlink_metadata(&here) {
                    Ok(m) if m.file_type().is_symlink() => {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return false;
                        }
                        let Ok(target) = std::fs::read_link(&here) else {
                            return false;
                        };
                        if target.has_root() {
                            return false;
                        }
                        // The target replaces this component, walked from the link's own directory.
                        for c in target.components().rev() {
                            pending.push(PathBuf::from(c.as_os_str()));
                        }
                    }
                    Ok(_) => at.push(part.to_os_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        at.push(part.to_os_string())
                    }
                    Err(_) => return false,
                }
            }
        }
    }
    true
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn chains_of_links_that_climb_out_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("build");
        std::fs::create_dir_all(root.join("d/x")).unwrap();
        // The chain from issue 14: each link's text stays inside; f and g do not.
        symlink("..", root.join("d/x/up")).unwrap();
        symlink("d/x/up/..", root.join("e")).unwrap();
        symlink("e/..", root.join("f")).unwrap();
        symlink("f/etc", root.join("g")).unwrap();
        symlink("d/x", root.join("ok")).unwrap();
        symlink("nothing/yet", root.join("dangling")).unwrap();
        symlink("nothing/../..", root.join("dangling-out")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        let inside = |rel: &str| resolves_inside(&root, Path::new(rel));
        assert!(inside("d/x/up"), "d/x/up is d");
        assert!(inside("e"), "e is the root itself");
        assert!(!inside("f"), "f is the root's parent");
        assert!(!inside("g"), "g is outside, through f");
        assert!(inside("ok"));
        assert!(inside("dangling"));
        assert!(!inside("dangling-out"));
        assert!(!inside("loop1"));
        assert!(!inside("abs"));
    }
}
