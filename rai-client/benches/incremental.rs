//! Incremental uploads (issue 30), on the local stack over TLS, each figure beside today's archive upload measured
//! in the same run:
//!
//!     cargo bench -p rai-client --bench incremental      (stack up, release `raid` built; as root)
//!
//! The gateways' fs store is on a disk of its own ([`rai_testkit::disk`]), as a store shared by gateways and
//! workers on several hosts is; the workers' job folders and the project are on the machine's disk.
//!
//! The project: one 1 GiB incompressible data file, 2,000 sources of 100 KiB (about 205 MB, compressing about 3:1)
//! and a build file printing one line; its files an hour old, as a student's are. Student 0 sends chunks
//! (`client.chunked_uploads`), student 1 an archive, as today; each submits the same project, waits for its job, and
//! then each changes the same one source and submits again:
//! 1. first submit on loopback, from `rai`'s start to "posted to the queue" (chunked: describe, seal, send;
//!    archive: pack, upload), target <= 1.05x; the client's peak RSS on it (target <= 64 MiB);
//! 2. second submit on loopback, start to the job's first output line (target <= 1.0 s);
//! 3. the worker: /src ready for the second job (chunked: every file but the changed one linked from its cache;
//!    archive: fetch and unpack), from the worker's log (target <= 0.3 s);
//! 4. a third submit (one more source changed) from a student's host behind a 50 Mbit/s link with 20 ms added to
//!    every round trip ([`rai_testkit::uplink`]): start to the first output line (target <= 3 s) and the bytes the
//!    host sent over the link, headers included (target <= 1% of the archive's).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rai_testkit::bench::{header, row, secs};
use rai_testkit::stack::{Kind, Options, Stack, project};
use rai_testkit::uplink::Uplink;

const DATA_BYTES: usize = 1 << 30;
const SOURCES: usize = 2_000;
const SOURCE_BYTES: usize = 100 * 1024;
const CHUNKED: usize = 0;
const ARCHIVE: usize = 1;
/// A second student of each kind, so that each first submit is measured twice, in both orders.
const CHUNKED_2: usize = 2;
const ARCHIVE_2: usize = 3;

/// One `rai submit` as the student sees it.
struct Observed {
    /// When `rai` said it was uploading: the project was packed (archive) or described and sealed (chunks).
    uploading: Duration,
    posted: Duration,
    first_line: Duration,
    wall: Duration,
    /// Peak RSS (KiB), when run under GNU time.
    rss_kib: Option<u64>,
}

impl Observed {
    /// The mean of two submits (their peak RSS: the larger).
    fn mean(a: &Observed, b: &Observed) -> Observed {
        Observed {
            uploading: (a.uploading + b.uploading) / 2,
            posted: (a.posted + b.posted) / 2,
            first_line: (a.first_line + b.first_line) / 2,
            wall: (a.wall + b.wall) / 2,
            rss_kib: a.rss_kib.max(b.rss_kib),
        }
    }
}

/// Writes out what earlier submits and jobs left in the page cache, and lets the worker finish removing a job's
/// container and /src, so that the next submit is timed on a quiet machine.
fn quiesce() {
    Command::new("sync").status().expect("sync runs");
    std::thread::sleep(Duration::from_secs(3));
    Command::new("sync").status().expect("sync runs");
}

/// The gateway's time on batches of chunks, summed from its "took a batch of chunks" lines, which it writes only
/// with debug logging (`RAI_TEST_RAID_LOG=info,raid_gateway::projects=debug`).
#[derive(Default)]
struct Batches {
    count: usize,
    bytes: u64,
    received_ms: u64,
    checked_ms: u64,
    stored_ms: u64,
}

fn gateway_batches(stack: &Stack) -> Option<Batches> {
    let mut b = Batches::default();
    for line in stack.worker_logs().lines() {
        if !line.contains("took a batch of chunks") {
            continue;
        }
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        b.count += 1;
        b.bytes += field("bytes=");
        b.received_ms += field("received_ms=");
        // The log's checked and stored figures count from the batch's start and from its check's end.
        b.checked_ms += field("checked_ms=").saturating_sub(field("received_ms="));
        b.stored_ms += field("stored_ms=");
    }
    (b.count > 0).then_some(b)
}

/// Runs `cmd` (a `rai submit`, maybe under GNU time and in another host) to its end.
fn observe(mut cmd: Command) -> Observed {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("rai starts");
    let stderr = child.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let (mut uploading, mut posted, mut rss, mut text) = (None, None, None, String::new());
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if uploading.is_none() && line.contains("Uploading your project directory") {
                uploading = Some(start.elapsed());
            }
            if posted.is_none() && line.contains("posted to the queue") {
                posted = Some(start.elapsed());
            }
            if let Some(kib) = line.strip_prefix("peak-rss-kib ") {
                rss = kib.trim().parse().ok();
            }
            text.push_str(&line);
            text.push('\n');
        }
        (uploading, posted, rss, text)
    });
    let mut first_line = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        line.unwrap();
        first_line.get_or_insert(start.elapsed());
    }
    let status = child.wait().unwrap();
    let (uploading, posted, rss_kib, text) = reading.join().unwrap();
    assert!(status.success(), "rai submit failed:\n{text}");
    Observed {
        uploading: uploading.unwrap_or_else(|| panic!("never said it was uploading:\n{text}")),
        posted: posted.unwrap_or_else(|| panic!("never posted:\n{text}")),
        first_line: first_line.unwrap_or_else(|| panic!("no output line:\n{text}")),
        wall: start.elapsed(),
        rss_kib,
    }
}

/// `rai submit -p DIR` for `home`, on this machine or (through `via`) in the uplink's host; `timed` under GNU time.
fn submit(home: &Path, dir: &Path, via: Option<&Uplink>, timed: bool) -> Command {
    let rai = env!("CARGO_BIN_EXE_rai");
    let mut cmd = match (via, timed) {
        (Some(up), _) => up.command(rai),
        (None, true) => {
            let mut c = Command::new("/usr/bin/time");
            c.args(["-f", "peak-rss-kib %M", rai]);
            c
        }
        (None, false) => Command::new(rai),
    };
    cmd.args(["submit", "-p"])
        .arg(dir)
        .env("HOME", home)
        .env_remove("RAI_PROFILE")
        .env_remove("XDG_CACHE_HOME");
    cmd
}

/// The project: the data file, the sources (text-like, deterministic), all an hour old.
fn make_project() -> tempfile::TempDir {
    let dir = project(&["echo ready"], &[]);
    let root = dir.path();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data =
        std::io::BufWriter::new(std::fs::File::create(root.join("weights.bin")).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..DATA_BYTES / block.len() {
        for b in block.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            b.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        data.write_all(&block).unwrap();
    }
    data.into_inner().unwrap().sync_all().unwrap();
    let words: [&[u8]; 6] = [
        b"__global__ void k(float* a, int n) {\n",
        b"  int i = blockIdx.x * blockDim.x + threadIdx.x;\n",
        b"  if (i < n) a[i] = a[i] * 0.5f;\n",
        b"}\n",
        b"// tile ",
        b"for (int j = 0; j < n; ++j) ",
    ];
    for i in 0..SOURCES {
        let sub = root.join(format!("src/d{:02}", i % 40));
        std::fs::create_dir_all(&sub).unwrap();
        let mut text = Vec::with_capacity(SOURCE_BYTES + 64);
        while text.len() < SOURCE_BYTES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(4) {
                text.extend_from_slice(format!("{:x}\n", x).as_bytes());
            } else {
                text.extend_from_slice(words[(x >> 8) as usize % words.len()]);
            }
        }
        text.truncate(SOURCE_BYTES);
        std::fs::write(sub.join(format!("k{i:04}.cu")), text).unwrap();
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for entry in walk(root) {
        std::fs::File::options()
            .write(true)
            .open(&entry)
            .and_then(|f| f.set_modified(old))
            .unwrap();
    }
    dir
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            files.extend(walk(&e.path()));
        } else {
            files.push(e.path());
        }
    }
    files
}

/// One source edited, as a student does between two submits.
fn edit(root: &Path, round: u32) {
    let path = root.join("src/d07/k0007.cu");
    let mut text = std::fs::read(&path).unwrap();
    text.extend_from_slice(format!("// fixed the bound, try {round}\n").as_bytes());
    std::fs::write(path, text).unwrap();
}

/// The milliseconds the worker logged making /src for its last job of `how` (`manifest` or `archive`).
fn worker_ready_ms(stack: &Stack, how: &str) -> f64 {
    let logs = stack.worker_logs();
    let line = logs
        .lines()
        .rev()
        .find(|l| l.contains(&format!("made /src from the {how}")))
        .unwrap_or_else(|| panic!("the worker logged no /src from the {how}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ms= in {line}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let stack = Stack::start(
        Kind::Local,
        Options {
            users: 4,
            concurrency: 1,
            raid_extra: "  limits:\n    upload_bytes: 2g\n",
            client_extra: "  max_upload: 2g\n  chunked_uploads: true\n",
            // The store on a disk of its own, as a store shared by mount is: not on the filesystem where the
            // worker has just removed the last job's /src (see rai_testkit::disk).
            store_disk: Some(8 << 30),
            ..Options::default()
        },
    )
    .await;
    // Students 1 and 3 send archives, as every client did before issue 30.
    for student in [ARCHIVE, ARCHIVE_2] {
        let config = stack.home(student).join(".rai_config.yml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("chunked_uploads: true", "chunked_uploads: false"),
        )
        .unwrap();
    }
    let port: u16 = stack.gateways[0]
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the gateway's port");
    let project = make_project();
    let dir = project.path();
    let total: u64 = walk(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "incremental uploads: a project of {:.2} GB ({} files), local stack over TLS",
        total as f64 / 1e9,
        SOURCES + 2
    );

    // 1. First submits, each from a quiet machine (the one before it and its job written out to disk, so that no
    // submit pays for another's writeback), in the order archive, chunked, chunked, archive (so that neither kind
    // has the other's place); all read a warm page cache: the files were just written.
    let mut first = Vec::new();
    for student in [ARCHIVE, CHUNKED, CHUNKED_2, ARCHIVE_2] {
        quiesce();
        first.push(observe(submit(stack.home(student), dir, None, true)));
    }
    let batches = gateway_batches(&stack);
    let first_archive = Observed::mean(&first[0], &first[3]);
    let first_chunked = Observed::mean(&first[1], &first[2]);
    quiesce();
    // 2 and 3. One source changed.
    edit(dir, 1);
    let second_archive = observe(submit(stack.home(ARCHIVE), dir, None, false));
    let ready_archive = worker_ready_ms(&stack, "archive");
    let second_chunked = observe(submit(stack.home(CHUNKED), dir, None, false));
    let ready_chunked = worker_ready_ms(&stack, "manifest");
    // 4. Another, from a host behind the uplink.
    edit(dir, 2);
    let uplink = Uplink::new(50, Duration::from_millis(20), port);
    let before = uplink.sent();
    let slow_chunked = observe(submit(stack.home(CHUNKED), dir, Some(&uplink), false));
    let sent_chunked = uplink.sent() - before;
    let before = uplink.sent();
    let slow_archive = observe(submit(stack.home(ARCHIVE), dir, Some(&uplink), false));
    let sent_archive = uplink.sent() - before;
    drop(uplink);

    header("chunked", "archive");
    let ratio = secs(first_chunked.posted) / secs(first_archive.posted);
    row(
        "incremental: first submit, loopback, start -> posted, mean of 2 (ref: archive pack+upload)",
        format!("{:.2} s", secs(first_chunked.posted)),
        format!("{:.2} s", secs(first_archive.posted)),
        Some(ratio),
        "<= 1.05",
        Some(ratio <= 1.05),
    );
    let (rss, rss_ref) = (
        first_chunked.rss_kib.expect("GNU time's figure"),
        first_archive.rss_kib.expect("GNU time's figure"),
    );
    row(
        "incremental: client peak RSS on the first submit (ref: archive)",
        format!("{:.1} MiB", rss as f64 / 1024.0),
        format!("{:.1} MiB", rss_ref as f64 / 1024.0),
        Some(rss as f64 / rss_ref as f64),
        "<= 64 MiB",
        Some(rss <= 64 * 1024),
    );
    row(
        "incremental: second submit, loopback, start -> first output line (ref: archive)",
        format!("{:.3} s", secs(second_chunked.first_line)),
        format!("{:.3} s", secs(second_archive.first_line)),
        Some(secs(second_chunked.first_line) / secs(second_archive.first_line)),
        "<= 1.0 s",
        Some(secs(second_chunked.first_line) <= 1.0),
    );
    row(
        "incremental: worker, /src ready, 1.2 GB cached (ref: archive fetch+unpack)",
        format!("{:.3} s", ready_chunked / 1e3),
        format!("{:.3} s", ready_archive / 1e3),
        Some(ready_chunked / ready_archive),
        "<= 0.3 s",
        Some(ready_chunked <= 300.0),
    );
    row(
        "incremental: over 50 Mbit/s + 20 ms, start -> first output line (ref: archive)",
        format!("{:.2} s", secs(slow_chunked.first_line)),
        format!("{:.2} s", secs(slow_archive.first_line)),
        Some(secs(slow_chunked.first_line) / secs(slow_archive.first_line)),
        "<= 3 s",
        Some(secs(slow_chunked.first_line) <= 3.0),
    );
    let sent_ratio = sent_chunked as f64 / sent_archive as f64;
    row(
        "incremental: bytes the student's host sent for a changed submit (ref: archive)",
        format!("{:.2} MB", sent_chunked as f64 / 1e6),
        format!("{:.1} MB", sent_archive as f64 / 1e6),
        Some(sent_ratio),
        "<= 1%",
        Some(sent_ratio <= 0.01),
    );
    println!(
        "(first submits, mean of two each: start -> uploading {:.2} / {:.2} s, uploading -> posted {:.2} / {:.2} s; \
         start -> posted in the order run: archive {:.2}, chunked {:.2}, chunked {:.2}, archive {:.2} s)",
        secs(first_chunked.uploading),
        secs(first_archive.uploading),
        secs(first_chunked.posted - first_chunked.uploading),
        secs(first_archive.posted - first_archive.uploading),
        secs(first[0].posted),
        secs(first[1].posted),
        secs(first[2].posted),
        secs(first[3].posted),
    );
    if let Some(b) = batches {
        println!(
            "(the gateway's batches of the chunked first submits, from its debug log: {} batches, {:.1} MB; summed \
             over batches (four at once): received {:.2} s, checked {:.2} s, stored {:.2} s)",
            b.count,
            b.bytes as f64 / 1e6,
            b.received_ms as f64 / 1e3,
            b.checked_ms as f64 / 1e3,
            b.stored_ms as f64 / 1e3
        );
    }
    println!(
        "(walls: first {:.1} / {:.1} s, second {:.2} / {:.2} s, over the uplink {:.2} / {:.1} s)",
        secs(first_chunked.wall),
        secs(first_archive.wall),
        secs(second_chunked.wall),
        secs(second_archive.wall),
        secs(slow_chunked.wall),
        secs(slow_archive.wall)
    );
}
