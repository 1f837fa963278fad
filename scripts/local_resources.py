"""Creates the stack's resources on a local AWS (moto) from template.yaml itself, so the local
stack and the deployed one cannot drift: the queues with their redrive policy, the state table,
the claim-check bucket, the secrets, and an event bus whose rule (the template's pattern) targets a
local queue the local stack polls in place of the EventBridge handler's invocation.

Usage: python scripts/local_resources.py ENDPOINT
Prints one JSON object naming what was created. LOCAL_GENESYS_WEBHOOK_SECRET, when set, is the
Genesys webhook secret's value (the local stack sets one that suits its webhook auth scheme).
"""
import json
import os
import pathlib
import sys

import boto3
from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Values the local stack uses for the template's secrets (documented in the README).
LOCAL_SECRETS = {
    "GenesysWebhookSecret": "test-webhook-secret",
    "TwilioSecret": json.dumps({"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "test-auth-token"}),
    "GenesysSecret": json.dumps({"clientId": "local-client", "clientSecret": "local-secret"}),
}


def genesys_webhook_secret():
    """The local Genesys webhook secret: the caller's (one per auth scheme), else the HMAC key."""
    return os.environ.get("LOCAL_GENESYS_WEBHOOK_SECRET") or LOCAL_SECRETS["GenesysWebhookSecret"]


def time_to_live(ddb, table, props):
    """Applies the table's TimeToLiveSpecification as CloudFormation would, then reads it back, so
    a local table whose expiry attribute differs from the template's stops the local stack."""
    spec = props.get("TimeToLiveSpecification")
    if not spec or not spec.get("Enabled"):
        return
    attribute = spec["AttributeName"]
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": True})
    described = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if described.get("AttributeName") != attribute or described.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        sys.exit(f"table {table}: TTL is {described}, the template says {attribute!r} enabled")


def parameters(template):
    """The template's defaults, with the caller's values from LOCAL_PARAMETERS (a JSON object of
    parameter name to value, as `sam deploy --parameter-overrides` would give them)."""
    params = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
    overrides = json.loads(os.environ.get("LOCAL_PARAMETERS") or "{}")
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        sys.exit(f"LOCAL_PARAMETERS names parameters the template does not have: {', '.join(unknown)}")
    params.update(overrides)
    return params


def resolve(node, params, created):
    """Resolves Ref (parameters, created resources) and Fn::GetAtt X.Arn of created resources."""
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            name = node["Ref"]
            if name in params:
                value = params[name]
                spec = TEMPLATE["Parameters"][name]
                return value.split(",") if spec["Type"] == "CommaDelimitedList" else value
            return created[name]["ref"]
        if set(node) == {"Fn::GetAtt"}:
            target, attribute = node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".")
            return created[target][attribute]
        return {k: resolve(v, params, created) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(item, params, created) for item in node]
    return node


def main():
    endpoint = sys.argv[1]
    session = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    sqs, ddb, s3, sm, events = (boto3.client(s, **session) for s in ("sqs", "dynamodb", "s3", "secretsmanager", "events"))
    resources = TEMPLATE["Resources"]
    params = parameters(TEMPLATE)
    created = {}

    # Queues: dead-letter targets first, so a redrive policy can name them.
    queues = {name: r for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    for name in sorted(queues, key=lambda n: "RedrivePolicy" in queues[n].get("Properties", {})):
        props = queues[name].get("Properties", {})
        attributes = {"VisibilityTimeout": str(props.get("VisibilityTimeout", 30))}
        if "MessageRetentionPeriod" in props:
            attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
        if "RedrivePolicy" in props:
            policy = resolve(props["RedrivePolicy"], params, created)
            attributes["RedrivePolicy"] = json.dumps({k: str(v) for k, v in policy.items()})
        url = sqs.create_queue(QueueName=f"genesys-relay-{name}", Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created[name] = {"ref": url, "Arn": arn}

    for name, r in resources.items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::DynamoDB::Table":
            table = f"genesys-relay-{name}"
            ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"])
            time_to_live(ddb, table, props)
            created[name] = {"ref": table, "Arn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"}
        elif r["Type"] == "AWS::S3::Bucket":
            bucket = f"genesys-relay-{name.lower()}"
            s3.create_bucket(Bucket=bucket)
            created[name] = {"ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
        elif r["Type"] == "AWS::SecretsManager::Secret":
            value = genesys_webhook_secret() if name == "GenesysWebhookSecret" else LOCAL_SECRETS.get(name)
            value = value or props.get("SecretString") or "local-secret"
            arn = sm.create_secret(Name=f"genesys-relay/{name}", SecretString=value)["ARN"]
            created[name] = {"ref": arn, "Arn": arn}

    # The EventBridge handler's rule, on a local custom bus, targeting a queue the stack polls.
    handler = resources["EventBridgeHandlerFunction"]["Properties"]["Events"]["GenesysEvents"]["Properties"]
    bus = "genesys-relay-local"
    events.create_event_bus(Name=bus)
    target = sqs.create_queue(QueueName="genesys-relay-eventbridge-target")["QueueUrl"]
    target_arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="genesys-events", EventBusName=bus, EventPattern=json.dumps(resolve(handler["Pattern"], params, created)))
    events.put_targets(Rule="genesys-events", EventBusName=bus, Targets=[{"Id": "handler", "Arn": target_arn}])

    print(json.dumps({
        "queueUrl": created["MainQueue"]["ref"],
        "dlqUrl": created["DeadLetterQueue"]["ref"],
        "table": created["StateTable"]["ref"],
        "bucket": created["ClaimCheckBucket"]["ref"],
        "genesysWebhookSecretArn": created["GenesysWebhookSecret"]["ref"],
        "twilioSecretArn": created["TwilioSecret"]["ref"],
        "genesysSecretArn": created["GenesysSecret"]["ref"],
        "eventBus": bus,
        "eventTargetQueueUrl": target,
        "maxReceiveCount": int(params["MaxReceiveCount"]),
        "batchSize": int(params["BatchSize"]),
    }))


TEMPLATE, PROBLEMS = decode(str(ROOT / "template.yaml"))
if PROBLEMS:
    sys.exit(f"template.yaml does not parse: {PROBLEMS}")

if __name__ == "__main__":
    main()
