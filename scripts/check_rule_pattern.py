"""Checks the EventBridge rule pattern in template.yaml against the sample events, on a local AWS
(moto server on a free port).

The pattern is read from the template itself, with parameters at their defaults, so the template
and this check cannot drift apart. moto does not implement TestEventPattern, so each event is put
on a bus whose rule (the template's pattern) targets a queue, as in the deployed stack, and the
queue tells whether it matched; moto delivers during PutEvents, so the answer is immediate.
"""
import copy
import json
import pathlib
import socket
import subprocess
import sys
import time

import boto3
from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parent.parent


def resolve(node, parameters):
    """Replaces {"Ref": parameter} with the parameter's default (a list for CommaDelimitedList)."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in parameters:
            parameter = parameters[node["Ref"]]
            default = parameter["Default"]
            return default.split(",") if parameter["Type"] == "CommaDelimitedList" else default
        return {key: resolve(value, parameters) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, parameters) for item in node]
    return node


def rule_pattern():
    template, problems = decode(str(ROOT / "template.yaml"))
    if problems:
        sys.exit(f"template.yaml does not parse: {problems}")
    events = template["Resources"]["EventBridgeHandlerFunction"]["Properties"]["Events"]
    return resolve(events["GenesysEvents"]["Properties"]["Pattern"], template["Parameters"])


def sample(name, **edits):
    event = json.loads((ROOT / "events" / name).read_text())
    for path, value in edits.items():
        node = event
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last.replace("_", "-")] = value
    return event


def cases():
    return [
        ("outbound event", sample("eventbridge-outbound.json"), True),
        ("acw with a configured wrap-up code", sample("eventbridge-acw.json"), True),
        ("acw redelivered under a new id", sample("eventbridge-acw-redelivered.json"), True),
        ("acw with another wrap-up code", sample("eventbridge-acw-other-code.json"), False),
        ("acw with an organization's code (its id) not in SmsWrapupCodes", sample("eventbridge-acw-org-code.json"), False),
        ("acw with a dialer code not configured",
         sample("eventbridge-acw.json", detail__eventBody__wrapupCode="ININ-OUTBOUND-BUSY"), False),
        ("customer.end topic", sample("eventbridge-customer-end.json"), False),
        ("event from another source", sample("eventbridge-outbound.json", source="aws.partner/example.com/other"), False),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    pattern = rule_pattern()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("moto server did not start")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        client = lambda service: boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                              aws_access_key_id="test", aws_secret_access_key="test")
        events, sqs = client("events"), client("sqs")
        # A custom bus, as used for testing with put-events (partner buses come from Genesys).
        bus = "genesys-relay-test"
        events.create_event_bus(Name=bus)
        queue = sqs.create_queue(QueueName="matched")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="genesys-events", EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="genesys-events", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
        passed = failed = 0
        for name, event, expected in cases():
            entry = {"Source": event["source"], "DetailType": event["detail-type"],
                     "Detail": json.dumps(event["detail"]), "EventBusName": bus}
            result = events.put_events(Entries=[entry])
            if result.get("FailedEntryCount"):
                sys.exit(f"{name}: PutEvents refused the event: {result}")
            delivered = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            for message in delivered:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            got = len(delivered) == 1
            ok = got == expected
            passed += ok
            failed += not ok
            print(f"  {'ok ' if ok else 'BAD'} {name}: {'matches' if got else 'does not match'}")
        print(f"rule-pattern: {passed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
