//! The services `deploy/local/test.sh` promises are really there: Redis answers PING, moto answers HTTP, and the
//! Docker engine has the test image and runs it. Later suites build on these; this one says first and clearly when
//! the stack is broken.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn redis_answers() {
    let reply = exchange(&host_port(&rai_testkit::redis_url()), b"PING\r\n");
    assert_eq!(reply, "+PONG\r\n");
    let out = Command::new(rai_testkit::redis_server())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Redis server"));
}

#[test]
fn moto_answers() {
    let addr = host_port(&rai_testkit::aws_endpoint());
    let reply = exchange(
        &addr,
        format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
}

#[test]
fn docker_runs_the_test_image_without_network() {
    let image = rai_testkit::image();
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "/bin/sh",
            "-c",
            "echo hello from $(uname -s)",
        ])
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from Linux\n");
}
