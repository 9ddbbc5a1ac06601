//! The Debian packages install on a fresh Debian as an admin installs them: deploy/package.sh's `.deb` files,
//! installed with dpkg in a container of the minimal Debian image debootstrap made (no network: every dependency
//! must already be in a minimal system), give binaries that run and report this commit, units that
//! `systemd-analyze verify` passes, the gateway's user and the folders; removing leaves the config, purging takes
//! the package's own files and never the admin's. And the static client downloads run where there is no libc.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// This checkout's commit as the packages must report it: a package of another commit is stale.
fn head_commit() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "git rev-parse HEAD failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn one(dist: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dist)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; make the packages with deploy/package.sh",
                dist.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one {prefix}*{suffix} in {}, found {found:?}: make them again with deploy/package.sh",
        dist.display()
    );
    found.into_iter().next().unwrap()
}

/// Runs `script` with bash in a fresh container of the Debian image, the dist folder at /dist, and returns its
/// `key=value` lines (later ones win) and the whole output.
fn in_fresh_debian(script: &str) -> (BTreeMap<String, String>, String) {
    let dist = rai_testkit::env::dist_dir();
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/dist:ro", dist.display()))
        .arg(rai_testkit::env::debian_image())
        .args(["bash", "-euo", "pipefail", "-c", script])
        .output()
        .expect("docker run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the script failed in the container:\n{text}"
    );
    let values = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (values, text)
}

#[test]
fn the_packages_install_verify_and_remove_cleanly_on_a_fresh_debian() {
    let dist = rai_testkit::env::dist_dir();
    let version = env!("CARGO_PKG_VERSION");
    let debs: Vec<String> = ["raid_", "rai_", "rai-admin_"]
        .iter()
        .map(|p| {
            let deb = one(&dist, p, "_amd64.deb");
            format!("/dist/{}", deb.file_name().unwrap().to_string_lossy())
        })
        .collect();
    let script = format!(
        r#"
dpkg -i {debs} >/tmp/dpkg.log 2>&1 || {{ cat /tmp/dpkg.log; exit 1; }}
echo "raid_version=$(raid --version)"
echo "rai_version=$(rai --version)"
echo "rai_version_cmd=$(rai version)"
echo "keygen_version=$(rai-keygen --version)"
echo "crypto_version=$(rai-crypto --version)"
echo "secret_len=$(rai-crypto gen-secret | tr -d '\n' | wc -c)"
echo "gateway_user=$(getent passwd rai-gateway | cut -d: -f6,7)"
for d in /etc/rai /var/lib/rai /var/lib/raid; do echo "dir $d=$(stat -c '%a %U %G' $d)"; done
units=$(dpkg -L raid | grep -E '/systemd/system/raid(-gateway)?\.service$' | sort | tr '\n' ' ')
echo "units=$units"
echo "enabled=$(systemctl is-enabled raid.service raid-gateway.service 2>/dev/null | tr '\n' ' ')"
# A worker has Docker, whose package brings docker.service; this minimal root has no Docker, so a stand-in unit of
# that name lets verify follow raid.service's Requires= as on a worker.
printf '[Unit]\nDescription=stand-in for Docker'"'"'s unit\n[Service]\nExecStart=/bin/true\n' >/etc/systemd/system/docker.service
if systemd-analyze verify $units >/tmp/verify.log 2>&1; then echo "verify=ok"; else echo "verify=failed"; cat /tmp/verify.log; fi
echo "verify_output=$(tr '\n' '|' </tmp/verify.log)"
echo "conffiles=$(dpkg-query --control-show raid conffiles | tr '\n' ' ')"
# The admin's own config, then remove: binaries go, every config stays.
echo 'raid: {{}}' >/etc/rai/config.yml
dpkg -r raid >/dev/null
echo "after_remove_binary=$(test -e /usr/bin/raid && echo present || echo gone)"
echo "after_remove_config=$(ls /etc/rai | sort | tr '\n' ' ')"
echo "after_remove_state=$(dpkg-query -W -f='${{db:Status-Abbrev}}' raid)"
echo "after_remove_user=$(getent passwd rai-gateway >/dev/null && echo present || echo gone)"
dpkg --purge raid >/dev/null
echo "after_purge_config=$(ls /etc/rai | sort | tr '\n' ' ')"
echo "after_purge_workdir=$(test -e /var/lib/raid && echo present || echo gone)"
echo "after_purge_store=$(test -e /var/lib/rai && echo present || echo gone)"
"#,
        debs = debs.join(" ")
    );
    let (v, text) = in_fresh_debian(&script);
    let get = |k: &str| {
        v.get(k)
            .unwrap_or_else(|| panic!("no {k}= line in:\n{text}"))
            .as_str()
    };
    let commit = head_commit();
    let long = format!("{version} (commit {commit})");
    let stale =
        "the packages were made at another commit: make them again with deploy/package.sh debs";
    assert_eq!(get("raid_version"), format!("raid {long}"), "{stale}");
    assert_eq!(get("rai_version"), format!("rai {long}"), "{stale}");
    assert_eq!(get("rai_version_cmd"), format!("rai {long}"));
    assert_eq!(get("keygen_version"), format!("rai-keygen {long}"));
    assert_eq!(get("crypto_version"), format!("rai-crypto {long}"));
    assert_eq!(
        get("secret_len"),
        "43",
        "a 32-byte secret in URL-safe base64"
    );
    assert_eq!(get("gateway_user"), "/var/lib/rai:/usr/sbin/nologin");
    assert_eq!(get("dir /etc/rai"), "750 root rai-gateway");
    assert_eq!(get("dir /var/lib/rai"), "770 root rai-gateway");
    assert_eq!(get("dir /var/lib/raid"), "700 root root");
    let units = get("units");
    assert!(
        units.contains("/raid.service") && units.contains("/raid-gateway.service"),
        "{units}"
    );
    // Installed, not enabled: each machine is a worker or a gateway, chosen by the admin.
    assert_eq!(get("enabled"), "disabled disabled");
    assert_eq!(get("verify"), "ok", "systemd-analyze verify:\n{text}");
    assert_eq!(get("verify_output"), "", "verify said something:\n{text}");
    let conffiles = get("conffiles");
    for f in [
        "/etc/rai/raid.example.yml",
        "/etc/rai/gateway.example.yml",
        "/etc/rai/raid.env.example",
    ] {
        assert!(conffiles.contains(f), "{f} is not a conffile: {conffiles}");
    }
    assert_eq!(get("after_remove_binary"), "gone");
    assert_eq!(
        get("after_remove_config"),
        "config.yml gateway.example.yml raid.env.example raid.example.yml"
    );
    assert_eq!(get("after_remove_state"), "rc", "removed, config kept");
    assert_eq!(get("after_remove_user"), "present");
    assert_eq!(
        get("after_purge_config"),
        "config.yml",
        "purge takes the package's files only"
    );
    assert_eq!(get("after_purge_workdir"), "gone");
    assert_eq!(
        get("after_purge_store"),
        "present",
        "a course's store is never purged"
    );
}

#[test]
fn the_static_client_runs_where_there_is_no_libc() {
    let dist = rai_testkit::env::dist_dir();
    let tarball = one(&dist, "rai-", "-x86_64-linux.tar.gz");
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    let line = sums
        .lines()
        .find(|l| l.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("{name} is not in SHA256SUMS:\n{sums}"));
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "-"])
        .current_dir(&dist)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{line}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(check.status.success(), "{name}'s checksum does not match");
    // The busybox image has no libc at all: only a static binary runs there.
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/dist:ro", dist.display()))
        .arg(rai_testkit::image())
        .args([
            "sh",
            "-c",
            &format!(
                "mkdir -p /tmp/x && tar -xzf /dist/{name} -C /tmp/x && /tmp/x/*/rai --version"
            ),
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        text.trim(),
        format!(
            "rai {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head_commit()
        ),
        "make the downloads again with deploy/package.sh downloads"
    );
}
