//! Hosts apart: network namespaces that stand in for separate machines on one network (issue 26).
//!
//! A [`Lan`] is a switch (a namespace holding a bridge) and hosts plugged into it, each a namespace of its own with
//! one veth link (`eth0`, an address on `10.99.0.0/24`) and its own loopback, routes and firewall. Processes run in
//! a host with [`Lan::command`] (`ip netns exec`); they share this machine's files and Docker socket, as workers
//! reach their engine by path. A host's link can be captured from the switch's side ([`Lan::capture`], Debian's
//! tcpdump) and cut ([`Lan::cut`]). Every name is unique to the `Lan`, and everything is removed when it is dropped.
//! Needs root, like the rest of the test stack.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::run;

/// One host on a [`Lan`].
#[derive(Debug, Clone)]
pub struct Host {
    /// Its namespace.
    pub netns: String,
    pub addr: Ipv4Addr,
    /// Its link's end in the switch (what [`Lan::capture`] listens on).
    switch_end: String,
}

/// A switch and the hosts plugged into it.
pub struct Lan {
    tag: String,
    switch: String,
    hosts: Vec<Host>,
    children: Vec<Child>,
}

/// A packet capture of one link, running until [`Capture::stop`].
pub struct Capture {
    child: Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lan {
    /// A new switch with no hosts yet.
    pub fn new() -> Lan {
        // Interface names are at most 15 characters: a short tag of this Lan's own.
        let id = rai_common::JobId::new().to_string().to_ascii_lowercase();
        let tag = format!("r{}", &id[id.len() - 5..]);
        let switch = format!("{tag}-switch");
        run("ip", &["netns", "add", &switch]);
        let lan = Lan {
            tag,
            switch,
            hosts: Vec::new(),
            children: Vec::new(),
        };
        lan.in_switch(&["link", "add", "br0", "type", "bridge"]);
        lan.in_switch(&["link", "set", "br0", "up"]);
        lan
    }

    fn in_switch(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.switch, "ip"];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Plugs in a new host called `role` (`redis`, `gw1`, `student`); returns it.
    pub fn host(&mut self, role: &str) -> Host {
        let i = self.hosts.len();
        let netns = format!("{}-{role}", self.tag);
        let addr = Ipv4Addr::new(10, 99, 0, 10 + i as u8);
        let (inner, outer) = (format!("{}h{i}", self.tag), format!("{}s{i}", self.tag));
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &[
                "link",
                "add",
                &inner,
                "netns",
                &netns,
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "netns",
                &self.switch,
            ],
        );
        self.in_switch(&["link", "set", &outer, "master", "br0"]);
        self.in_switch(&["link", "set", &outer, "up"]);
        let in_host = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        in_host(&["link", "set", &inner, "name", "eth0"]);
        in_host(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        in_host(&["link", "set", "eth0", "up"]);
        in_host(&["link", "set", "lo", "up"]);
        let host = Host {
            netns,
            addr,
            switch_end: outer,
        };
        self.hosts.push(host.clone());
        host
    }

    /// `program` to run inside `host`.
    pub fn command(&self, host: &Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.netns]).arg(program);
        cmd
    }

    /// Starts `command` and stops it (kill) when the Lan is dropped.
    pub fn keep(&mut self, mut command: Command) -> &mut Child {
        let child = command.spawn().expect("a process starts in its host");
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    /// Runs `iptables ARGS` inside `host`.
    pub fn iptables(&self, host: &Host, args: &[&str]) {
        let mut all = vec!["netns", "exec", &host.netns, "iptables", "-w"];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Whether a TCP connection from `from` to `to:port` opens within two seconds.
    pub fn reaches(&self, from: &Host, to: Ipv4Addr, port: u16) -> bool {
        self.command(from, "timeout")
            .args(["2", "bash", "-c", &format!("echo > /dev/tcp/{to}/{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits up to `within` for something to listen on `to:port`, tried from `from`.
    pub fn wait_for(&self, from: &Host, to: Ipv4Addr, port: u16, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.reaches(from, to, port) {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing listens on {to}:{port} after {within:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Starts capturing every packet on `host`'s link (from the switch's side, so the host cannot hide any).
    pub fn capture(&mut self, host: &Host) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{}.pcap", host.netns));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.switch,
                "tcpdump",
                "-U",
                "-n",
                "-s",
                "0",
                "-i",
            ])
            .arg(&host.switch_end)
            .arg("-w")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts (Debian's tcpdump; deploy/local/lib.sh installs it)");
        // tcpdump says "listening on ..." once it captures.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !file.exists() || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "tcpdump did not start on {}",
                host.netns
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Capture {
            child,
            file,
            _dir: dir,
        }
    }

    /// Cuts `host`'s link, as a cable pulled or a machine that lost its network.
    pub fn cut(&self, host: &Host) {
        self.in_switch(&["link", "set", &host.switch_end, "down"]);
    }
}

impl Default for Lan {
    fn default() -> Self {
        Lan::new()
    }
}

impl Capture {
    /// Stops the capture; every byte that crossed the link (the pcap file's contents).
    pub fn stop(mut self) -> Vec<u8> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap()
    }

    /// Where the capture is written.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for host in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &host.netns])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
