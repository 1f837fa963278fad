#!/usr/bin/env bash
# Smoke test of the real bootstraps: a local AWS (moto server on a free port), the four functions
# built and run by `cargo lambda watch` (or, with SMOKE_RUNTIME=emulator, the bootstraps `sam build`
# made, each under the Lambda Runtime Interface Emulator, as `sam local invoke` runs them), every
# sample event in events/ invoked through them with the settings of events/env.json (the rotator's
# through each of its four steps), and a check of each answer. Exits 0 only when every outcome is
# expected.
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

say() { printf 'smoke: %s\n' "$*"; }
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

say "creating the queues, the table and the secrets the sample events are signed with"
python - "$endpoint" "$work" <<'PY'
import json, sys, boto3
endpoint, work = sys.argv[1], sys.argv[2]
sqs = boto3.client("sqs", endpoint_url=endpoint)
sm = boto3.client("secretsmanager", endpoint_url=endpoint)
ddb = boto3.client("dynamodb", endpoint_url=endpoint)
dlq = sqs.create_queue(QueueName="genesys-relay-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sqs.create_queue(QueueName="genesys-relay-main", Attributes={
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})
ddb.create_table(TableName="genesys-relay-state", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
sm.create_secret(Name="genesys-webhook", SecretString="test-webhook-secret",
    Tags=[{"Key": "genesys-relay:rotation", "Value": "webhook"}])
sm.create_secret(Name="twilio", SecretString=json.dumps({"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": "test-auth-token"}))
sm.create_secret(Name="genesys", SecretString=json.dumps({"clientId": "demo", "clientSecret": "demo"}))
# events/env.json, as `sam local invoke --env-vars` reads it, aimed at this run's local AWS (the
# queues' URLs carry its address too); providers point at a closed loopback port.
functions = json.load(open("events/env.json"))
credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
merged = {}
for name, variables in functions.items():
    variables = {k: v.replace("http://127.0.0.1:5000", endpoint) for k, v in variables.items()} | credentials
    merged |= variables
    with open(f"{work}/env-{name}", "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in variables.items())
with open(f"{work}/env", "w") as f:
    f.writelines(f"{k}={v}\n" for k, v in merged.items())
PY

if [[ "${SMOKE_RUNTIME:-cargo-lambda}" == emulator ]]; then
  # What `sam local invoke` runs, without a container: each function's bootstrap as `sam build`
  # left it, under AWS's Lambda Runtime Interface Emulator as shipped with the SAM CLI.
  rie="$(python -c 'import samcli, pathlib; print(pathlib.Path(samcli.__file__).parent / "local/rapid/aws-lambda-rie-x86_64")')"
  declare -A ports
  for function in ReceiverFunction ProcessorFunction EventBridgeHandlerFunction RotatorFunction; do
    bootstrap=".aws-sam/build/$function/bootstrap"
    [[ -x "$bootstrap" ]] || { echo "smoke: $bootstrap is missing: run sam build first" >&2; exit 1; }
    port="$(free_port)"
    ports[$function]="$port"
    say "starting $function's bootstrap under the runtime interface emulator on 127.0.0.1:$port"
    # Each emulator serves its bootstrap the Runtime API on a port of its own.
    env $(cat "$work/env-$function") "$rie" --runtime-interface-emulator-address "127.0.0.1:$port" \
      --runtime-api-address "127.0.0.1:$(free_port)" \
      "$bootstrap" >"$work/rie-$function.log" 2>&1 &
    pids+=($!)
    wait_port "$port" 30
  done
  invoke() { # function, data file, output file
    local function
    case "$1" in
      receiver) function=ReceiverFunction ;; processor) function=ProcessorFunction ;;
      eventbridge-handler) function=EventBridgeHandlerFunction ;; rotator) function=RotatorFunction ;;
    esac
    python - "${ports[$function]}" "$2" "$3" <<'PY' || { cat "$work/rie-$function.log" >&2; exit 1; }
import sys, urllib.request
port, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
request = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations",
                                 data=open(data, "rb").read(), method="POST")
with urllib.request.urlopen(request, timeout=120) as response:
    open(out, "wb").write(response.read())
PY
  }
else
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
fi

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

for step in createSecret setSecret testSecret finishSecret; do
  say "rotator <- events/rotator-create-secret.json as $step"
  python -c 'import json,sys; e=json.load(open(sys.argv[1])); e["Step"]=sys.argv[2]; print(json.dumps(e))' \
    events/rotator-create-secret.json "$step" >"$work/rotator-$step.json"
  invoke rotator "$work/rotator-$step.json" "$work/rotator-$step.out"
done
say "receiver  <- events/receiver-genesys-webhook.json, signed with the secret the rotation replaced"
invoke receiver events/receiver-genesys-webhook.json "$work/receiver-after-rotation.out"
python - "$endpoint" "$work/rotation.json" <<'PY'
import json, sys, boto3
sm = boto3.client("secretsmanager", endpoint_url=sys.argv[1])
versions = sm.list_secret_version_ids(SecretId="genesys-webhook")["Versions"]
stages = {v["VersionId"]: v["VersionStages"] for v in versions}
current = sm.get_secret_value(SecretId="genesys-webhook", VersionStage="AWSCURRENT")["SecretString"]
json.dump({"stages": stages, "rotated": current != "test-webhook-secret"}, open(sys.argv[2], "w"))
PY

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
retried = {f["itemIdentifier"] for f in processor.get("batchItemFailures", [])}
sources = {r["messageId"]: r["messageAttributes"]["source"]["stringValue"] for r in batch}
queued_ok = sorted(sources.values()) == ["genesys-webhook", "twilio-status"]
failed += not queued_ok
rows.append(("queue", f"{len(batch)} stored", "only the accepted ones", "", queued_ok))
# No SMS rule is configured here: the webhook needs no action; the status callback names an SMS
# this run never sent, so it is retried (and would end in the DLQ with its reason).
for message_id, source in sorted(sources.items(), key=lambda kv: kv[1]):
    want = "retried" if source == "twilio-status" else "acknowledged"
    got = "retried" if message_id in retried else "acknowledged"
    ok = got == want
    failed += not ok
    rows.append((f"processor {source}", got, want, "", ok))
for name in ("eventbridge-outbound", "eventbridge-acw"):
    ok = (work / f"{name}.out").exists()
    failed += not ok
    rows.append((name, "handled" if ok else "missing", "handled", "", ok))
rotation = json.loads((work / "rotation.json").read_text())
token = json.loads(pathlib.Path("events/rotator-create-secret.json").read_text())["ClientRequestToken"]
ok = rotation["rotated"] and "AWSCURRENT" in rotation["stages"].get(token, [])
failed += not ok
rows.append(("rotator four steps", "current" if ok else "not current", "new version current", "", ok))
after = json.loads((work / "receiver-after-rotation.out").read_text())["statusCode"]
ok = after == 202
failed += not ok
rows.append(("receiver old secret, in grace", f"{after}", "expected 202", "", ok))
print("\n  outcome                          result        expected               detail")
for name, got, want, detail, ok in rows:
    print(f"  {'ok ' if ok else 'BAD'} {name:30} {got:13} {want:22} {detail or ''}")
passed = len(rows) - failed
print(f"\nsmoke: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
