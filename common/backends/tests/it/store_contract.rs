//! One contract, two backends: the fs store in a temporary directory and the S3 store on moto.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rai_backends::errors::StoreError;
use rai_backends::store::{FsStore, ObjectStore, S3Store};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Fs,
    S3,
}

use rai_testkit::aws_config;

async fn s3_client() -> aws_sdk_s3::Client {
    rai_backends::aws::s3_client(&rai_backends::aws::sdk_config(&aws_config()).await)
}

/// A fresh, empty store. The temporary directory lives as long as the returned guard.
async fn store(b: Backend) -> (Arc<dyn ObjectStore>, Option<tempfile::TempDir>) {
    match b {
        Backend::Fs => {
            let dir = tempfile::tempdir().unwrap();
            (Arc::new(FsStore::open(dir.path()).unwrap()), Some(dir))
        }
        Backend::S3 => {
            let client = s3_client().await;
            let bucket = rai_testkit::unique("bucket").to_lowercase();
            client.create_bucket().bucket(&bucket).send().await.unwrap();
            (
                Arc::new(
                    S3Store::open(client, &bucket, rai_testkit::aws_endpoint())
                        .await
                        .unwrap(),
                ),
                None,
            )
        }
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// GETs an http URL with a plain HTTP/1.0 request (the presigned links point at moto on loopback).
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&reply[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, reply[split + 4..].to_vec())
}

async fn small_and_multipart_objects_round_trip(b: Backend) {
    let (s, _guard) = store(b).await;
    for (key, len) in [
        ("records/u/a.json", 1234usize),
        ("uploads/u/big.tar.zst", 20 * 1024 * 1024 + 17),
    ] {
        let bytes = data(len, len as u64);
        let put = s
            .put(key, Box::pin(std::io::Cursor::new(bytes.clone())))
            .await
            .unwrap();
        assert_eq!(put.size, len as u64);
        assert_eq!(put.sha256, hex::encode(Sha256::digest(&bytes)), "{b:?}");
        assert_eq!(s.get_bytes(key).await.unwrap(), bytes, "{b:?}: {key}");
        assert_eq!(s.head(key).await.unwrap().unwrap().size, len as u64);
    }
    // Replacing an object replaces it whole.
    s.put_bytes("records/u/a.json", b"v2".to_vec())
        .await
        .unwrap();
    assert_eq!(s.get_bytes("records/u/a.json").await.unwrap(), b"v2");
}

async fn head_list_and_delete(b: Backend) {
    let (s, _guard) = store(b).await;
    for key in [
        "records/alice/1.json",
        "records/alice/2.json",
        "records/bob/1.json",
        "outputs/alice/1.tar.zst",
    ] {
        s.put_bytes(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let keys: Vec<String> = s
        .list("records/alice/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        ["records/alice/1.json", "records/alice/2.json"],
        "{b:?}"
    );
    assert_eq!(s.list("records/").await.unwrap().len(), 3);
    assert!(s.list("nothing/").await.unwrap().is_empty());
    s.delete("records/alice/1.json").await.unwrap();
    s.delete("records/alice/1.json").await.unwrap();
    assert!(s.head("records/alice/1.json").await.unwrap().is_none());
    let e = s.get("records/alice/1.json").await.err().unwrap();
    assert!(matches!(e, StoreError::NotFound { .. }), "{b:?}: {e}");
    assert!(
        e.to_string()
            .starts_with("no object \"records/alice/1.json\" in "),
        "{e}"
    );
}

async fn download_links_fetch_the_object(b: Backend) {
    let (s, _guard) = store(b).await;
    s.put_bytes("outputs/u/1.tar.zst", b"the build".to_vec())
        .await
        .unwrap();
    let link = s
        .download_link("outputs/u/1.tar.zst", Duration::from_secs(600))
        .await
        .unwrap();
    let body = match b {
        Backend::Fs => std::fs::read(&link).unwrap(),
        Backend::S3 => {
            assert!(link.contains("X-Amz-Expires=600"), "{link}");
            let (status, body) = http_get(&link);
            assert_eq!(status, 200);
            body
        }
    };
    assert_eq!(body, b"the build");
}

async fn hostile_keys_are_refused(b: Backend) {
    let (s, _guard) = store(b).await;
    for key in ["../escape", "/abs", "a/../../b", "a b"] {
        let e = s.put_bytes(key, vec![1]).await.unwrap_err();
        assert!(matches!(e, StoreError::BadKey { .. }), "{b:?}: {key}: {e}");
        // In a batch, one bad key refuses the batch before anything of it is stored.
        let e = s
            .put_many(vec![
                ("chunks/u/good.zst".into(), vec![1]),
                (key.into(), vec![2]),
            ])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::BadKey { .. }), "{b:?}: {key}: {e}");
        assert!(
            s.head("chunks/u/good.zst").await.unwrap().is_none(),
            "{b:?}"
        );
    }
}

async fn a_batch_of_small_objects_round_trips(b: Backend) {
    let (s, _guard) = store(b).await;
    let objects: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| {
            (
                format!("chunks/u/{i}.zst"),
                data(1000 + i as usize * 333, i),
            )
        })
        .collect();
    s.put_many(objects.clone()).await.unwrap();
    for (key, bytes) in &objects {
        let head = s.head(key).await.unwrap().unwrap();
        assert_eq!(head.size, bytes.len() as u64, "{b:?}: {key}");
        assert_eq!(&s.get_bytes(key).await.unwrap(), bytes, "{b:?}: {key}");
    }
    s.put_many(Vec::new()).await.unwrap();
    // A batch synced later (an upload's chunks): readable at once, whole, and nothing is left in the way of a sync.
    let later: Vec<(String, Vec<u8>)> = (0..5u64)
        .map(|i| {
            (
                format!("chunks/u/later-{i}.zst"),
                data(777 + i as usize, 50 + i),
            )
        })
        .collect();
    let shared = later
        .iter()
        .map(|(k, b)| (k.clone(), b.clone().into()))
        .collect();
    s.put_many_unsynced(shared).await.unwrap();
    for (key, bytes) in &later {
        assert_eq!(&s.get_bytes(key).await.unwrap(), bytes, "{b:?}: {key}");
    }
    s.sync().await.unwrap();
    let e = s
        .put_many_unsynced(vec![("../escape".into(), vec![1].into())])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::BadKey { .. }), "{b:?}: {e}");
}

async fn readers_never_see_half_an_object(b: Backend) {
    let (s, _guard) = store(b).await;
    let key = "uploads/u/atomic.bin";
    let first = data(12 << 20, 1);
    let second = data(12 << 20, 2);
    s.put_bytes(key, first.clone()).await.unwrap();
    let writer = {
        let (s, second) = (s.clone(), second.clone());
        tokio::spawn(async move {
            // A slow writer: 12 MiB in small pieces.
            let (mut tx, rx) = tokio::io::duplex(64 * 1024);
            let feed = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for chunk in second.chunks(256 * 1024) {
                    tx.write_all(chunk).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            s.put(key, Box::pin(rx)).await.unwrap();
            feed.await.unwrap();
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let got = s.get_bytes(key).await.unwrap();
        assert!(
            got == first || got == second,
            "{b:?}: a reader saw a half-written object ({} bytes)",
            got.len()
        );
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    assert_eq!(s.get_bytes(key).await.unwrap(), second);
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod fs_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Backend::Fs).await })*
        }
        mod s3_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Backend::S3).await })*
        }
    };
}

contract!(
    small_and_multipart_objects_round_trip,
    head_list_and_delete,
    download_links_fetch_the_object,
    hostile_keys_are_refused,
    a_batch_of_small_objects_round_trips,
    readers_never_see_half_an_object,
);

/// What the bucket's lifecycle rules expire: only objects the gateway or worker tagged (ungraded uploads and
/// outputs); a graded submission's stay for the course.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_are_tagged_expirable_and_others_are_not() {
    let client = s3_client().await;
    let bucket = rai_testkit::unique("bucket").to_lowercase();
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let store = S3Store::open(client.clone(), &bucket, rai_testkit::aws_endpoint())
        .await
        .unwrap();
    for key in ["uploads/jdoe/a.tar.zst", "uploads/jdoe/graded.tar.zst"] {
        store.put_bytes(key, b"x".to_vec()).await.unwrap();
    }
    store
        .mark_expirable("uploads/jdoe/a.tar.zst")
        .await
        .unwrap();
    let tags = |key: &'static str| {
        let client = client.clone();
        let bucket = bucket.clone();
        async move {
            let out = client
                .get_object_tagging()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect::<Vec<_>>()
        }
    };
    let (name, value) = rai_backends::store::EXPIRABLE_TAG;
    assert_eq!(
        tags("uploads/jdoe/a.tar.zst").await,
        [(name.to_string(), value.to_string())]
    );
    assert!(tags("uploads/jdoe/graded.tar.zst").await.is_empty());
    assert!(store.mark_expirable("../escape").await.is_err());
    // The fs store has no expiry of its own: marking is a no-op there.
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStore::open(dir.path()).unwrap();
    fs.put_bytes("uploads/jdoe/a.tar.zst", b"x".to_vec())
        .await
        .unwrap();
    fs.mark_expirable("uploads/jdoe/a.tar.zst").await.unwrap();
}

#[tokio::test]
async fn missing_bucket_and_directory_name_the_store() {
    let e = S3Store::open(
        s3_client().await,
        "no-such-bucket-rai",
        rai_testkit::aws_endpoint(),
    )
    .await
    .err()
    .unwrap();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "s3://no-such-bucket-rai at {}",
            rai_testkit::aws_endpoint()
        )),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");
    let e = FsStore::open("/nonexistent/rai-store")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "object store /nonexistent/rai-store: the store directory does not exist; create it or set store.path"
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_named() {
    let mut aws = aws_config();
    aws.endpoint_url = Some("http://127.0.0.1:1".into());
    let client = rai_backends::aws::s3_client(&rai_backends::aws::sdk_config(&aws).await);
    let e = S3Store::open(client, "b", "http://127.0.0.1:1".into())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("cannot reach the object store s3://b at http://127.0.0.1:1"),
        "{e}"
    );
}
