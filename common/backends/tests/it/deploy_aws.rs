//! The AWS template in deploy/aws matches what the code does: students get nothing (no role, no user), the gateway
//! role allows every call a gateway makes and no more, the worker role allows every call raid makes, and the
//! queues carry the names the code derives.

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
fn students_get_no_aws_identity_at_all() {
    let t = template();
    for (name, resource) in t["Resources"].as_object().unwrap() {
        let kind = resource["Type"].as_str().unwrap();
        assert_ne!(
            kind, "AWS::IAM::User",
            "{name}: no IAM user (keys baked into a client leak)"
        );
        assert_ne!(kind, "AWS::IAM::AccessKey", "{name}");
    }
    let roles: Vec<&String> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(roles, ["GatewayRole", "WorkerRole"]);
}

#[test]
fn the_gateway_role_allows_what_the_gateway_does_and_no_more() {
    let t = template();
    let role = role_actions(&t, "GatewayRole");
    for needed in [
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "sqs:SendMessage",
        "sqs:GetQueueUrl",
    ] {
        assert!(role.contains(needed), "the gateway role lacks {needed}");
    }
    // It queues; it never leases or deletes jobs.
    for forbidden in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
    ] {
        assert!(
            !role.contains(forbidden),
            "the gateway role must not have {forbidden}"
        );
    }
    assert!(
        !role.iter().any(|a| a.ends_with(":*") || a == "*"),
        "no wildcard actions: {role:?}"
    );
    // Outputs are only read (presigned GETs).
    let statements =
        t["Resources"]["GatewayRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
    for s in statements {
        let resource = s["Resource"].to_string();
        if resource.contains("/outputs/") {
            assert_eq!(s["Action"], serde_json::json!(["s3:GetObject"]), "{s}");
        }
    }
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
