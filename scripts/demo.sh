#!/usr/bin/env bash
# The local end-to-end run: a local AWS (moto server on a free port), the real function bootstraps
# under `cargo lambda watch`, every sample event in events/ sent through them, and a report.
# Exits 0 only when every outcome is the expected one; CI runs it as the smoke test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/tools.sh

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf 'demo: %s\n' "$*"; }
free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  python - "$1" "$2" <<'PY'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
deadline = time.time() + limit
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close(); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"nothing listens on port {port} after {limit:.0f} s")
PY
}

moto_port="$(free_port)"
say "starting a local AWS (moto server) on 127.0.0.1:$moto_port"
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto_port" 30
endpoint="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1

say "creating the queue and the secrets the sample events are signed with"
python - "$endpoint" "$work/env" <<'PY'
import json, sys, boto3
endpoint, env_file = sys.argv[1], sys.argv[2]
sqs = boto3.client("sqs", endpoint_url=endpoint)
sm = boto3.client("secretsmanager", endpoint_url=endpoint)
queue = sqs.create_queue(QueueName="genesys-relay-main")["QueueUrl"]
genesys = sm.create_secret(Name="genesys-webhook", SecretString="test-webhook-secret")["ARN"]
twilio = sm.create_secret(Name="twilio", SecretString=json.dumps({"accountSid": "AC0", "authToken": "test-auth-token"}))["ARN"]
with open(env_file, "w") as f:
    f.write(f"QUEUE_URL={queue}\nGENESYS_WEBHOOK_SECRET_ARN={genesys}\nTWILIO_SECRET_ARN={twilio}\n"
            "EVENT_KEY_POINTERS=/eventBody/conversationId,/eventBody/eventTime\n"
            f"AWS_ENDPOINT_URL={endpoint}\nAWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nAWS_REGION=us-east-1\n")
PY

invoke_port="$(free_port)"
say "starting the functions under cargo lambda watch on 127.0.0.1:$invoke_port (compiles on first use)"
cargo lambda watch --quiet --ignore-changes --invoke-port "$invoke_port" \
  --env-file "$work/env" >"$work/watch.log" 2>&1 &
pids+=($!)
wait_port "$invoke_port" 120

invoke() { # function, data file, output file
  cargo lambda invoke "$1" --invoke-port "$invoke_port" --data-file "$2" --output-format json >"$3" 2>"$work/invoke.err" || {
    cat "$work/invoke.err" "$work/watch.log" >&2; exit 1; }
}

for event in events/receiver-*.json; do
  name="$(basename "$event" .json)"
  say "receiver  <- $event"
  invoke receiver "$event" "$work/$name.out"
done

say "reading the queue into an SQS batch for the processor"
python - "$endpoint" "$work/batch.json" <<'PY'
import json, sys, boto3
endpoint, out = sys.argv[1], sys.argv[2]
sqs = boto3.client("sqs", endpoint_url=endpoint)
queue = sqs.get_queue_url(QueueName="genesys-relay-main")["QueueUrl"]
messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
records = [{
    "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "md5OfBody": m["MD5OfBody"],
    "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:genesys-relay-main",
    "messageAttributes": {k: {"stringValue": v["StringValue"], "dataType": v["DataType"], "stringListValues": [], "binaryListValues": []}
                          for k, v in m.get("MessageAttributes", {}).items()},
} for m in messages]
json.dump({"Records": records}, open(out, "w"))
PY
say "processor <- $(python -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["Records"]))' "$work/batch.json") queued message(s)"
invoke processor "$work/batch.json" "$work/processor.out"

for event in events/eventbridge-*.json; do
  name="$(basename "$event" .json)"
  say "eventbridge-handler <- $event"
  invoke eventbridge-handler "$event" "$work/$name.out"
done

python - "$work" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
expected = {"receiver-genesys-webhook": 202, "receiver-genesys-bad-signature": 401,
            "receiver-genesys-malformed": 400, "receiver-twilio-status": 202}
rows, failed = [], 0
for name, want in expected.items():
    response = json.loads((work / f"{name}.out").read_text())
    got = response["statusCode"]
    body = json.loads(response["body"])
    detail = body.get("id") or body.get("error", {}).get("code")
    ok = got == want
    failed += not ok
    rows.append((name, f"{got}", f"expected {want}", detail, ok))
batch = json.loads((work / "batch.json").read_text())["Records"]
processor = json.loads((work / "processor.out").read_text())
queued_ok = len(batch) == sum(1 for s in expected.values() if s == 202)
decoded_ok = processor.get("batchItemFailures") == []
failed += (not queued_ok) + (not decoded_ok)
rows.append(("queue", f"{len(batch)} stored", "only the accepted ones", "", queued_ok))
rows.append(("processor", f"{len(batch) - len(processor.get('batchItemFailures', []))} decoded", "all of them", "", decoded_ok))
for name in ("eventbridge-outbound", "eventbridge-acw"):
    ok = (work / f"{name}.out").exists()
    failed += not ok
    rows.append((name, "handled" if ok else "missing", "handled", "", ok))
print("\n  outcome                          result        expected               detail")
for name, got, want, detail, ok in rows:
    print(f"  {'ok ' if ok else 'BAD'} {name:30} {got:13} {want:22} {detail or ''}")
passed = len(rows) - failed
print(f"\ndemo: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
