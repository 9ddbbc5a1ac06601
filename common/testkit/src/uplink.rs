//! A student at home: a host (a network namespace) behind a slow campus uplink to this machine, for the
//! benchmarks that ask what a submit costs over one (issue 30: 50 Mbit/s, 20 ms).
//!
//! The host hangs off one veth pair whose both ends are held to a rate by `tbf` (the test machines' kernels have no
//! `netem`, so the delay is added in user space): a loopback port inside the host leads, through a forwarder there,
//! over the link, to a forwarder on this machine's end, which holds every piece of data for half the round trip in
//! each direction before passing it on to the same port on this machine's loopback. A `rai` run in the host
//! ([`Uplink::command`]) with the stack's own config (`https://127.0.0.1:PORT`, the certificate's name) reaches
//! the gateway through the link; what crossed it is counted by the kernel on the link ([`Uplink::sent`]).
//! Everything is removed when the `Uplink` is dropped. Needs root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::run;

/// A host behind a shaped link, its loopback `port` forwarded to this machine's.
pub struct Uplink {
    netns: String,
    near_dev: String,
    stop: Arc<AtomicBool>,
}

impl Uplink {
    /// A new host whose link carries `mbit` each way with `rtt` added to every round trip, and whose loopback
    /// `port` leads to `127.0.0.1:port` here.
    pub fn new(mbit: u32, rtt: Duration, port: u16) -> Uplink {
        let id = rai_common::JobId::new().to_string().to_ascii_lowercase();
        let tag = format!("u{}", &id[id.len() - 5..]);
        let (netns, near_dev) = (format!("{tag}-home"), format!("{tag}n"));
        // A /30 of its own in 10.98.0.0/16, picked from the tag, so that two uplinks rarely share one.
        let pick = id
            .bytes()
            .fold(0u16, |a, b| a.wrapping_mul(31).wrapping_add(b as u16))
            % 16_000;
        let (near, far) = (
            Ipv4Addr::new(10, 98, (pick / 62) as u8, (pick % 62 * 4 + 1) as u8),
            Ipv4Addr::new(10, 98, (pick / 62) as u8, (pick % 62 * 4 + 2) as u8),
        );
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &[
                "link", "add", &near_dev, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        );
        let rate = format!("{mbit}mbit");
        let shape = |prefix: &[&str], dev: &str| {
            let mut args: Vec<&str> = prefix.to_vec();
            args.extend([
                "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", "64kb",
                "latency", "100ms",
            ]);
            run(args[0], &args[1..]);
        };
        run(
            "ip",
            &["addr", "add", &format!("{near}/30"), "dev", &near_dev],
        );
        run("ip", &["link", "set", &near_dev, "up"]);
        shape(&["ip", "netns", "exec", &netns], "eth0");
        shape(&[], &near_dev);
        let in_host = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        in_host(&["addr", "add", &format!("{far}/30"), "dev", "eth0"]);
        in_host(&["link", "set", "eth0", "up"]);
        in_host(&["link", "set", "lo", "up"]);

        let stop = Arc::new(AtomicBool::new(false));
        // This machine's end: from the link, delayed, to loopback.
        let near_listener = TcpListener::bind(SocketAddr::from((near, port)))
            .expect("the near end of the uplink listens");
        let half = rtt / 2;
        serve(
            near_listener,
            stop.clone(),
            move || TcpStream::connect(("127.0.0.1", port)),
            half,
        );
        // The host's end: its loopback port, to the near end over the link. The listener is made inside the host's
        // namespace by a thread that moves there first (sockets belong to the namespace they were made in).
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns_path, stop_far) = (format!("/var/run/netns/{netns}"), stop.clone());
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&ns_path).expect("the host's namespace");
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the host");
            let listener = TcpListener::bind(("127.0.0.1", port)).expect("the host's end listens");
            ready_tx.send(()).unwrap();
            // Threads made from here are in the host's namespace too, so connections go over the link.
            serve(
                listener,
                stop_far,
                move || TcpStream::connect((near, port)),
                Duration::ZERO,
            );
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the host's end of the uplink started");
        Uplink {
            netns,
            near_dev,
            stop,
        }
    }

    /// `program` to run in the host.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// Bytes the host has sent over the link so far (every header counted, as the kernel counts them).
    pub fn sent(&self) -> u64 {
        self.counter("rx_bytes")
    }

    /// Bytes the host has received over the link so far.
    pub fn received(&self) -> u64 {
        self.counter("tx_bytes")
    }

    fn counter(&self, name: &str) -> u64 {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/statistics/{name}",
            self.near_dev
        ))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} counter on {}", self.near_dev))
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        let _ = Command::new("ip")
            .args(["link", "del", &self.near_dev])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// Accepts on `listener` until `stop`, joining each connection to a new one from `connect`, data held `delay` in
/// each direction.
fn serve(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    connect: impl Fn() -> std::io::Result<TcpStream> + Send + 'static,
    delay: Duration,
) {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((inbound, _)) => {
                    let _ = inbound.set_nonblocking(false);
                    let Ok(outbound) = connect() else { continue };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    let (a, b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                    pipe(inbound, outbound, delay);
                    pipe(b, a, delay);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

/// Copies `from` to `to`, each piece written `delay` after it was read (a delay line, so the rate is kept), then
/// closes `to`'s writing half.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    // Bounded, so a fast sender waits for a slow link rather than filling memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(256);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, data) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&data).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
