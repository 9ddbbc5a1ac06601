//! A folder on a disk of its own: a sparse ext4 image on a loop device, mounted over the folder (root only).
//!
//! Hosts apart have disks apart. A stack on one machine keeps the fs store, the workers' job folders and the
//! students' projects on one filesystem, where they meet in a way a deployment of several hosts does not: ext4
//! skips an inode freed in the last few minutes when it makes a file, scanning past every such inode in the block
//! group, so right after a worker removed a job's `/src` of a few thousand files, each file made nearby costs about
//! 1 ms instead of 0.05 ms for up to five minutes (measured 2026-12-07; issue 30's benchmark found it). A store
//! shared by mount, which the fs store is for when gateways and workers are on several hosts, sits on a disk of
//! its own; a benchmark that times the store puts it on one of these.
//!
//! The image is written through with direct I/O, so its blocks are not cached twice (once for the loop device,
//! once for the file it lives in).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// A mounted disk image; unmounted and detached when dropped (its image file stays for its folder's owner to
/// remove).
#[derive(Debug)]
pub struct Disk {
    mount: PathBuf,
    device: String,
}

impl Disk {
    /// Makes a sparse ext4 image of `bytes` at `image` and mounts it over the folder `mount` (which must exist and
    /// be empty). Panics with what failed: the caller is a test or benchmark that needs it.
    pub fn mount(image: &Path, bytes: u64, mount: &Path) -> Disk {
        let file = std::fs::File::create(image)
            .unwrap_or_else(|e| panic!("create the disk image {}: {e}", image.display()));
        file.set_len(bytes)
            .unwrap_or_else(|e| panic!("size the disk image {}: {e}", image.display()));
        drop(file);
        let (image, folder) = (path_str(image), path_str(mount));
        run("mkfs.ext4", &["-q", "-F", image]);
        let device = run("losetup", &["--find", "--show", "--direct-io=on", image])
            .trim()
            .to_string();
        let disk = Disk {
            mount: mount.to_path_buf(),
            device,
        };
        run("mount", &[&disk.device, folder]);
        disk
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // A process of the stack may still be letting go of a file: unmount lazily rather than leave it mounted.
        let quiet = |cmd: &mut Command| {
            cmd.stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !quiet(Command::new("umount").arg(&self.mount))
            && !quiet(Command::new("umount").arg("-l").arg(&self.mount))
        {
            eprintln!("could not unmount {}", self.mount.display());
        }
        // Also when the mount failed; a device still in use is detached once its last user lets go.
        let _ = quiet(Command::new("losetup").args(["-d", &self.device]));
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A file written under the mount lives on the disk, not on the filesystem the folder is on, and is gone from
    /// the folder once the disk is dropped.
    #[test]
    fn a_folder_on_its_own_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("store");
        std::fs::create_dir(&mount).unwrap();
        let outer = std::fs::metadata(&mount).unwrap().dev();
        let disk = Disk::mount(&dir.path().join("store.img"), 64 << 20, &mount);
        assert_ne!(std::fs::metadata(&mount).unwrap().dev(), outer);
        std::fs::write(mount.join("object"), b"kept on the disk").unwrap();
        drop(disk);
        assert!(!mount.join("object").exists());
        assert_eq!(std::fs::metadata(&mount).unwrap().dev(), outer);
    }
}
