"""Creates the stack's resources on a local AWS (moto) from template.yaml itself, so the local
stack and the deployed one cannot drift.

The parameters are the template's defaults, then the local stack's (LOCAL_DEFAULTS), then the
caller's (LOCAL_PARAMETERS); they must pass the template's constraints and its Rules. The
template's Conditions decide which resources exist, and Fn::If / AWS::NoValue what their
properties say, as in a deployment.

Created: the SQS queues (standard or FIFO with their attributes and redrive policy), the DynamoDB
table (its key schema and TTL), the S3 bucket, the Secrets Manager secrets (local values, the
template's tags), the Genesys partner event bus with its event source (GenesysEventBus; moto cannot
use it, see below), the rule SAM makes of the EventBridge handler's GenesysEvents event
(EventBridgeHandlerFunctionGenesysEvents: the template's bus, pattern, retry policy and dead-letter
queue, targeting a local queue the local stack polls in place of invoking the handler) and the
archive of the Genesys events (GenesysEventArchive, which moto can replay). A bus the rule names
but the template does not create (GenesysEventBusName, which a deployment finds made) is created as
a custom bus. A table and bucket the stack takes over (ExistingStateTableName,
ExistingClaimCheckBucketName) must exist; the output names those in use. The table's encryption and
point-in-time recovery and the bucket's encryption, public access block, ownership and lifecycle
are not applied.

Not created; each type present is named on stderr with its reason:
  AWS::Serverless::Function: the functions run inside `relay local`, fed by its pollers (their
    EventBridgeRule events' rules are created).
  AWS::Serverless::HttpApi: `relay local` serves the receiver's routes on a local port.
  AWS::Lambda::Permission: there are no Lambda functions locally to permit.
  AWS::IAM::Role, AWS::SQS::QueuePolicy, AWS::S3::BucketPolicy: moto does not enforce access.
  AWS::SecretsManager::RotationSchedule: moto's RotateSecret invokes a function in moto's own
    Lambda and schedules nothing; `relay local rotation-soak` runs the rotator's steps itself.
  AWS::CloudWatch::Alarm, AWS::CloudWatch::Dashboard: nothing collects metrics locally.

What moto (5.2.5) cannot do: use a partner event bus. It creates one (its event source made
first with CreatePartnerEventSource), but finds buses by the last '/'-separated part of their
name, so no rule, archive or PutEvents reaches a bus named aws.partner/...; with
GenesysEventSourceName set the script stops there, saying so. The local stack therefore leaves it
empty and names a custom bus in GenesysEventBusName (LOCAL_DEFAULTS).

Usage: python scripts/local_resources.py ENDPOINT
Prints one JSON object naming what was created. LOCAL_GENESYS_WEBHOOK_SECRET, when set, is the
Genesys webhook secret's value (the local stack sets one that suits its webhook auth scheme).
"""
import json
import math
import os
import pathlib
import re
import sys

import boto3
from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGION, ACCOUNT = "us-east-1", "123456789012"
PSEUDO_PARAMETERS = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                     "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "genesys-relay"}
NO_VALUE = object()  # AWS::NoValue: the key or list item holding it is dropped.

# The template needs GenesysEventSourceName or GenesysEventBusName (its Rules); locally the
# Genesys events arrive on a custom bus, as moto cannot use a partner bus (see above).
LOCAL_DEFAULTS = {"GenesysEventBusName": "genesys-relay-local"}

# Values the local stack uses for the template's secrets (documented in the README).
LOCAL_SECRETS = {
    "GenesysWebhookSecret": "test-webhook-secret",
    "TwilioSecret": json.dumps({"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "test-auth-token"}),
    "GenesysSecret": json.dumps({"clientId": "local-client", "clientSecret": "local-secret"}),
}

# The resource types not created locally, and why (the module docstring says the same).
SKIPPED = {
    "AWS::Serverless::Function": "the functions run inside `relay local`, fed by its pollers "
                                 "(their EventBridgeRule events' rules are created)",
    "AWS::Serverless::HttpApi": "`relay local` serves the receiver's routes on a local port",
    "AWS::Lambda::Permission": "there are no Lambda functions locally to permit",
    "AWS::IAM::Role": "moto does not enforce access (the functions use the local credentials)",
    "AWS::SQS::QueuePolicy": "moto does not enforce access",
    "AWS::S3::BucketPolicy": "moto does not enforce access",
    "AWS::SecretsManager::RotationSchedule": "moto's RotateSecret invokes a function in moto's own Lambda "
                                             "and schedules nothing; `relay local rotation-soak` runs the "
                                             "rotator's steps itself",
    "AWS::CloudWatch::Alarm": "nothing collects metrics locally",
    "AWS::CloudWatch::Dashboard": "nothing collects metrics locally",
}


def say(message):
    """A note on stderr: stdout carries only the JSON the local stack reads."""
    print(f"local_resources: {message}", file=sys.stderr)


def text(value):
    """A value as CloudFormation passes it on: a string, with booleans in lower case."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def parameters():
    """The template's defaults, the local stack's, then the caller's from LOCAL_PARAMETERS (a JSON
    object of parameter name to value, as `sam deploy --parameter-overrides` would give them);
    the values set here must pass the template's constraints, as a deployment's must."""
    specs = TEMPLATE.get("Parameters", {})
    overrides = json.loads(os.environ.get("LOCAL_PARAMETERS") or "{}")
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        sys.exit(f"LOCAL_PARAMETERS names parameters the template does not have: {', '.join(unknown)}")
    given = {**LOCAL_DEFAULTS, **overrides}
    for name, value in given.items():
        check_constraints(name, specs[name], text(value))
    missing = sorted(name for name, spec in specs.items() if name not in given and "Default" not in spec)
    if missing:
        sys.exit(f"parameters without a default, to give in LOCAL_PARAMETERS: {', '.join(missing)}")
    return {name: text(given.get(name, spec.get("Default"))) for name, spec in specs.items()}


def check_constraints(name, spec, value):
    """Refuses a value the template's AllowedValues, AllowedPattern or MinValue/MaxValue refuse,
    so the local stack never runs on parameters a deployment would not take."""
    refused = "AllowedValues" in spec and value not in map(text, spec["AllowedValues"])
    refused |= "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value)
    if spec["Type"] == "Number":
        refused |= not spec.get("MinValue", -math.inf) <= float(value) <= spec.get("MaxValue", math.inf)
    if refused:
        rule = (spec.get("ConstraintDescription") or spec.get("AllowedPattern") or spec.get("AllowedValues")
                or f"from {spec.get('MinValue', '-inf')} to {spec.get('MaxValue', 'inf')}")
        sys.exit(f"parameter {name}={value!r}: the template does not allow it ({rule})")


def evaluate(node, params):
    """Evaluates a condition or rule assertion: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Contains,
    Condition and Ref; anything else stops the script rather than be guessed."""
    if not isinstance(node, dict):
        return node
    (function, args), = node.items()
    if function == "Ref":
        return reference(args, params, {})
    if function == "Condition":
        return evaluate(TEMPLATE["Conditions"][args], params)
    values = [evaluate(arg, params) for arg in (args if isinstance(args, list) else [args])]
    if function == "Fn::Equals":
        return text(values[0]) == text(values[1])
    if function == "Fn::Not":
        return not values[0]
    if function == "Fn::And":
        return all(values)
    if function == "Fn::Or":
        return any(values)
    if function == "Fn::Contains":
        return text(values[1]) in map(text, values[0])
    sys.exit(f"{function} in a condition or rule: the local stack cannot evaluate it yet")


def holds(condition, params):
    """Whether the template's condition of that name holds for these parameters."""
    return evaluate({"Condition": condition}, params)


def check_rules(params):
    """Stops on a parameter combination the template's Rules refuse, as a deployment would."""
    for name, rule in TEMPLATE.get("Rules", {}).items():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], params):
            continue
        for assertion in rule["Assertions"]:
            if not evaluate(assertion["Assert"], params):
                sys.exit(f"template rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")


def reference(name, params, created):
    """Ref: a parameter (a list for CommaDelimitedList), a pseudo parameter or a created resource."""
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in params:
        is_list = TEMPLATE["Parameters"][name]["Type"] == "CommaDelimitedList"
        return params[name].split(",") if is_list else params[name]
    if name in PSEUDO_PARAMETERS:
        return PSEUDO_PARAMETERS[name]
    return created[name]["ref"]


def attribute(target, created):
    """Fn::GetAtt of a created resource, as [name, attribute] or "name.attribute"."""
    name, attr = target if isinstance(target, list) else target.split(".", 1)
    return created[name][attr]


def substitute(args, params, created):
    """Fn::Sub: ${Name} as Ref, ${Name.Attribute} as Fn::GetAtt, ${!Literal} as ${Literal}."""
    template, variables = args if isinstance(args, list) else (args, {})

    def one(match):
        bang, name = match.groups()
        if bang:
            return "${" + name + "}"
        if name in variables:
            return text(resolve(variables[name], params, created))
        if "." in name:
            return text(attribute(name, created))
        return text(reference(name, params, created))
    return re.sub(r"\$\{(!?)([^}]+)\}", one, template)


def resolve(node, params, created):
    """The value CloudFormation gives `node`: Ref, Fn::GetAtt, Fn::Sub and Fn::If resolved, keys
    and list items that are AWS::NoValue dropped; another intrinsic stops the script."""
    if isinstance(node, list):
        return [item for item in (resolve(i, params, created) for i in node) if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (function, args), = node.items()
        if function == "Ref":
            return reference(args, params, created)
        if function == "Fn::GetAtt":
            return attribute(args, created)
        if function == "Fn::Sub":
            return substitute(args, params, created)
        if function == "Fn::If":
            condition, then, otherwise = args
            return resolve(then if holds(condition, params) else otherwise, params, created)
        if function.startswith("Fn::"):
            sys.exit(f"{function} in a property: the local stack cannot resolve it yet")
    pairs = ((key, resolve(value, params, created)) for key, value in node.items())
    return {key: value for key, value in pairs if value is not NO_VALUE}


def sam_rules(resources):
    """The AWS::Events::Rule SAM makes of each function's EventBridgeRule event, named as SAM
    names it (function then event), so the template's references to it resolve."""
    rules = {}
    for function, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event, spec in resource["Properties"].get("Events", {}).items():
            if spec["Type"] == "EventBridgeRule":
                rule = {"Type": "AWS::Events::Rule", "Properties": spec["Properties"]}
                if "Condition" in resource:
                    rule["Condition"] = resource["Condition"]
                rules[function + event] = rule
    return rules


def create_queue(aws, name, props):
    """AWS::SQS::Queue: every property but QueueName and Tags is the SQS attribute of that name;
    a FIFO queue's name ends in .fifo, as SQS requires."""
    attributes = {key: json.dumps(value) if isinstance(value, dict) else text(value)
                  for key, value in props.items() if key not in ("QueueName", "Tags")}
    suffix = ".fifo" if attributes.get("FifoQueue") == "true" else ""
    queue = props.get("QueueName") or f"genesys-relay-{name}{suffix}"
    tags = {tag["Key"]: tag["Value"] for tag in props.get("Tags", [])}
    url = aws["sqs"].create_queue(QueueName=queue, Attributes=attributes, tags=tags)["QueueUrl"]
    arn = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"ref": url, "Arn": arn}


def create_table(aws, name, props):
    """AWS::DynamoDB::Table: its keys and TTL, the parts the code depends on."""
    table = props.get("TableName") or f"genesys-relay-{name}"
    aws["dynamodb"].create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"])
    time_to_live(aws["dynamodb"], table, props)
    return {"ref": table, "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"}


def time_to_live(ddb, table, props):
    """Applies the table's TimeToLiveSpecification as CloudFormation would, then reads it back, so
    a local table whose expiry attribute differs from the template's stops the local stack."""
    spec = props.get("TimeToLiveSpecification")
    if not spec or not spec.get("Enabled"):
        return
    attribute_name = spec["AttributeName"]
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"AttributeName": attribute_name, "Enabled": True})
    described = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if described.get("AttributeName") != attribute_name or described.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        sys.exit(f"table {table}: TTL is {described}, the template says {attribute_name!r} enabled")


def create_bucket(aws, name, props):
    """AWS::S3::Bucket, the bucket alone (its settings have no local effect)."""
    bucket = props.get("BucketName") or f"genesys-relay-{name.lower()}"
    aws["s3"].create_bucket(Bucket=bucket)
    return {"ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}


def genesys_webhook_secret():
    """The local Genesys webhook secret: the caller's (one per auth scheme), else the HMAC key."""
    return os.environ.get("LOCAL_GENESYS_WEBHOOK_SECRET") or LOCAL_SECRETS["GenesysWebhookSecret"]


def create_secret(aws, name, props):
    """AWS::SecretsManager::Secret with its local value (a generated one has none to read)."""
    value = genesys_webhook_secret() if name == "GenesysWebhookSecret" else LOCAL_SECRETS.get(name)
    value = value or props.get("SecretString") or "local-secret"
    arn = aws["secretsmanager"].create_secret(Name=f"genesys-relay/{name}", SecretString=value,
                                              Tags=props.get("Tags", []))["ARN"]
    return {"ref": arn, "Arn": arn}


def create_event_bus(aws, name, props):
    """AWS::Events::EventBus. A partner bus needs its event source, which the partner makes (here
    Genesys' EventBridge integration); locally the script makes it first."""
    source = props.get("EventSourceName")
    if source:
        aws["events"].create_partner_event_source(Name=source, Account=ACCOUNT)
    extra = {"EventSourceName": source} if source else {}
    arn = aws["events"].create_event_bus(Name=props["Name"], **extra)["EventBusArn"]
    return {"ref": props["Name"], "Arn": arn}


def create_rule(aws, name, props):
    """AWS::Events::Rule of an EventBridgeRule event: its bus, pattern, retry policy and
    dead-letter queue, with a local queue as the target the local stack polls for the function.
    A bus the template does not create is one a deployment finds made: it is created here."""
    events, bus = aws["events"], props.get("EventBusName", "default")
    if not any(b["Name"] == bus for b in events.list_event_buses()["EventBuses"]):
        say(f"event bus {bus!r} (not created by the template) created as a custom bus")
        events.create_event_bus(Name=bus)
    rule = f"genesys-relay-{name}"
    try:
        arn = events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(props["Pattern"]),
                              State=props.get("State", "ENABLED"))["RuleArn"]
    except events.exceptions.ResourceNotFoundException as error:
        sys.exit(f"rule {name} on event bus {bus!r}: {error} moto finds a bus by the last '/'-separated "
                 "part of its name, so it cannot use a partner bus: leave GenesysEventSourceName empty locally")
    target = create_queue(aws, f"{name}-target", {})
    settings = {key: props[key] for key in ("RetryPolicy", "DeadLetterConfig") if key in props}
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "function", "Arn": target["Arn"], **settings}])
    return {"ref": rule, "Arn": arn, "bus": bus, "target": target["ref"]}


def create_archive(aws, name, props):
    """AWS::Events::Archive on its bus, with its pattern and retention (0 days: for ever)."""
    archive = props.get("ArchiveName") or f"genesys-relay-{name}"
    pattern = {"EventPattern": json.dumps(props["EventPattern"])} if "EventPattern" in props else {}
    arn = aws["events"].create_archive(ArchiveName=archive, EventSourceArn=props["SourceArn"],
                                       Description=props.get("Description", ""),
                                       RetentionDays=int(props.get("RetentionDays", 0)), **pattern)["ArchiveArn"]
    return {"ref": archive, "Arn": arn}


# Creators by type, in creation order: what a resource references is made before it.
CREATORS = {
    "AWS::SQS::Queue": create_queue,
    "AWS::DynamoDB::Table": create_table,
    "AWS::S3::Bucket": create_bucket,
    "AWS::SecretsManager::Secret": create_secret,
    "AWS::Events::EventBus": create_event_bus,
    "AWS::Events::Rule": create_rule,
    "AWS::Events::Archive": create_archive,
}


def in_this_stack(params):
    """The template's resources (with SAM's rules) whose condition holds; says which do not."""
    resources = {**TEMPLATE["Resources"], **sam_rules(TEMPLATE["Resources"])}
    absent = {name: r["Condition"] for name, r in resources.items()
              if "Condition" in r and not holds(r["Condition"], params)}
    if absent:
        say("not in this stack, their condition is false: " + ", ".join(f"{n} ({c})" for n, c in absent.items()))
    return {name: r for name, r in resources.items() if name not in absent}


def report_skipped(resources):
    """Names on stderr each type not created locally, with its reason; an unknown type stops the
    script, so a new kind of resource is either created or given its reason."""
    unknown = sorted({r["Type"] for r in resources.values()} - set(CREATORS) - set(SKIPPED))
    if unknown:
        sys.exit(f"template.yaml has resource types the local stack neither creates nor skips: {', '.join(unknown)}")
    for kind, reason in SKIPPED.items():
        names = [name for name, r in resources.items() if r["Type"] == kind]
        if names:
            say(f"skipped {kind} ({', '.join(names)}): {reason}")


def create_all(aws, resources, params):
    """Creates the resources type by type in CREATORS' order; queues with a redrive policy after
    the others, so the dead-letter queue they name exists."""
    created = {}
    for kind, create in CREATORS.items():
        names = sorted((n for n, r in resources.items() if r["Type"] == kind),
                       key=lambda n: "RedrivePolicy" in resources[n].get("Properties", {}))
        for name in names:
            props = resolve(resources[name].get("Properties", {}), params, created)
            created[name] = create(aws, name, props)
    return created


def main():
    endpoint = sys.argv[1]
    session = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    aws = {service: boto3.client(service, **session) for service in ("sqs", "dynamodb", "s3", "secretsmanager", "events")}
    params = parameters()
    check_rules(params)
    resources = in_this_stack(params)
    report_skipped(resources)
    created = create_all(aws, resources, params)
    rule = created["EventBridgeHandlerFunctionGenesysEvents"]
    event_dlq = created.get("EventDeadLetterQueue") or created["DeadLetterQueue"]
    # The table and bucket the processor is given: the stack's own, or those it took over.
    settings = TEMPLATE["Resources"]["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    processor = {name: resolve(settings[name], params, created) for name in ("TABLE_NAME", "CLAIM_CHECK_BUCKET")}
    print(json.dumps({
        "queueUrl": created["MainQueue"]["ref"],
        "dlqUrl": created["DeadLetterQueue"]["ref"],
        "eventDlqUrl": event_dlq["ref"],
        "table": processor["TABLE_NAME"],
        "bucket": processor["CLAIM_CHECK_BUCKET"],
        "genesysWebhookSecretArn": created["GenesysWebhookSecret"]["ref"],
        "twilioSecretArn": created["TwilioSecret"]["ref"],
        "genesysSecretArn": created["GenesysSecret"]["ref"],
        "eventBus": rule["bus"],
        "eventTargetQueueUrl": rule["target"],
        "maxReceiveCount": int(params["MaxReceiveCount"]),
        "batchSize": int(params["BatchSize"]),
    }))


TEMPLATE, PROBLEMS = decode(str(ROOT / "template.yaml"))
if PROBLEMS:
    sys.exit(f"template.yaml does not parse: {PROBLEMS}")

if __name__ == "__main__":
    main()
