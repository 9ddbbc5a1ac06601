"""Creates deploy/aws/rai-cluster.cfn.json on moto's CloudFormation and prints what was made, as JSON.

moto's CloudFormation makes the bucket, queues, roles, security groups, load balancer, target group, launch templates
and Auto Scaling groups. It does not make Secrets Manager secrets, ElastiCache, CloudWatch alarms or scaling policies,
and refuses a TCP listener (it checks listeners as an ALB's); those are taken out of this copy of the template (the
policy tests in deploy_aws.rs check them), and what referred to them gets a placeholder. The AMI parameters' defaults
name AWS's public SSM parameters, which moto does not have: they name one of the test's own.

    stack_on_moto.py ENDPOINT COURSE
"""

import json
import re
import sys

import boto3

endpoint, course = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
cf, ec2, ssm, asg, elb = (boto3.client(s, **kw) for s in ("cloudformation", "ec2", "ssm", "autoscaling", "elbv2"))

t = json.load(open(sys.argv[3]))
UNSUPPORTED_SERVICES = ("SecretsManager", "ElastiCache", "CloudWatch")
unsupported = [
    name for name, r in t["Resources"].items()
    if r["Type"].split("::")[1] in UNSUPPORTED_SERVICES
    or r["Type"] in ("AWS::AutoScaling::ScalingPolicy", "AWS::ElasticLoadBalancingV2::Listener")
]
for name in unsupported:
    del t["Resources"][name]
names = "|".join(unsupported)


def fix(x):
    if isinstance(x, dict):
        if set(x) == {"Ref"} and x["Ref"] in unsupported:
            return "placeholder-" + x["Ref"]
        if set(x) == {"Fn::GetAtt"} and x["Fn::GetAtt"][0] in unsupported:
            return "placeholder-" + x["Fn::GetAtt"][0]
        return {k: fix(v) for k, v in x.items()}
    if isinstance(x, list):
        return [fix(v) for v in x]
    if isinstance(x, str):
        return re.sub(r"\$\{(" + names + r")(\.[A-Za-z.]+)?\}", lambda m: "placeholder-" + m.group(1), x)
    return x


t["Resources"] = fix(t["Resources"])
t["Outputs"] = {k: v for k, v in fix(t["Outputs"]).items() if "placeholder" not in json.dumps(v)}

ami = ec2.describe_images()["Images"][0]["ImageId"]
ssm.put_parameter(Name=f"/{course}/ami", Value=ami, Type="String", Overwrite=True)
for p in ("GatewayAmi", "WorkerAmi"):
    t["Parameters"][p]["Default"] = f"/{course}/ami"
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
zones = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
           for i, z in enumerate(zones)]
params = dict(Course=course, VpcId=vpc, PublicSubnets=",".join(subnets[:2]), PrivateSubnets=",".join(subnets[2:]),
              DomainName="rai.course.example.edu",
              GatewaySecretArn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:rai/{course}/gateway",
              WorkerMinSize="1", WorkerMaxSize="4")
stack = f"rai-{course}"
cf.create_stack(StackName=stack, TemplateBody=json.dumps(t), Capabilities=["CAPABILITY_IAM"],
                Parameters=[dict(ParameterKey=k, ParameterValue=v) for k, v in params.items()])
status = cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
failed = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
          for e in cf.describe_stack_events(StackName=stack)["StackEvents"] if "FAILED" in e["ResourceStatus"]]
groups = {g["AutoScalingGroupName"]: g for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]
          if g["AutoScalingGroupName"].startswith(course + "-")}
out = {"status": status, "failed": failed, "dropped": sorted(unsupported), "groups": {}}
for name, g in groups.items():
    lt = g["LaunchTemplate"]
    data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    instances = [i["InstanceId"] for i in g["Instances"]]
    described = ec2.describe_instances(InstanceIds=instances)["Reservations"] if instances else []
    public = [i.get("PublicIpAddress") for r in described for i in r["Instances"] if i.get("PublicIpAddress")]
    out["groups"][name] = {
        "min": g["MinSize"], "max": g["MaxSize"], "instances": len(instances),
        "subnets": sorted(g["VPCZoneIdentifier"].split(",")),
        "target_groups": len(g.get("TargetGroupARNs", [])),
        "http_tokens": data.get("MetadataOptions", {}).get("HttpTokens"),
        "hop_limit": data.get("MetadataOptions", {}).get("HttpPutResponseHopLimit"),
        "public_addresses": public,
    }
out["private_subnets"] = sorted(subnets[2:])
lbs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"]]
out["load_balancer_types"] = sorted({lb["Type"] for lb in lbs if lb["VpcId"] == vpc})
print(json.dumps(out))
