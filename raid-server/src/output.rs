//! Turning a job's raw output into events: split into lines, batched, capped.
//!
//! Output arrives in arbitrary chunks on two streams. Lines are kept whole and in order (a stdout line and a
//! stderr line never merge); consecutive lines of one stream travel in one event, and events go out in batches,
//! when 64 KiB are waiting or the oldest has waited 25 ms, so a chatty job costs a few Redis round trips a second
//! instead of one per line. Output after a quiet spell (no batch sent for 25 ms, such as a command's first line)
//! goes out at once: batching only ever delays lines that follow others closely. A line without a newline is sent once it is 16 KiB long or has waited 200 ms (a prompt,
//! a progress bar). Past the log cap, output is dropped with one notice and the job goes on; memory stays bounded
//! because nothing is ever held beyond one batch.

use std::time::{Duration, Instant};

use rai_backends::errors::EventError;
use rai_backends::events::JobPublisher;
use rai_common::event::EventBody;
use rai_common::units::Bytes;

use crate::sandbox::Stream;

const BATCH_BYTES: usize = 64 * 1024;
const BATCH_AGE: Duration = Duration::from_millis(25);
const PARTIAL_BYTES: usize = 16 * 1024;
const PARTIAL_AGE: Duration = Duration::from_millis(200);

/// Collects one job's output and publishes it.
pub struct OutputPump {
    publisher: JobPublisher,
    cap: u64,
    sent_bytes: u64,
    truncated: bool,
    pending: Vec<EventBody>,
    pending_bytes: usize,
    pending_since: Option<Instant>,
    /// When the last batch went out.
    flushed_at: Option<Instant>,
    partial: [(Vec<u8>, Option<Instant>); 2],
    /// Words that, seen in the output, earn the student a `✱` line after it (once each): an error whose cause is
    /// this worker's set-up, not the job (a profiler refused the GPU's counters).
    notices: Vec<Notice>,
}

/// A `✱` line sent once, after the first output line that holds `needle`.
struct Notice {
    needle: &'static str,
    text: String,
    sent: bool,
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl OutputPump {
    pub fn new(publisher: JobPublisher, cap: u64) -> Self {
        OutputPump {
            publisher,
            cap,
            sent_bytes: 0,
            truncated: false,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            flushed_at: None,
            partial: [(Vec::new(), None), (Vec::new(), None)],
            notices: Vec::new(),
        }
    }

    /// Sends `text` as a `✱` line after the first output line holding `needle`.
    pub fn notice_on(&mut self, needle: &'static str, text: String) {
        self.notices.push(Notice {
            needle,
            text,
            sent: false,
        });
    }

    /// The publisher, once the output is done.
    pub fn into_publisher(self) -> JobPublisher {
        self.publisher
    }

    /// Whether output was dropped at the cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Adds a chunk of output.
    pub async fn push(&mut self, stream: Stream, mut data: &[u8]) -> Result<(), EventError> {
        let i = index(stream);
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(pos) => {
                    let (line, rest) = data.split_at(pos + 1);
                    let mut whole = std::mem::take(&mut self.partial[i].0);
                    whole.extend_from_slice(line);
                    self.partial[i].1 = None;
                    self.emit(stream, &whole);
                    data = rest;
                }
                None => {
                    let p = &mut self.partial[i];
                    p.0.extend_from_slice(data);
                    p.1.get_or_insert_with(Instant::now);
                    if p.0.len() >= PARTIAL_BYTES {
                        let chunk = std::mem::take(&mut p.0);
                        p.1 = None;
                        self.emit(stream, &chunk);
                    }
                    data = &[];
                }
            }
        }
        let quiet = self.flushed_at.is_none_or(|t| t.elapsed() >= BATCH_AGE);
        if self.pending_bytes >= BATCH_BYTES || (quiet && !self.pending.is_empty()) {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what has waited long enough; call it every few milliseconds while a command runs.
    pub async fn tick(&mut self) -> Result<(), EventError> {
        for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if self.partial[i]
                .1
                .is_some_and(|t| t.elapsed() >= PARTIAL_AGE)
            {
                let chunk = std::mem::take(&mut self.partial[i].0);
                self.partial[i].1 = None;
                self.emit(stream, &chunk);
            }
        }
        if self.pending_since.is_some_and(|t| t.elapsed() >= BATCH_AGE) {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends everything, partial lines included (a command ended).
    pub async fn finish(&mut self) -> Result<(), EventError> {
        for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let chunk = std::mem::take(&mut self.partial[i].0);
            self.partial[i].1 = None;
            if !chunk.is_empty() {
                self.emit(stream, &chunk);
            }
        }
        self.flush().await
    }

    /// Sends a `✱` line from rai, after all output before it.
    pub async fn system(&mut self, text: &str) -> Result<(), EventError> {
        self.finish().await?;
        self.publisher
            .send(EventBody::System {
                data: format!("✱ {text}"),
            })
            .await?;
        Ok(())
    }

    /// Sends any event, after all output before it.
    pub async fn event(&mut self, body: EventBody) -> Result<(), EventError> {
        self.finish().await?;
        self.publisher.send(body).await?;
        Ok(())
    }

    fn emit(&mut self, stream: Stream, bytes: &[u8]) {
        if self.truncated || bytes.is_empty() {
            return;
        }
        if self.sent_bytes + bytes.len() as u64 > self.cap {
            self.truncated = true;
            self.pending.push(EventBody::System {
                data: format!(
                    "✱ The job's output passed the log limit of {}; the rest is not shown (the job goes on).",
                    Bytes(self.cap).human()
                ),
            });
            return;
        }
        self.sent_bytes += bytes.len() as u64;
        let text = String::from_utf8_lossy(bytes);
        let noticed: Vec<String> = self
            .notices
            .iter_mut()
            .filter(|n| !n.sent && text.contains(n.needle))
            .map(|n| {
                n.sent = true;
                format!("✱ {}", n.text)
            })
            .collect();
        self.pending_bytes += text.len();
        self.pending_since.get_or_insert_with(Instant::now);
        match (stream, self.pending.last_mut()) {
            (Stream::Stdout, Some(EventBody::Stdout { data }))
            | (Stream::Stderr, Some(EventBody::Stderr { data }))
                if data.len() < BATCH_BYTES =>
            {
                data.push_str(&text)
            }
            (Stream::Stdout, _) => self.pending.push(EventBody::Stdout {
                data: text.into_owned(),
            }),
            (Stream::Stderr, _) => self.pending.push(EventBody::Stderr {
                data: text.into_owned(),
            }),
        }
        self.pending
            .extend(noticed.into_iter().map(|data| EventBody::System { data }));
    }

    async fn flush(&mut self) -> Result<(), EventError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let metrics = crate::metrics::metrics();
        metrics.events.inc_by(batch.len() as u64);
        metrics.output_bytes.inc_by(self.pending_bytes as u64);
        self.pending_bytes = 0;
        self.pending_since = None;
        self.flushed_at = Some(Instant::now());
        self.publisher.publish(&batch).await?;
        Ok(())
    }
}
