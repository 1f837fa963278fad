"""Checks that scripts/local_resources.py builds on a local AWS what template.yaml declares, so the
local stack keeps following the template as both change: with the default parameters, and with
QueueType fifo and an event archive. It checks the queues (standard or FIFO, their attributes and
redrive policy, the EventBridge side's dead-letter queue only with fifo), the bus, the rule
(pattern, retry policy, dead-letter queue) and the archive (retention, pattern, a replay through
it); that a stack takes over the table and bucket a deleted one kept, when told to, and creates
none; and that a partner bus, which moto creates but cannot use, stops the script saying so.

Expected values come from the template's text where it states them; the rule pattern from
check_rule_pattern.py, which resolves it on its own. Runs its own moto server on a free loopback
port (reset between runs) and stops it, also on failure.
"""
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import boto3
from cfnlint.decode import decode

sys.dont_write_bytecode = True  # importing the sibling check leaves no scripts/__pycache__ behind
from check_rule_pattern import free_port, rule_pattern  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "local_resources.py"
PARTNER_SOURCE = "aws.partner/genesys.com/cloud/local/genesys-relay"
FAILURES = []


def expect(what, got, want):
    """Prints one check's outcome and keeps going, so one run shows every difference."""
    ok = got == want
    if not ok:
        FAILURES.append(what)
    print(f"  {'ok ' if ok else 'BAD'} {what}" + ("" if ok else f": got {got!r}, want {want!r}"))


def start_moto(port):
    """The moto server, once it answers (it starts in about a second)."""
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=0.5)
            return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.terminate()
    sys.exit("moto server did not start")


def build(endpoint, parameters, before=None):
    """Runs local_resources.py on a fresh local AWS, after `before(endpoint)` when given: (exit
    code, its JSON or None, its stderr)."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    if before:
        before(endpoint)
    env = {**os.environ, "LOCAL_PARAMETERS": json.dumps(parameters)}
    run = subprocess.run([sys.executable, str(SCRIPT), endpoint], env=env, capture_output=True, text=True, timeout=60)
    return run.returncode, json.loads(run.stdout) if run.returncode == 0 else None, run.stderr


def client(endpoint, service):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def attributes(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def check_queues(sqs, created, template, fifo):
    """The main and dead-letter queues as the template makes them, FIFO or not; the EventBridge
    side's dead-letter queue standard, and a queue of its own only with fifo."""
    resources, defaults = template["Resources"], {n: p.get("Default") for n, p in template["Parameters"].items()}
    main, dlq = attributes(sqs, created["queueUrl"]), attributes(sqs, created["dlqUrl"])
    for name, queue in (("MainQueue", main), ("DeadLetterQueue", dlq)):
        props = resources[name]["Properties"]
        expect(f"{name} is {'FIFO' if fifo else 'standard'}", queue.get("FifoQueue"), "true" if fifo else None)
        expect(f"{name}'s name ends in .fifo only if FIFO", queue["QueueArn"].endswith(".fifo"), fifo)
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled"):
            if key in props:
                expect(f"{name} {key}", queue[key], str(props[key]).lower())
    if fifo:
        expect("MainQueue DeduplicationScope", main.get("DeduplicationScope"), "messageGroup")
        expect("MainQueue FifoThroughputLimit", main.get("FifoThroughputLimit"), "perMessageGroupId")
    redrive = json.loads(main["RedrivePolicy"])
    expect("MainQueue redrives to DeadLetterQueue", redrive["deadLetterTargetArn"], dlq["QueueArn"])
    expect("MainQueue maxReceiveCount", int(redrive["maxReceiveCount"]), int(defaults["MaxReceiveCount"]))
    names = [url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]]
    expect("EventDeadLetterQueue exists only with fifo", "genesys-relay-EventDeadLetterQueue" in names, fifo)
    event_dlq = attributes(sqs, created["eventDlqUrl"])
    expect("eventDlqUrl is standard", event_dlq.get("FifoQueue"), None)
    expect("eventDlqUrl is DeadLetterQueue only if standard", created["eventDlqUrl"] == created["dlqUrl"], not fifo)
    return event_dlq["QueueArn"]


def check_rule(events, sqs, created, template, event_dlq_arn):
    """The EventBridge handler's rule on the bus named by eventBus: the template's pattern and
    retry policy, the EventBridge side's dead-letter queue, the local target queue."""
    bus = created["eventBus"]
    expect("the rule is on the local custom bus", bus, "genesys-relay-local")
    rules = [r for r in events.list_rules(EventBusName=bus)["Rules"] if not r.get("ManagedBy")]
    expect("one rule on the bus", len(rules), 1)
    expect("the rule's pattern is the template's", json.loads(rules[0]["EventPattern"]), rule_pattern())
    target, = events.list_targets_by_rule(Rule=rules[0]["Name"], EventBusName=bus)["Targets"]
    target_arn = attributes(sqs, created["eventTargetQueueUrl"])["QueueArn"]
    expect("the rule targets eventTargetQueueUrl", target["Arn"], target_arn)
    expect("the rule's dead-letter queue is eventDlqUrl", target.get("DeadLetterConfig", {}).get("Arn"), event_dlq_arn)
    handler = template["Resources"]["EventBridgeHandlerFunction"]["Properties"]["Events"]["GenesysEvents"]
    expect("the rule's retry policy", target.get("RetryPolicy"), handler["Properties"]["RetryPolicy"])


def check_archive(events, sqs, created, template, days):
    """The archive of the Genesys events on the rule's bus with the given retention, or none; an
    event put on the bus reaches the rule's target, is archived, and comes back on a replay."""
    archives = events.list_archives()["Archives"]
    expect("archives", len(archives), 1 if days else 0)
    if not days:
        return
    bus = events.describe_event_bus(Name=created["eventBus"])["Arn"]
    archive = events.describe_archive(ArchiveName=archives[0]["ArchiveName"])
    prefix = template["Parameters"]["GenesysEventSourcePrefix"]["Default"]
    expect("the archive is on the rule's bus", archive["EventSourceArn"], bus)
    expect("the archive's retention", archive["RetentionDays"], days)
    expect("the archive's pattern", json.loads(archive["EventPattern"]), {"source": [{"prefix": prefix}]})
    event = json.loads((ROOT / "events" / "eventbridge-outbound.json").read_text())
    events.put_events(Entries=[{"EventBusName": created["eventBus"], "Source": event["source"],
                                "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}])
    expect("the event reached the rule's target", len(receive(sqs, created["eventTargetQueueUrl"])), 1)
    expect("the archive holds the event", events.describe_archive(ArchiveName=archive["ArchiveName"])["EventCount"], 1)
    now = datetime.now(timezone.utc)
    events.start_replay(ReplayName="check", EventSourceArn=archive["ArchiveArn"], Destination={"Arn": bus},
                        EventStartTime=now - timedelta(hours=1), EventEndTime=now)
    replayed = [json.loads(m["Body"]).get("replay-name") for m in receive(sqs, created["eventTargetQueueUrl"])]
    expect("a replay brings the event back to the rule's target", replayed, ["check"])


def receive(sqs, url):
    """The messages waiting (moto delivers during PutEvents and StartReplay), deleted once read."""
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def check_stack(endpoint, template, parameters):
    """One build of the local stack, and what it must hold under these parameters."""
    print(f"local-resources: LOCAL_PARAMETERS={json.dumps(parameters)}")
    code, created, stderr = build(endpoint, parameters)
    expect("local_resources.py succeeds", code, 0)
    if code:
        print(stderr, file=sys.stderr)
        return
    sqs, events = client(endpoint, "sqs"), client(endpoint, "events")
    event_dlq_arn = check_queues(sqs, created, template, parameters.get("QueueType") == "fifo")
    check_rule(events, sqs, created, template, event_dlq_arn)
    check_archive(events, sqs, created, template, int(parameters.get("EventArchiveRetentionDays", 0)))
    ddb, s3 = client(endpoint, "dynamodb"), client(endpoint, "s3")
    expect("the stack creates its table", ddb.list_tables()["TableNames"], [created["table"]])
    expect("the stack creates its bucket", [b["Name"] for b in s3.list_buckets()["Buckets"]], [created["bucket"]])


def check_kept_data(endpoint):
    """With ExistingStateTableName and ExistingClaimCheckBucketName (what a deleted stack kept),
    the stack uses those and creates none (check_stack sees it create its own otherwise)."""
    print("local-resources: the table and bucket a deleted stack kept, taken over")

    def kept(endpoint):
        ddb, s3 = client(endpoint, "dynamodb"), client(endpoint, "s3")
        ddb.create_table(TableName="kept-state", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        s3.create_bucket(Bucket="kept-claim-checks")

    code, created, stderr = build(endpoint, {"ExistingStateTableName": "kept-state",
                                             "ExistingClaimCheckBucketName": "kept-claim-checks"}, kept)
    expect("local_resources.py succeeds with kept data", code, 0)
    if code:
        print(stderr, file=sys.stderr)
        return
    expect("the kept table is the stack's", created["table"], "kept-state")
    expect("the kept bucket is the stack's", created["bucket"], "kept-claim-checks")
    ddb, s3 = client(endpoint, "dynamodb"), client(endpoint, "s3")
    expect("no table is created", ddb.list_tables()["TableNames"], ["kept-state"])
    expect("no bucket is created", [b["Name"] for b in s3.list_buckets()["Buckets"]], ["kept-claim-checks"])


def check_partner_bus(endpoint):
    """With GenesysEventSourceName the partner event source and bus are created, and the script
    stops at the rule, naming the moto gap, rather than run a stack off the template."""
    print(f"local-resources: GenesysEventSourceName={PARTNER_SOURCE}")
    code, _, stderr = build(endpoint, {"GenesysEventSourceName": PARTNER_SOURCE})
    expect("local_resources.py stops", code != 0, True)
    expect("it says moto cannot use a partner bus", "cannot use a partner bus" in stderr, True)
    events = client(endpoint, "events")
    expect("the partner event source exists", events.describe_event_source(Name=PARTNER_SOURCE)["Name"], PARTNER_SOURCE)
    buses = [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]
    expect("the partner bus exists, named as its source", PARTNER_SOURCE in buses, True)


def main():
    template, problems = decode(str(ROOT / "template.yaml"))
    if problems:
        sys.exit(f"template.yaml does not parse: {problems}")
    port = free_port()
    server = start_moto(port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        check_stack(endpoint, template, {})
        check_stack(endpoint, template, {"QueueType": "fifo", "EventArchiveRetentionDays": "7"})
        check_kept_data(endpoint)
        check_partner_bus(endpoint)
    finally:
        server.terminate()
        server.wait()
    print(f"local-resources: {len(FAILURES)} failed" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
