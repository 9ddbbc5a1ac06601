//! A job allowed the network (`raid.limits.network`) runs on the job network: it cannot reach the worker's host
//! (a listener there stands for Redis, a gateway, any host port) nor the metadata service.
//!
//! A container on Docker's default bridge tries the same listener first, as a control, and the test prints what it
//! saw: where the host's netfilter is in force (a real worker) the control reaches the listener and the job's
//! refusals are the rules' doing. On the development machine this project runs on, no container reaches a host
//! port even on the default bridge (its network stack does not route container traffic to the host; the rules are
//! installed but see no packets), so there the test shows the rules installed and the job kept off, not which
//! layer kept it off.

use std::io::Write;
use std::time::Duration;

use crate::harness::Harness;
use rai_testkit::jobs::{end, text};

/// A listener on every address of this host that answers "reached"; its port.
fn host_listener() -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nreached\n");
        }
    });
    port
}

/// This host's addresses a container could aim at (docker0's, the job network's gateway, the machine's own).
async fn host_addresses(h: &Harness) -> Vec<String> {
    let mut out = vec!["172.17.0.1".to_string()];
    let net = h
        .ctx
        .docker
        .inspect_network(&h.config.raid.job_network.name, None)
        .await
        .unwrap();
    for c in net.ipam.and_then(|i| i.config).unwrap_or_default() {
        if let Some(g) = c.gateway {
            out.push(g);
        }
    }
    let hostname = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    out.extend(
        String::from_utf8_lossy(&hostname.stdout)
            .split_whitespace()
            .filter(|a| !a.contains(':'))
            .map(str::to_string),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_the_network_cannot_reach_the_host_or_the_metadata_service() {
    let port = host_listener();
    // The listener is reachable from a container on Docker's default bridge: the refusals below are the rules'.
    let control = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            &rai_testkit::image(),
            "wget",
            "-q",
            "-T",
            "5",
            "-O-",
        ])
        .arg(format!("http://172.17.0.1:{port}/"))
        .output()
        .unwrap();
    let control_reached = String::from_utf8_lossy(&control.stdout) == "reached\n";
    println!(
        "control: a container on the default bridge reached the host listener: {control_reached}"
    );
    let h = Harness::start(|c| c.raid.limits.network = true).await;
    let network = raid::sandbox::network::JobNetwork::new(&h.config.raid.job_network).unwrap();
    assert_eq!(network.missing_rules(), Vec::<String>::new());
    // The network raid made: IPv4 only (fd00:ec2::254 and all IPv6 unreachable), no traffic between jobs.
    let made = h
        .ctx
        .docker
        .inspect_network(&network.name, None)
        .await
        .unwrap();
    assert_eq!(made.enable_ipv6, Some(false));
    assert_eq!(
        made.options.unwrap_or_default()["com.docker.network.bridge.enable_icc"],
        "false"
    );
    let targets: Vec<String> = host_addresses(&h)
        .await
        .into_iter()
        .map(|a| format!("{a}:{port}"))
        .chain(["169.254.169.254:80".to_string()])
        .collect();
    let command = format!(
        "for a in {}; do if wget -q -T 3 -O- http://$a/ 2>/dev/null; then echo open $a; else echo closed $a; fi; done",
        targets.join(" ")
    );
    let job = h.submit(&[&command], "time: 60s, network: true", &[]).await;
    let events = h.events(job, Duration::from_secs(90)).await;
    let out = text(&events, "stdout");
    assert_eq!(end(&events).0, "succeeded", "{events:?}");
    let expected: String = targets.iter().map(|t| format!("closed {t}\n")).collect();
    assert_eq!(
        out, expected,
        "a job reached the host or the metadata address"
    );
}
