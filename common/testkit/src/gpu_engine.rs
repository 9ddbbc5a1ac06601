//! A Docker engine that carries GPU requests, on a machine without a GPU.
//!
//! dockerd registers its built-in `nvidia` device driver when an executable named `nvidia-container-runtime-hook`
//! is on its PATH at start. For each container with a device request it then adds `NVIDIA_VISIBLE_DEVICES=<the
//! requested ids>` (and `NVIDIA_DRIVER_CAPABILITIES`) to the process environment and has runc run that executable
//! as an OCI prestart hook, the container's state (with its bundle path) on stdin. [`GpuEngine`] starts a private
//! dockerd (Debian's `docker.io`: its own socket, data root, exec root and containerd, an empty `--config-file` so
//! the machine's daemon.json does not apply, no bridge, no iptables) with a stand-in hook first on its PATH. So
//! every GPU container raid makes goes through the real engine, the real runtime and the real hook protocol; only
//! the driver is missing.
//!
//! The stand-in does what the real hook does that a test can see, and records it:
//! - it appends one line per container to [`GpuEngine::hook_log`]: container id, `NVIDIA_VISIBLE_DEVICES`,
//!   `NVIDIA_DRIVER_CAPABILITIES`, the time, and the job (`RAI_JOB_ID`, which raid sets) (read back by
//!   [`GpuEngine::hook_calls`]). The time is `/proc/uptime`'s, a clock the job's own commands can read too.
//! - it puts an `nvidia-smi` into the container (the real hook mounts the driver's), which lists the devices the
//!   container was given, `nvidia-smi -L` style, so a job's commands can say what they see.
//!
//! Beside it, a stand-in host `nvidia-smi` ([`GpuEngine::nvidia_smi`]) answers raid's GPU sampler with the samples a
//! test sets ([`GpuEngine::set_samples`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The stand-in `nvidia-container-runtime-hook` (POSIX sh, run by runc on the host).
const HOOK: &str = r#"#!/bin/sh
# Stand-in for nvidia-container-runtime-hook (rai's test kit): records the container and what it was given. It
# runs in every GPU container's start, whose time a benchmark measures: one grep reads the spec (the shell's own
# read takes a byte per system call and its pattern matching is quadratic on a spec of tens of KiB).
[ "$1" = prestart ] || exit 0
IFS= read -r state
id=${state#*\"id\":\"}; id=${id%%\"*}
bundle=${state#*\"bundle\":\"}; bundle=${bundle%%\"*}
found=$(grep -o -e '"root":{"path":"[^"]*"' -e '"\(NVIDIA_VISIBLE_DEVICES\|NVIDIA_DRIVER_CAPABILITIES\|RAI_JOB_ID\)=[^"]*"' "$bundle/config.json")
root= visible= caps= job=
# The last of each wins, as in a process's environment.
while IFS= read -r line; do
  line=${line#\"}; line=${line%\"}
  case "$line" in
    'root":{"path":"'*) root=${line#*path\":\"} ;;
    NVIDIA_VISIBLE_DEVICES=*) visible=${line#*=} ;;
    NVIDIA_DRIVER_CAPABILITIES=*) caps=${line#*=} ;;
    RAI_JOB_ID=*) job=${line#*=} ;;
  esac
done <<FOUND
$found
FOUND
case "$root" in /*) ;; *) root="$bundle/$root" ;; esac
here=${0%/*}
mkdir -p "$root/usr/bin"
cp "$here/nvidia-smi.container" "$root/usr/bin/nvidia-smi"
read -r up _ < /proc/uptime
printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$visible" "$caps" "$up" "$job" >> "$here/../hook.log"
"#;

/// The `nvidia-smi` the stand-in hook puts into each GPU container: it lists what the container was given.
const CONTAINER_SMI: &str = r#"#!/bin/sh
# Stand-in nvidia-smi (rai's test kit): lists the devices this container was given, as `nvidia-smi -L` does.
i=0
for id in $(echo "$NVIDIA_VISIBLE_DEVICES" | tr ',' ' '); do
  case "$id" in
    void|none|"") ;;
    MIG-*) echo "  MIG 1g.10gb     Device  0: (UUID: $id)" ;;
    *) echo "GPU $i: Stand-in GPU (UUID: $id)"; i=$((i + 1)) ;;
  esac
done
"#;

/// The host's stand-in `nvidia-smi`, for raid's GPU sampler: `--query-gpu=... -lms N` prints the lines of the
/// `samples` file beside it every N ms (what a test wants the GPUs to report), until it is killed; `-L` lists them.
const HOST_SMI: &str = r#"#!/bin/sh
# Stand-in nvidia-smi (rai's test kit): prints the samples a test set, as the GPU query does.
here=$(dirname "$0")
ms=1000
list=
while [ $# -gt 0 ]; do
  case "$1" in
    -lms) ms=$2; shift ;;
    -L) list=1 ;;
  esac
  shift
done
if [ -n "$list" ]; then
  while IFS=, read -r index uuid rest; do echo "GPU $index: Stand-in GPU (UUID:$uuid)"; done < "$here/samples"
  exit 0
fi
echo "$$" >> "$here/sampler.pids"
while :; do
  cat "$here/samples"
  sleep "$(echo "$ms" | awk '{ printf "%.3f", $1 / 1000 }')"
done
"#;

/// One run of the stand-in hook: a container started with a GPU request.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCall {
    /// The container's full id.
    pub container: String,
    /// `NVIDIA_VISIBLE_DEVICES` as the container's process got it (the last one set).
    pub visible: String,
    pub capabilities: String,
    /// When the hook ran: seconds since boot (`/proc/uptime`, which a container reads the same).
    pub at: f64,
    /// The job the container was made for (its `RAI_JOB_ID`), if any.
    pub job: String,
}

/// A private dockerd with the stand-in hook; stopped and removed on drop.
pub struct GpuEngine {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl GpuEngine {
    /// Starts the engine and loads the test image into it (fails the test if it cannot: no skipping).
    pub fn start() -> GpuEngine {
        let dockerd = which("dockerd").unwrap_or_else(|| {
            panic!("dockerd is not installed: deploy/local/test.sh installs Debian's docker.io")
        });
        // Under /tmp: containerd's sockets live under the exec root and a socket path has at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("rai-gpu-")
            .tempdir_in("/tmp")
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        write_executable(&bin.join("nvidia-container-runtime-hook"), HOOK);
        write_executable(&bin.join("nvidia-smi.container"), CONTAINER_SMI);
        let host = dir.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        write_executable(&host.join("nvidia-smi"), HOST_SMI);
        std::fs::write(host.join("samples"), "").unwrap();
        std::fs::write(dir.path().join("hook.log"), "").unwrap();
        std::fs::write(dir.path().join("daemon.json"), "{}").unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let arg = |name: &str| dir.path().join(name).display().to_string();
        let child = Command::new(dockerd)
            .args(["--host", &format!("unix://{}", arg("docker.sock"))])
            .args(["--data-root", &arg("data")])
            .args(["--exec-root", &arg("exec")])
            .args(["--pidfile", &arg("docker.pid")])
            .args(["--config-file", &arg("daemon.json")])
            // vfs: works on any file system the machine's engine runs on (overlay in overlay does not); the test
            // images are a few MiB.
            .args(["--storage-driver", "vfs"])
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false"])
            .args(["--log-level", "warn"])
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start dockerd");
        let engine = GpuEngine {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.docker(&["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the GPU engine did not start within 60 s:\n{}",
                engine.dockerd_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        engine.load(&crate::image());
        engine
    }

    /// `DOCKER_HOST` of this engine (`raid.docker`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Runs the `docker` CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(["--host", &self.host()])
            .args(args)
            .output()
            .expect("cannot run the docker CLI")
    }

    /// Copies `image` from the machine's engine into this one.
    pub fn load(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let status = Command::new("docker")
            .args(["--host", &self.host(), "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            save.wait().unwrap().success() && status.success(),
            "cannot load {image} into the GPU engine"
        );
    }

    /// The stand-in hook's log: one line per GPU container started.
    pub fn hook_log(&self) -> PathBuf {
        self.dir.path().join("hook.log")
    }

    /// Every container the hook has seen so far, in order.
    pub fn hook_calls(&self) -> Vec<HookCall> {
        std::fs::read_to_string(self.hook_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut f = line.split('\t');
                Some(HookCall {
                    container: f.next()?.to_string(),
                    visible: f.next()?.to_string(),
                    capabilities: f.next()?.to_string(),
                    at: f.next()?.parse().ok()?,
                    job: f.next().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    /// The host's stand-in `nvidia-smi` (`raid.gpu.nvidia_smi`): it reports what [`GpuEngine::set_samples`] says.
    pub fn nvidia_smi(&self) -> PathBuf {
        self.dir.path().join("host/nvidia-smi")
    }

    /// What the GPUs report from now on: `(index, uuid, utilisation %, memory used MiB)` each.
    pub fn set_samples(&self, samples: &[(u32, &str, u32, u64)]) {
        let text: String = samples
            .iter()
            .map(|(i, uuid, u, m)| format!("{i}, {uuid}, {u}, {m}\n"))
            .collect();
        // Written whole and renamed, so a reader never sees half of it.
        let tmp = self.dir.path().join("host/samples.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.dir.path().join("host/samples")).unwrap();
    }

    /// How many sampling processes the stand-in `nvidia-smi` has started so far.
    pub fn sampler_starts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("host/sampler.pids"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Whether a sampling process the stand-in started is still running.
    pub fn sampler_running(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("host/sampler.pids"))
            .unwrap_or_default()
            .lines()
            // A killed process not yet reaped has an empty command line.
            .any(|pid| {
                std::fs::read(Path::new("/proc").join(pid.trim()).join("cmdline"))
                    .is_ok_and(|c| !c.is_empty())
            })
    }

    /// What dockerd logged, for failure messages.
    pub fn dockerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for GpuEngine {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut child) = self.child.take() {
            // SIGTERM: dockerd stops its containerd and removes its sockets.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- the GPU engine's dockerd ---\n{}", self.dockerd_log());
        }
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
