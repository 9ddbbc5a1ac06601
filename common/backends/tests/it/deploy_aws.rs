//! The AWS template in deploy/aws matches what the code does: the student role allows everything the session
//! policy asks for (STS intersects the two, so a missing action would fail every submit on AWS and nowhere else),
//! the worker role allows every call raid makes, and the queues carry the names the code derives.

use std::collections::BTreeSet;

use serde_json::Value;

fn template() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/aws/rai-cluster.cfn.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn actions(policy: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        match &statement["Action"] {
            Value::String(a) => {
                out.insert(a.clone());
            }
            Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("an Action that is neither a string nor a list: {other}"),
        }
    }
    out
}

fn role_actions(t: &Value, role: &str) -> BTreeSet<String> {
    t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| actions(&p["PolicyDocument"]))
        .collect()
}

#[test]
fn the_student_role_allows_everything_the_session_policy_asks_for() {
    let t = template();
    let session: Value = serde_json::from_str(&rai_backends::aws::student_session_policy(
        "course",
        "jdoe",
        &["arn:aws:sqs:us-east-1:1:rai.fifo".to_string()],
    ))
    .unwrap();
    let role = role_actions(&t, "StudentRole");
    let missing: Vec<_> = actions(&session).difference(&role).cloned().collect();
    assert!(missing.is_empty(), "the student role lacks {missing:?}");
}

#[test]
fn the_worker_role_allows_what_raid_does() {
    let role = role_actions(&template(), "WorkerRole");
    for needed in [
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:AbortMultipartUpload",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
    ] {
        assert!(role.contains(needed), "the worker role lacks {needed}");
    }
    assert!(
        !role.iter().any(|a| a.ends_with(":*") || a == "*"),
        "no wildcard actions: {role:?}"
    );
}

#[test]
fn the_queues_are_fifo_with_the_names_the_code_derives() {
    let t = template();
    let name = |r: &str| t["Resources"][r]["Properties"]["QueueName"]["Fn::Sub"].clone();
    assert_eq!(
        name("JobQueue"),
        rai_backends::queue::sqs_queue_name("${QueueName}")
    );
    assert_eq!(
        name("DeadLetterQueue"),
        rai_backends::queue::sqs_dead_letter_name("${QueueName}")
    );
    for q in ["JobQueue", "DeadLetterQueue"] {
        assert_eq!(t["Resources"][q]["Properties"]["FifoQueue"], true, "{q}");
    }
    let redrive = &t["Resources"]["JobQueue"]["Properties"]["RedrivePolicy"];
    assert_eq!(redrive["maxReceiveCount"]["Ref"], "MaxDeliveries");
}
