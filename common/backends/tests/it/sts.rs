//! Student credentials from STS (moto): AssumeRole with the username and the narrow session policy, and the
//! credentials it returns work for the client's S3 and SQS calls.

use rai_backends::aws::{queue_arn, student_session, student_session_policy};
use rai_backends::queue::{JobQueue, SqsQueue};
use rai_backends::store::{ObjectStore, S3Store};
use rai_common::config::AwsConfig;

fn aws(role: Option<&str>) -> AwsConfig {
    AwsConfig {
        role_arn: role.map(str::to_string),
        ..rai_testkit::aws_config()
    }
}

#[test]
fn the_session_policy_allows_only_the_users_prefix_and_the_queues() {
    let arn = queue_arn(
        "us-east-1",
        "arn:aws:iam::123456789012:role/rai-student",
        "rai",
    )
    .unwrap();
    assert_eq!(arn, "arn:aws:sqs:us-east-1:123456789012:rai.fifo");
    let policy: serde_json::Value = serde_json::from_str(&student_session_policy(
        "course",
        "jdoe",
        std::slice::from_ref(&arn),
    ))
    .unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let upload = &statements[0];
    assert_eq!(upload["Resource"], "arn:aws:s3:::course/uploads/jdoe/*");
    assert!(
        upload["Action"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.as_str().unwrap().starts_with("s3:"))
    );
    for s in statements {
        let resources = match &s["Resource"] {
            serde_json::Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        };
        for r in resources {
            let r = r.as_str().unwrap();
            assert!(
                r.contains("/jdoe/") || r == "arn:aws:s3:::course" || r == arn,
                "a resource beyond the user's own: {r}"
            );
        }
    }
    assert_eq!(
        statements[3]["Action"],
        serde_json::json!(["sqs:SendMessage", "sqs:GetQueueUrl"])
    );
}

#[tokio::test]
async fn assumed_credentials_upload_and_enqueue() {
    let base = rai_backends::aws::sdk_config(&aws(None)).await;
    let bucket = rai_testkit::unique("sts").to_lowercase();
    rai_backends::aws::s3_client(&base)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let queue = rai_testkit::unique("sts-q").to_lowercase();
    SqsQueue::create(
        rai_backends::aws::sqs_client(&base),
        rai_testkit::aws_endpoint(),
        &queue,
        std::time::Duration::from_secs(30),
        3,
    )
    .await
    .unwrap();

    let session = student_session(
        &aws(Some("arn:aws:iam::123456789012:role/rai-student")),
        "jdoe",
        &bucket,
        std::slice::from_ref(&queue),
    )
    .await
    .unwrap();
    let expires = session.expires.expect("STS credentials expire");
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left <= std::time::Duration::from_secs(15 * 60)
            && left > std::time::Duration::from_secs(14 * 60),
        "{left:?}"
    );
    let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(
        &session.sdk.credentials_provider().unwrap(),
    )
    .await
    .unwrap();
    assert_ne!(
        creds.access_key_id(),
        "testing",
        "the session uses the assumed credentials"
    );
    assert!(creds.session_token().is_some());

    let store = S3Store::unchecked(
        rai_backends::aws::s3_client(&session.sdk),
        &bucket,
        rai_testkit::aws_endpoint(),
    );
    store
        .put_bytes("uploads/jdoe/job.tar.zst", b"project".to_vec())
        .await
        .unwrap();
    let q = SqsQueue::open(
        rai_backends::aws::sqs_client(&session.sdk),
        rai_testkit::aws_endpoint(),
        &queue,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    q.send("{\"job\":1}").await.unwrap();
}

#[tokio::test]
async fn without_a_role_the_base_credentials_are_used() {
    let s = student_session(&aws(None), "jdoe", "b", &[]).await.unwrap();
    assert!(s.expires.is_none());
}
