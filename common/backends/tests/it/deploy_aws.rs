//! The AWS template in deploy/aws matches what the code does: students get nothing (no role, no user), the gateway
//! role allows every call a gateway makes and no more, the worker role allows every call raid makes, and the
//! queues carry the names the code derives.
//!
//! Over 450 lines: one test per role and resource of the AWS template, sharing its parsed policies.

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
    // It queues; it never leases or deletes jobs. It reads and takes out dead letters (staff's `rai deadletters`),
    // on the dead-letter queue only.
    let statements =
        t["Resources"]["GatewayRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
    for forbidden in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
    ] {
        for s in statements {
            if actions(&serde_json::json!({ "Statement": [s] })).contains(forbidden) {
                assert_eq!(
                    s["Resource"],
                    serde_json::json!([{ "Fn::GetAtt": ["DeadLetterQueue", "Arn"] }]),
                    "the gateway may {forbidden} only on the dead letters: {s}"
                );
            }
        }
    }
    // The bucket expires only what is tagged expirable: a graded submission's upload and output are kept for the
    // course (the gateway's sweep honours keep_submissions_until).
    let rules = t["Resources"]["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .unwrap();
    for rule in rules.iter().filter(|r| r.get("ExpirationInDays").is_some()) {
        assert_eq!(
            rule["TagFilters"],
            serde_json::json!([{ "Key": "rai-retention", "Value": "default" }]),
            "{rule}"
        );
    }
    assert!(role.contains("s3:PutObjectTagging"));
    assert!(
        !role.iter().any(|a| a.ends_with(":*") || a == "*"),
        "no wildcard actions: {role:?}"
    );
    // Outputs are only read (presigned GETs).
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

/// A launch template's boot script (user data) as the template writes it, before CloudFormation fills it in.
fn boot_script<'t>(t: &'t Value, launch_template: &str) -> &'t str {
    t["Resources"][launch_template]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
        .as_str()
        .unwrap()
}

fn resources_of_type<'t>(t: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[test]
fn only_the_load_balancer_is_public() {
    let t = template();
    for (name, sg) in resources_of_type(&t, "AWS::EC2::SecurityGroup") {
        for rule in sg["Properties"]["SecurityGroupIngress"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let open = rule["CidrIp"] == "0.0.0.0/0" || rule["CidrIpv6"] == "::/0";
            if open {
                assert_eq!(
                    name, "LoadBalancerSecurityGroup",
                    "{name} is open to the world: {rule}"
                );
                assert_eq!(
                    (rule["FromPort"].as_u64(), rule["ToPort"].as_u64()),
                    (Some(443), Some(443))
                );
            }
        }
    }
    // Gateways take HTTPS from the load balancer only; workers take nothing; Redis only from gateways and workers.
    let ingress = |sg: &str| t["Resources"][sg]["Properties"]["SecurityGroupIngress"].clone();
    let sources = |sg: &str| -> BTreeSet<String> {
        ingress(sg)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["SourceSecurityGroupId"]["Ref"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        sources("GatewaySecurityGroup"),
        BTreeSet::from(["LoadBalancerSecurityGroup".into()])
    );
    assert!(
        ingress("WorkerSecurityGroup").is_null(),
        "workers pull jobs; nothing comes in"
    );
    assert_eq!(
        sources("RedisSecurityGroup"),
        BTreeSet::from(["GatewaySecurityGroup".into(), "WorkerSecurityGroup".into()])
    );
    assert_eq!(
        t["Resources"]["LoadBalancer"]["Properties"]["Scheme"],
        "internet-facing"
    );
    assert_eq!(
        t["Resources"]["LoadBalancer"]["Properties"]["Type"],
        "network"
    );
    // TLS passes through: the gateway keeps its certificate, and HTTP/2 and event streams reach it unchanged.
    assert_eq!(
        t["Resources"]["GatewayListener"]["Properties"]["Protocol"],
        "TCP"
    );
    for lt in ["GatewayLaunchTemplate", "WorkerLaunchTemplate"] {
        let data = &t["Resources"][lt]["Properties"]["LaunchTemplateData"];
        assert!(
            data["NetworkInterfaces"].is_null(),
            "{lt}: no public address"
        );
        // Both groups live in the private subnets.
    }
    for group in ["GatewayGroup", "WorkerGroup"] {
        assert_eq!(
            t["Resources"][group]["Properties"]["VPCZoneIdentifier"]["Ref"], "PrivateSubnets",
            "{group}"
        );
    }
}

#[test]
fn instances_require_imdsv2_with_one_hop_so_containers_cannot_reach_the_role() {
    let t = template();
    let templates = resources_of_type(&t, "AWS::EC2::LaunchTemplate");
    assert_eq!(templates.len(), 2);
    for (name, lt) in templates {
        let md = &lt["Properties"]["LaunchTemplateData"]["MetadataOptions"];
        assert_eq!(md["HttpTokens"], "required", "{name}");
        assert_eq!(md["HttpPutResponseHopLimit"], 1, "{name}");
        let disks = &lt["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"];
        assert_eq!(disks[0]["Ebs"]["Encrypted"], true, "{name}");
    }
}

#[test]
fn redis_is_tls_only_encrypted_at_rest_with_the_acl_users_of_deploy_redis() {
    let t = template();
    let redis = &t["Resources"]["Redis"]["Properties"];
    assert_eq!(redis["TransitEncryptionEnabled"], true);
    assert_eq!(redis["TransitEncryptionMode"], "required");
    assert_eq!(redis["AtRestEncryptionEnabled"], true);
    assert_eq!(redis["SecurityGroupIds"][0]["Ref"], "RedisSecurityGroup");
    // The RBAC users carry deploy/redis/users.acl's rules, so a rule added there cannot be forgotten here.
    let acl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/redis/users.acl"
    ))
    .unwrap();
    for (resource, user) in [("RedisRaidUser", "raid"), ("RedisGatewayUser", "gateway")] {
        let line = acl
            .lines()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap();
        let rules: Vec<&str> = line
            .split_whitespace()
            .skip(2)
            .filter(|w| {
                !matches!(*w, "on" | "off" | "resetkeys" | "resetchannels") && !w.starts_with('>')
            })
            .collect();
        let props = &t["Resources"][resource]["Properties"];
        assert_eq!(props["UserName"], user);
        assert_eq!(
            props["AccessString"],
            format!("on {}", rules.join(" ")),
            "{resource}"
        );
        assert_eq!(props["AuthenticationMode"]["Type"], "password");
        let password = props["AuthenticationMode"]["Passwords"][0]["Fn::Sub"]
            .as_str()
            .unwrap();
        assert!(
            password.starts_with("{{resolve:secretsmanager:"),
            "{password}"
        );
    }
    assert_eq!(
        t["Resources"]["RedisDefaultUser"]["Properties"]["AccessString"], "off -@all",
        "the default user is off"
    );
    // The boot scripts connect over TLS.
    for lt in ["GatewayLaunchTemplate", "WorkerLaunchTemplate"] {
        let script = boot_script(&t, lt);
        assert!(script.contains("RAI_EVENTS_REDIS_URL=rediss://"), "{lt}");
        assert!(!script.contains("redis://"), "{lt}: plain Redis");
    }
}

#[test]
fn no_role_has_a_wildcard_action_and_data_actions_name_their_resources() {
    let t = template();
    for role in ["GatewayRole", "WorkerRole"] {
        let statements =
            t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap();
        for s in statements {
            let actions = actions(&serde_json::json!({ "Statement": [s] }));
            assert!(!actions.iter().any(|a| a.contains('*')), "{role}: {s}");
            if s["Resource"] == "*" {
                // Only calls that AWS cannot scope to a resource, and that read no course data.
                assert!(
                    actions
                        .iter()
                        .all(|a| a.starts_with("autoscaling:Describe")),
                    "{role}: {s}"
                );
            }
        }
    }
    let worker = role_actions(&t, "WorkerRole");
    for needed in [
        "autoscaling:SetInstanceProtection",
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:DescribeAutoScalingInstances",
        "ssm:GetParameter",
        "secretsmanager:GetSecretValue",
    ] {
        assert!(worker.contains(needed), "the worker role lacks {needed}");
    }
    assert!(
        !role_actions(&t, "GatewayRole")
            .iter()
            .any(|a| a.starts_with("autoscaling:"))
    );
}

#[test]
fn workers_scale_on_jobs_waiting_per_slot_and_drain_before_scale_in() {
    let t = template();
    let group = &t["Resources"]["WorkerGroup"]["Properties"];
    let hook = &group["LifecycleHookSpecificationList"][0];
    assert_eq!(
        hook["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_TERMINATING"
    );
    assert_eq!(hook["LifecycleHookName"], "drain");
    assert_eq!(hook["HeartbeatTimeout"]["Ref"], "ShutdownGraceSeconds");
    assert_eq!(hook["DefaultResult"], "CONTINUE");
    assert_eq!(group["NewInstancesProtectedFromScaleIn"], false);
    assert!(
        group["MetricsCollection"][0]["Metrics"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("GroupInServiceInstances"))
    );
    // The boot script names the hook and the group to raid (raid.fleet).
    let boot = boot_script(&t, "WorkerLaunchTemplate");
    assert!(
        boot.contains("RAI_RAID_FLEET_GROUP=${Course}-workers"),
        "{boot}"
    );
    assert!(boot.contains("RAI_RAID_FLEET_DRAIN_HOOK=drain"), "{boot}");
    assert_eq!(
        group["AutoScalingGroupName"]["Fn::Sub"],
        "${Course}-workers"
    );

    let policy = &t["Resources"]["WorkerScaling"]["Properties"];
    assert_eq!(policy["PolicyType"], "TargetTrackingScaling");
    assert_eq!(policy["AutoScalingGroupName"]["Ref"], "WorkerGroup");
    let tracking = &policy["TargetTrackingConfiguration"];
    assert_eq!(tracking["TargetValue"]["Ref"], "WaitingJobsPerSlot");
    let metrics = tracking["CustomizedMetricSpecification"]["Metrics"]
        .as_array()
        .unwrap();
    let metric =
        |id: &str| metrics.iter().find(|m| m["Id"] == id).unwrap()["MetricStat"]["Metric"].clone();
    assert_eq!(
        metric("waiting")["MetricName"],
        "ApproximateNumberOfMessagesVisible"
    );
    assert_eq!(
        metric("waiting")["Dimensions"][0]["Value"]["Fn::GetAtt"][0],
        "JobQueue"
    );
    assert_eq!(metric("workers")["MetricName"], "GroupInServiceInstances");
    let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    assert!(
        returned[0]["Expression"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .contains("${SlotsPerWorker}")
    );
    // Target tracking cannot leave zero workers: an alarm starts the first.
    let alarm = &t["Resources"]["WorkerScaleFromZeroAlarm"]["Properties"];
    assert_eq!(alarm["AlarmActions"][0]["Ref"], "WorkerScaleFromZero");
    assert_eq!(
        t["Resources"]["WorkerScaleFromZero"]["Properties"]["AdjustmentType"],
        "ExactCapacity"
    );
    // At least two gateways, behind the load balancer.
    let gateways = &t["Resources"]["GatewayGroup"]["Properties"];
    assert_eq!(gateways["TargetGroupARNs"][0]["Ref"], "GatewayTargetGroup");
    assert_eq!(t["Parameters"]["GatewayCount"]["MinValue"], 2);
}

/// The whole stack, created on moto's CloudFormation (the resources moto makes; stack_on_moto.py lists the rest).
#[test]
fn the_cluster_stack_creates_on_moto() {
    let course = rai_testkit::unique("c")
        .to_ascii_lowercase()
        .replace('_', "-");
    let course: String = course.chars().take(20).collect();
    let here = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(rai_testkit::required("RAI_TEST_MOTO_PYTHON"))
        .arg(format!("{here}/tests/it/stack_on_moto.py"))
        .arg(rai_testkit::aws_endpoint())
        .arg(&course)
        .arg(format!("{here}/../../deploy/aws/rai-cluster.cfn.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["status"], "CREATE_COMPLETE", "{made}");
    assert_eq!(made["failed"], serde_json::json!([]), "{made}");
    let workers = &made["groups"][format!("{course}-workers")];
    let gateways = &made["groups"][format!("{course}-gateways")];
    assert_eq!(
        (workers["min"].as_u64(), workers["max"].as_u64()),
        (Some(1), Some(4)),
        "{made}"
    );
    assert_eq!(workers["instances"], 1, "{made}");
    assert_eq!(gateways["instances"], 2, "two gateways: {made}");
    assert_eq!(gateways["target_groups"], 1, "{made}");
    for g in [workers, gateways] {
        assert_eq!(g["http_tokens"], "required", "{made}");
        assert_eq!(g["hop_limit"], 1, "{made}");
        assert_eq!(g["subnets"], made["private_subnets"], "{made}");
        assert_eq!(g["public_addresses"], serde_json::json!([]), "{made}");
    }
    // moto makes every load balancer an application one whatever Type says; the policy test checks the type.
    assert_eq!(
        made["load_balancer_types"].as_array().map(Vec::len),
        Some(1),
        "{made}"
    );
}

/// The boot scripts are valid bash once CloudFormation has filled them in, and every `${Name}` they use is a
/// parameter, a resource (or its attribute) or a pseudo parameter: a typo would reach the instance as an empty word.
#[test]
fn the_boot_scripts_name_only_what_the_template_has_and_parse_as_bash() {
    let t = template();
    for lt in ["GatewayLaunchTemplate", "WorkerLaunchTemplate"] {
        let script = boot_script(&t, lt);
        let mut filled = String::new();
        let mut rest = script;
        while let Some(start) = rest.find("${") {
            filled.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            let name = &rest[start + 2..end];
            let base = name.split('.').next().unwrap();
            assert!(
                name.starts_with("AWS::")
                    || t["Parameters"].get(base).is_some()
                    || t["Resources"].get(base).is_some(),
                "{lt}: ${{{name}}} is neither a parameter nor a resource"
            );
            filled.push_str("filled-in");
            rest = &rest[end + 1..];
        }
        filled.push_str(rest);
        assert!(filled.starts_with("#!/bin/bash\n"), "{lt}");
        let check = std::process::Command::new("bash")
            .args(["-n", "-c", &filled])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{lt}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
