//! The catalogue's chunked-project cases (issue 30): declarations and chunks a hostile student sends the gateway
//! with a valid signature, by hand ([`crate::signed`]), past every check `rai` makes. Each is refused with a message
//! that says what is wrong, and nothing is stored: no manifest under the job, no chunk under the student. One more
//! case checks that a batch signed as clients before `api::BATCH_INDEX` sign one is still taken.

use rai_backends::store::ObjectStore;
use rai_common::JobId;
use rai_common::api::{self, ProjectPlan, ProjectRequest};
use rai_common::objects::manifest_key;
use rai_common::project::batch::{self, Batch};
use rai_common::project::{
    ChunkId, ChunkRef, Entry, EntryKind, LocalIndex, MANIFEST_VERSION, Manifest, describe, seal,
};

use reqwest::Method;

use super::harness::Harness;
use super::{HostileCase, case};
use crate::signed::{Answer, SignedHttp};

/// Declares `manifest` as `job`'s project: the plan, or what the refusal said.
async fn declare_as(
    student: &SignedHttp,
    job: JobId,
    manifest: &Manifest,
) -> Result<ProjectPlan, String> {
    let request = ProjectRequest {
        job,
        manifest: manifest.clone(),
        datasets: Vec::new(),
    };
    let answer = student.json(Method::POST, api::PROJECTS, &request).await;
    if answer.status.is_success() {
        Ok(answer.json())
    } else {
        Err(answer.said())
    }
}

/// A file entry of one chunk.
fn file(path: &str, size: u64, chunk: ChunkRef) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            executable: false,
            size,
            chunks: vec![chunk],
        },
    }
}

/// Two one-chunk files, each `(path, bytes)`, in one manifest.
fn holding_two(a: (&str, &[u8]), b: (&str, &[u8])) -> (Manifest, ChunkRef, ChunkRef) {
    let (mut manifest, first) = holding(a.0, a.1);
    let (other, second) = holding(b.0, b.1);
    manifest.entries.extend(other.entries);
    (manifest, first, second)
}

/// The one-chunk file `path` holding `bytes`.
fn holding(path: &str, bytes: &[u8]) -> (Manifest, ChunkRef) {
    let chunk = ChunkRef {
        id: ChunkId::of(bytes),
        size: bytes.len() as u64,
    };
    (Manifest::new(vec![file(path, chunk.size, chunk)]), chunk)
}

impl Harness {
    /// Student `user` declares `manifest` for a new job; what the gateway answered, and whether a manifest was
    /// stored.
    async fn declare(&self, user: usize, manifest: &Manifest) -> (String, bool) {
        let job = JobId::new();
        let answer = match declare_as(&self.stack.signed(user), job, manifest).await {
            Ok(plan) => format!("accepted ({} missing)", plan.missing.len()),
            Err(said) => said,
        };
        let stored = self
            .store
            .head(&manifest_key(&self.user(user), &job))
            .await
            .unwrap()
            .is_some();
        (answer, stored)
    }

    /// Whether student `user`'s part of the store holds chunk `id`.
    async fn holds_chunk(&self, user: usize, id: &ChunkId) -> bool {
        let key = rai_common::objects::chunk_key(&self.user(user), id);
        self.store.head(&key).await.unwrap().is_some()
    }

    /// Declares the one-chunk file `path` holding `bytes` and sends that chunk tied as `tie`; the gateway's answer,
    /// and whether the chunk was stored.
    async fn send_file(&self, user: usize, path: &str, bytes: &[u8], tie: Tie) -> (String, bool) {
        let (manifest, chunk) = holding(path, bytes);
        let answer = self
            .send_tied(user, &manifest, &[(chunk, seal(bytes))], tie)
            .await;
        (answer, self.holds_chunk(user, &chunk.id).await)
    }

    /// Whether student `user`'s part of the store holds any of `chunks`.
    async fn holds_any(&self, user: usize, chunks: &[ChunkRef]) -> bool {
        for chunk in chunks {
            if self.holds_chunk(user, &chunk.id).await {
                return true;
            }
        }
        false
    }

    /// Declares `manifest` and sends `chunks` (each as `sealed` bytes under its id) in one batch signed as `rai`
    /// signs one; the gateway's answer to the batch.
    async fn send_as(
        &self,
        user: usize,
        manifest: &Manifest,
        chunks: &[(ChunkRef, Vec<u8>)],
    ) -> String {
        self.send_tied(user, manifest, chunks, Tie::Index).await
    }

    /// [`Self::send_as`], the batch tied to its signature as `tie` says.
    async fn send_tied(
        &self,
        user: usize,
        manifest: &Manifest,
        chunks: &[(ChunkRef, Vec<u8>)],
        tie: Tie,
    ) -> String {
        let student = self.stack.signed(user);
        let job = JobId::new();
        if let Err(said) = declare_as(&student, job, manifest).await {
            return format!("declaration refused: {said}");
        }
        let batch = batch_of(chunks);
        let path = api::PROJECT_CHUNKS.path(job);
        let answer: Answer = match tie {
            Tie::Index => {
                let (body, index) = batch.into_signed_body();
                student.batch(&path, body, index).await
            }
            Tie::IndexOf(other) => {
                let (_, index) = batch_of(&other).into_signed_body();
                student.batch(&path, batch.into_body(), index).await
            }
            Tie::WholeBody { changed } => {
                let body = batch.into_body();
                if changed {
                    // Signed as sent, then a byte of the last chunk changed on the way, and an index of the
                    // changed body's frames added, unsigned (the gateway must not take it for a signed one).
                    let mut request_body = body.clone();
                    let last = request_body.len() - 1;
                    request_body[last] ^= 1;
                    let frames = batch::frames(&request_body).unwrap();
                    let index = batch::index_digest(&request_body, &frames);
                    let unsigned = [(api::BATCH_INDEX, index)];
                    student
                        .bytes_signed_for(&path, &body, request_body, &unsigned)
                        .await
                } else {
                    student.bytes(Method::PUT, &path, body).await
                }
            }
        };
        if answer.status.is_success() {
            "the batch was taken".into()
        } else {
            answer.said()
        }
    }
}

/// How a batch is tied to its signature.
enum Tie {
    /// By its frames' index (`api::BATCH_INDEX`), as `rai` sends it.
    Index,
    /// By the index of another batch's frames.
    IndexOf(Vec<(ChunkRef, Vec<u8>)>),
    /// By its whole `Content-Digest`, as clients before the index sent it; `changed`: a byte of it changed after it
    /// was signed.
    WholeBody { changed: bool },
}

/// `chunks` framed as one batch.
fn batch_of(chunks: &[(ChunkRef, Vec<u8>)]) -> Batch {
    let mut batch = Batch::default();
    for (chunk, sealed) in chunks {
        batch.push(chunk.id, chunk.size, sealed);
    }
    batch
}

fn said(answer: &str, words: &str, stored: bool) -> (String, bool) {
    let ok = answer.contains(words) && !stored;
    let mut observed = answer.to_string();
    if stored {
        observed.push_str(" [something was stored]");
    }
    (observed, ok)
}

pub(super) fn cases() -> Vec<HostileCase> {
    vec![
        case(
            "project",
            "manifest path traversal",
            "refused: cannot be written, nothing stored",
            move |c| {
                Box::pin(async move {
                    let (mut manifest, _) = holding("x", b"x");
                    manifest.entries[0].path = "../../etc/cron.d/rai".into();
                    let (answer, stored) = c.declare(0, &manifest).await;
                    said(&answer, "cannot be written", stored)
                })
            },
        ),
        case(
            "project",
            "manifest of a million entries",
            "refused at the entry past the most, nothing stored",
            move |c| {
                Box::pin(async move {
                    let manifest = Manifest {
                        version: MANIFEST_VERSION,
                        entries: (0..1_000_000)
                            .map(|i| Entry {
                                path: format!("d{i:07}"),
                                kind: EntryKind::Dir,
                            })
                            .collect(),
                    };
                    let (answer, stored) = c.declare(0, &manifest).await;
                    said(&answer, "more than 200000 entries", stored)
                })
            },
        ),
        case(
            "project",
            "chunk sizes that do not add up",
            "refused: names the sum, nothing stored",
            move |c| {
                Box::pin(async move {
                    let (mut manifest, chunk) = holding("main.c", b"int");
                    manifest.entries[0] = file("main.c", 10, chunk);
                    let (answer, stored) = c.declare(0, &manifest).await;
                    said(&answer, "its chunks add up to 3", stored)
                })
            },
        ),
        case(
            "project",
            "manifest naming another student's chunks",
            "every chunk answered missing; cannot complete",
            move |c| {
                Box::pin(async move {
                    // Student 0 submits a project with `rai` (chunked, the default); student 2 names its chunks without
                    // having them.
                    let dir = tempfile::tempdir().unwrap();
                    std::fs::write(
                        dir.path().join("rai_build.yml"),
                        crate::jobs::build_file(&["echo hi"], "time: 20s"),
                    )
                    .unwrap();
                    std::fs::write(
                        dir.path().join("secret.cu"),
                        b"__global__ void answer() {}\n",
                    )
                    .unwrap();
                    let (scanned, _) =
                        rai_common::archive::scan(dir.path(), &Default::default()).unwrap();
                    let manifest = describe(dir.path(), &scanned, &mut LocalIndex::default())
                        .unwrap()
                        .manifest;
                    let sent = c
                        .stack
                        .rai(0, &["submit", "-p", dir.path().to_str().unwrap()])
                        .await;
                    if !sent.status.success() {
                        let said = crate::stack::text(&sent.stderr);
                        return (format!("student 0 could not submit: {said}"), false);
                    }
                    let student = c.stack.signed(2);
                    let plan = match declare_as(&student, JobId::new(), &manifest).await {
                        Ok(plan) => plan,
                        Err(said) => return (format!("declaration refused: {said}"), false),
                    };
                    let all_missing = plan.missing.len() == manifest.chunk_ids().len();
                    let completed = student
                        .json(Method::POST, &plan.complete, &serde_json::json!({}))
                        .await;
                    let id = manifest.distinct_chunks()[0].id;
                    let stolen = c.holds_chunk(2, &id).await;
                    let observed = format!(
                        "{} of {} missing; complete: {}",
                        plan.missing.len(),
                        manifest.chunk_ids().len(),
                        completed.said()
                    );
                    let ok = all_missing
                        && !completed.status.is_success()
                        && completed.said().contains("did not arrive")
                        && !stolen;
                    (observed, ok)
                })
            },
        ),
        case(
            "project",
            "chunk whose content does not match its id",
            "refused: holds other bytes, not stored",
            move |c| {
                Box::pin(async move {
                    let (manifest, chunk) = holding("main.c", b"int main;");
                    let answer = c
                        .send_as(0, &manifest, &[(chunk, seal(b"int evil;"))])
                        .await;
                    let stored = c.holds_chunk(0, &chunk.id).await;
                    said(&answer, "holds other bytes", stored)
                })
            },
        ),
        case(
            "project",
            "chunk bomb (1 KiB declared, 64 MiB inside)",
            "refused: a compression bomb, not stored",
            move |c| {
                Box::pin(async move {
                    let (manifest, chunk) = holding("zeros", &[0u8; 1024]);
                    let bomb = seal(&vec![0u8; 64 << 20]);
                    let answer = c.send_as(0, &manifest, &[(chunk, bomb)]).await;
                    let stored = c.holds_chunk(0, &chunk.id).await;
                    said(&answer, "compression bomb", stored)
                })
            },
        ),
        case(
            "project",
            "batch of a good chunk and a forged one",
            "refused: the forged one holds other bytes, neither stored",
            move |c| {
                Box::pin(async move {
                    let (good, forged) = (b"int good;".as_slice(), b"int main;".as_slice());
                    let (manifest, good_chunk, forged_chunk) =
                        holding_two(("good.c", good), ("main.c", forged));
                    let answer = c
                        .send_as(
                            0,
                            &manifest,
                            &[(good_chunk, seal(good)), (forged_chunk, seal(b"int evil;"))],
                        )
                        .await;
                    let stored = c.holds_any(0, &[good_chunk, forged_chunk]).await;
                    said(&answer, "holds other bytes", stored)
                })
            },
        ),
        case(
            "project",
            "batch whose chunks are not the ones its signature names",
            "refused: does not match its signed index, not stored",
            move |c| {
                Box::pin(async move {
                    // Student 2 (student 0's pending uploads are at their cap by now). Both chunks are the job's to
                    // send; the signature names one, the body carries the other.
                    let (named, sent) = (b"int named;".as_slice(), b"int sent;".as_slice());
                    let (manifest, named_chunk, sent_chunk) =
                        holding_two(("named.c", named), ("sent.c", sent));
                    let tie = Tie::IndexOf(vec![(named_chunk, seal(named))]);
                    let answer = c
                        .send_tied(2, &manifest, &[(sent_chunk, seal(sent))], tie)
                        .await;
                    let stored = c.holds_any(2, &[sent_chunk, named_chunk]).await;
                    said(&answer, "does not match its signed index of chunks", stored)
                })
            },
        ),
        case(
            "project",
            "batch of an older client changed after it was signed, an unsigned index beside it",
            "refused: does not match its signed Content-Digest, not stored",
            move |c| {
                Box::pin(async move {
                    let tie = Tie::WholeBody { changed: true };
                    let (answer, stored) = c.send_file(2, "main.c", b"int main;", tie).await;
                    said(&answer, "does not match its signed Content-Digest", stored)
                })
            },
        ),
        case(
            "project",
            "batch of an older client, signed whole",
            "taken, as before the index",
            move |c| {
                Box::pin(async move {
                    let tie = Tie::WholeBody { changed: false };
                    let (answer, stored) = c.send_file(2, "old.c", b"int old;", tie).await;
                    (answer.clone(), answer == "the batch was taken" && stored)
                })
            },
        ),
    ]
}
