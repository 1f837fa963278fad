#!/usr/bin/env bash
# API contract check of the receiver against openapi.yaml, on the local stack (loopback only).
#
#   1. validates openapi.yaml (openapi-spec-validator);
#   2. starts `relay local up` on a free 127.0.0.1 port and waits for GET /health;
#   3. provokes the 500 (a malformed webhook secret in the local Secrets Manager, restored at once);
#   4. runs schemathesis twice: unsigned (almost every POST is a 401: expected) and with each
#      request signed with the local secrets, so generated bodies get past authentication
#      (202 / 400 / 415); checks: no 5xx, status codes, response schemas, content types,
#      documented headers, 405 + Allow for undocumented methods;
#   5. crafts one request per documented status (200, 202, 400, 401, 404, 405, 413, 415) and
#      validates each answer against openapi.yaml;
#   6. provokes the 503 (the local main queue deleted) and checks Retry-After;
#   7. stops the stack (its whole process group), whatever happened.
#
# Prints a summary ending with `api-contract: N passed, M failed`; exits non-zero on any failure.
# Tools come from requirements-dev.txt and requirements-contract.txt, installed into ./.venv.
# Settings: API_CONTRACT_EXAMPLES (schemathesis examples per operation, default 100),
# API_CONTRACT_SEED (schemathesis seed, default random), API_CONTRACT_KEEP=1 (keep the work dir).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Nothing leaves this machine: no proxy, and every URL below is http://127.0.0.1.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' no_proxy='*'

# shellcheck source=tools.sh
source "$root/scripts/tools.sh"
stamp="$root/.venv/.requirements-contract.sha256"
want="$(sha256sum "$root/requirements-contract.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "api-contract: installing pinned tools from requirements-contract.txt"
  pip install --quiet --disable-pip-version-check -r "$root/requirements-contract.txt"
  echo "$want" > "$stamp"
fi

examples="${API_CONTRACT_EXAMPLES:-100}"
seed="${API_CONTRACT_SEED:-$(python -c 'import random; print(random.randrange(2**31))')}"
webhook_secret="test-webhook-secret"
twilio_token="test-auth-token"
spec="$root/openapi.yaml"
work="$(mktemp -d "${TMPDIR:-/tmp}/api-contract.XXXXXX")"
results="$work/results"
: > "$results"
stack_pid=""

# ---------------------------------------------------------------- bookkeeping
pass() { echo "ok    $*" | tee -a "$results"; }
fail() { echo "FAIL  $*" | tee -a "$results"; }

stop_stack() {
  [ -n "$stack_pid" ] || return 0
  local group="$stack_pid"
  stack_pid=""
  # The stack runs in its own process group (setsid): relay, and the moto server it started.
  kill -INT -- "-$group" 2>/dev/null || return 0
  for signal in INT TERM KILL; do
    [ "$signal" = INT ] || kill "-$signal" -- "-$group" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 -- "-$group" 2>/dev/null || { wait "$group" 2>/dev/null || true; return 0; }
      sleep 0.2
    done
  done
}

summarized=0
summarize() {
  summarized=1
  local passed failed reached
  passed="$(grep -c '^ok' "$results" || true)"
  failed="$(grep -c '^FAIL' "$results" || true)"
  reached="$(sed -n 's/^ok .* -> \([0-9][0-9][0-9]\)$/\1/p' "$results" | sort -u | tr '\n' ' ')"
  echo
  echo "api-contract summary (schemathesis seed $seed, $examples examples per operation):"
  grep '^ok    schemathesis' "$results" | sed 's/^ok    /  /' || true
  echo "  statuses reached with crafted requests: ${reached:-none}"
  if [ "$failed" != 0 ]; then
    echo "  failures:"
    grep '^FAIL' "$results" | sed 's/^FAIL  /    /'
  fi
  echo "api-contract: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

finish() {
  local status=$?
  trap - EXIT INT TERM
  stop_stack
  if [ "$summarized" != 1 ]; then
    # Stopped early (a build error, the stack not starting, a signal): still end with the count.
    [ "$status" = 0 ] || grep -q '^FAIL' "$results" || fail "stopped early (exit $status)"
    summarize || true
    [ "$status" != 0 ] || status=1
  fi
  if [ "${API_CONTRACT_KEEP:-0}" = 1 ] || [ "$status" != 0 ] || grep -q '^FAIL' "$results" 2>/dev/null; then
    echo "api-contract: logs kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers (Python, in the work dir)
cat > "$work/contract_hooks.py" <<'PY'
"""Schemathesis hooks: optional signing of each request with the local secrets, and a tally of
the answers by method, path and status."""
import atexit
import base64
import collections
import hashlib
import hmac
import json
import os
import threading
import urllib.parse

import requests.adapters
import schemathesis

SIGN = os.environ.get("CONTRACT_SIGN") == "1"
WEBHOOK_SECRET = os.environ.get("CONTRACT_WEBHOOK_SECRET", "").encode()
TWILIO_TOKEN = os.environ.get("CONTRACT_TWILIO_TOKEN", "").encode()
STATS = os.environ.get("CONTRACT_STATS")
_tally = collections.Counter()
_lock = threading.Lock()
_send = requests.adapters.HTTPAdapter.send


def _body_bytes(request):
    """The exact bytes that will be sent (a str body becomes bytes here, as http.client would)."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        try:
            body = body.encode("latin-1")
        except UnicodeEncodeError:
            body = body.encode("utf-8")
        request.body = body
        if "Content-Length" in request.headers:
            request.headers["Content-Length"] = str(len(body))
    return bytes(body) if isinstance(body, (bytes, bytearray)) else None


def _media_type(request):
    return (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _sign(request):
    parts = urllib.parse.urlsplit(request.url)
    if parts.hostname != "127.0.0.1":
        return
    path = parts.path.rstrip("/")
    body = _body_bytes(request)
    if body is None:
        return
    if path == "/webhooks/genesys":
        digest = hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).digest()
        request.headers["X-Hub-Signature-256"] = "sha256=" + base64.b64encode(digest).decode()
    elif path == "/webhooks/twilio/status":
        query = parts.query
        if _media_type(request) == "application/x-www-form-urlencoded":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return  # the receiver answers 400 before authenticating
            params = sorted(set(urllib.parse.parse_qsl(text, keep_blank_values=True)))
        else:
            kept = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k != "bodySHA256"]
            kept.append(("bodySHA256", hashlib.sha256(body).hexdigest()))
            query = urllib.parse.urlencode(kept)
            request.url = urllib.parse.urlunsplit(parts._replace(query=query))
            params = []
        # The receiver signs PUBLIC_BASE_URL (the local base URL) + the route's path + the query.
        url = f"{parts.scheme}://{parts.netloc}/webhooks/twilio/status" + (f"?{query}" if query else "")
        signed = (url + "".join(k + v for k, v in params)).encode("utf-8")
        mac = hmac.new(TWILIO_TOKEN, signed, hashlib.sha1).digest()
        request.headers["X-Twilio-Signature"] = base64.b64encode(mac).decode()


def _signing_send(self, request, *args, **kwargs):
    _sign(request)
    return _send(self, request, *args, **kwargs)


if SIGN:
    requests.adapters.HTTPAdapter.send = _signing_send


@schemathesis.hook
def after_call(context, case, response):
    with _lock:
        _tally[f"{case.method.upper()} {case.path} {response.status_code}"] += 1


@atexit.register
def _write_tally():
    if STATS:
        with open(STATS, "w") as out:
            json.dump(dict(_tally), out)
PY

cat > "$work/probe.py" <<'PY'
"""Crafted requests against the local receiver, each answer checked against openapi.yaml.

usage: probe.py SPEC BASE_URL AWS_ENDPOINT WEBHOOK_SECRET TWILIO_TOKEN PHASE
PHASE: misconfigured (500) | statuses (200 202 400 401 404 405 413 415) | unavailable (503)
Prints `ok <what>` or `FAIL <what>: <why>` per check."""
import base64
import hashlib
import hmac
import http.client
import json
import sys
import urllib.parse
import uuid

import boto3
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

spec_path, base_url, aws_endpoint, webhook_secret, twilio_token, phase = sys.argv[1:7]
base = urllib.parse.urlsplit(base_url)
assert base.hostname == "127.0.0.1", "the receiver must be on 127.0.0.1"
assert urllib.parse.urlsplit(aws_endpoint).hostname == "127.0.0.1", "the local AWS must be on 127.0.0.1"
with open(spec_path) as f:
    spec = yaml.safe_load(f)
registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
failures = 0


def report(ok, what, why=""):
    global failures
    if ok:
        print(f"ok    {what}", flush=True)
    else:
        failures += 1
        print(f"FAIL  {what}: {why}", flush=True)


def pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(ref):
    node = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def documented(path, method, status):
    """(response object, JSON pointer to it) as openapi.yaml documents it, following $ref."""
    if path in spec["paths"]:
        item = spec["paths"][path]
        if method.lower() not in item:  # a 405: documented on the path's own operations
            method = next(m for m in item if str(status) in item[m].get("responses", {}))
        response = item[method.lower()]["responses"].get(str(status))
        where = "#/" + pointer("paths", path, method.lower(), "responses", status)
    else:
        response = spec["components"]["responses"]["NotFound"] if status == 404 else None
        where = "#/components/responses/NotFound"
    if response is None:
        return None, None
    if "$ref" in response:
        where = response["$ref"]
        response = resolve(where)
    return response, where


def request(method, path, body=b"", headers=None):
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def check(what, method, path, expect, body=b"", headers=None, doc_path=None, allow=None, extra=None):
    """Sends one request; checks the status, the documented body schema and headers."""
    try:
        status, got_headers, raw = request(method, path, body, headers)
    except OSError as error:
        return report(False, what, f"request failed: {error}")
    if status != expect:
        return report(False, what, f"expected {expect}, got {status}: {raw[:200]!r}")
    response, where = documented(doc_path or path.split("?")[0], method, status)
    if response is None:
        return report(False, what, f"{status} is not documented for {method} {doc_path or path}")
    problems = []
    for name, header in (response.get("headers") or {}).items():
        header = resolve(header["$ref"]) if "$ref" in header else header
        value = got_headers.get(name.lower())
        if value is None:
            if header.get("required"):
                problems.append(f"missing header {name}")
        elif header.get("schema", {}).get("type") == "integer":
            if not value.isdigit() or int(value) < header["schema"].get("minimum", 0):
                problems.append(f"header {name}: {value!r} is not an integer >= minimum")
    if allow is not None and got_headers.get("allow") != allow:
        problems.append(f"Allow is {got_headers.get('allow')!r}, expected {allow!r}")
    content = response.get("content")
    document = None
    if content and method != "HEAD":
        media = got_headers.get("content-type", "").split(";")[0].strip()
        if media not in content:
            problems.append(f"content type {media!r} not documented")
        else:
            try:
                document = json.loads(raw)
            except ValueError:
                problems.append(f"body is not JSON: {raw[:200]!r}")
            else:
                schema_ref = f"urn:spec{where}/" + pointer("content", media, "schema")
                validator = Draft202012Validator({"$ref": schema_ref}, registry=registry)
                problems += [f"schema: {e.message}" for e in validator.iter_errors(document)]
    if not problems and extra is not None:
        problems += extra(document, got_headers)
    report(not problems, f"{what} -> {status}", "; ".join(problems))


def hub_signature(body):
    digest = hmac.new(webhook_secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def signed_genesys(body, content_type="application/json"):
    return {"Content-Type": content_type, "X-Hub-Signature-256": hub_signature(body)}


def twilio_signature(url, params):
    signed = url + "".join(k + v for k, v in sorted(set(params)))
    mac = hmac.new(twilio_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def twilio_form(params):
    body = urllib.parse.urlencode(params).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(f"{base_url}/webhooks/twilio/status", params),
    }
    return body, headers


def is_id(expected):
    return lambda document, _: [] if document.get("id") == expected else [f"id is {document.get('id')!r}, expected {expected!r}"]


def secretsmanager():
    return boto3.client("secretsmanager", endpoint_url=aws_endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


GENESYS = "/webhooks/genesys"
TWILIO = "/webhooks/twilio/status"
run_id = uuid.uuid4().hex

if phase == "misconfigured":
    # 500: the deployment's webhook secret is malformed. Must run before any other Genesys
    # webhook, while the receiver has not cached the secret; the secret is restored right after.
    sm = secretsmanager()
    name = "genesys-relay/GenesysWebhookSecret"
    original = sm.get_secret_value(SecretId=name)["SecretString"]
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"secrets": []}))
    try:
        body = json.dumps({"topicName": "contract.misconfigured", "run": run_id}).encode()
        check("POST /webhooks/genesys with the webhook secret malformed", "POST", GENESYS, 500,
              body, signed_genesys(body))
    finally:
        sm.put_secret_value(SecretId=name, SecretString=original)
    body = json.dumps({"topicName": "contract.restored", "run": run_id}).encode()
    check("POST /webhooks/genesys after the secret was restored", "POST", GENESYS, 202, body,
          signed_genesys(body), extra=is_id("sha256:" + hashlib.sha256(body).hexdigest()))

elif phase == "statuses":
    check("GET /health", "GET", "/health", 200,
          extra=lambda d, _: [] if d == {"status": "ok"} else [f"body {d!r}"])
    check("HEAD /health", "HEAD", "/health", 200)
    check("GET /health/ (trailing slash)", "GET", "/health/", 200, doc_path="/health")

    body = json.dumps({"topicName": "v2.contract.probe", "eventBody": {"conversationId": f"contract-{run_id}"}}).encode()
    check("POST /webhooks/genesys signed (X-Hub-Signature-256)", "POST", GENESYS, 202, body,
          signed_genesys(body), extra=is_id("sha256:" + hashlib.sha256(body).hexdigest()))
    body = json.dumps({"run": run_id, "kind": "cloudevent"}).encode()
    check("POST /webhooks/genesys signed, application/cloudevents+json", "POST", GENESYS, 202, body,
          signed_genesys(body, "application/cloudevents+json; charset=utf-8"))
    sid = f"SM{run_id}"
    body, headers = twilio_form([("MessageSid", sid), ("MessageStatus", "delivered"), ("To", "+14155550100")])
    check("POST /webhooks/twilio/status signed form", "POST", TWILIO, 202, body, headers,
          extra=is_id(f"{sid}:delivered"))
    body = json.dumps({"MessageSid": sid, "MessageStatus": "read"}).encode()
    query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
    headers = {"Content-Type": "application/json",
               "X-Twilio-Signature": twilio_signature(f"{base_url}{TWILIO}?{query}", [])}
    check("POST /webhooks/twilio/status signed JSON (bodySHA256)", "POST", f"{TWILIO}?{query}", 202,
          body, headers, extra=is_id("sha256:" + hashlib.sha256(body).hexdigest()))

    body = b'{"topicName": "broken",'
    check("POST /webhooks/genesys signed, malformed JSON", "POST", GENESYS, 400, body, signed_genesys(body))
    body = b'{"a": "\xff\xfe"}'
    check("POST /webhooks/genesys, body not UTF-8", "POST", GENESYS, 400, body, {"Content-Type": "application/json"})
    body, headers = twilio_form([("MessageSid", sid)])
    check("POST /webhooks/twilio/status signed form without MessageStatus", "POST", TWILIO, 400, body, headers)

    body = json.dumps({"run": run_id}).encode()
    check("POST /webhooks/genesys unsigned", "POST", GENESYS, 401, body, {"Content-Type": "application/json"})
    check("POST /webhooks/genesys with a wrong signature", "POST", GENESYS, 401, body,
          {"Content-Type": "application/json", "X-Hub-Signature-256": hub_signature(b"something else")})
    check("POST /webhooks/genesys with a malformed signature", "POST", GENESYS, 401, body,
          {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=not base64!"})
    form = urllib.parse.urlencode([("MessageSid", sid), ("MessageStatus", "sent")]).encode()
    check("POST /webhooks/twilio/status unsigned", "POST", TWILIO, 401, form,
          {"Content-Type": "application/x-www-form-urlencoded"})
    check("POST /webhooks/twilio/status with a wrong signature", "POST", TWILIO, 401, form,
          {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio_signature("http://elsewhere/", [])})

    check("POST /webhooks/other", "POST", "/webhooks/other", 404, body, {"Content-Type": "application/json"})
    check("GET /", "GET", "/", 404)

    check("GET /webhooks/genesys", "GET", GENESYS, 405, allow="POST")
    check("PUT /webhooks/twilio/status", "PUT", TWILIO, 405, form,
          {"Content-Type": "application/x-www-form-urlencoded"}, doc_path=TWILIO, allow="POST")
    check("POST /health", "POST", "/health", 405, body, {"Content-Type": "application/json"},
          doc_path="/health", allow="GET, HEAD")

    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    check("POST /webhooks/genesys, body over 1 MiB", "POST", GENESYS, 413, big, signed_genesys(big))
    check("POST /webhooks/genesys, text/plain", "POST", GENESYS, 415, body, {"Content-Type": "text/plain"})
    check("POST /webhooks/genesys, no Content-Type", "POST", GENESYS, 415, body)
    check("POST /webhooks/twilio/status, text/xml", "POST", TWILIO, 415, b"<x/>", {"Content-Type": "text/xml"})

elif phase == "unavailable":
    # 503: SQS does not take the message (the local main queue is deleted; the stack is stopped
    # right after). The secret is cached by now, so authentication still passes.
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue = sqs.get_queue_url(QueueName="genesys-relay-MainQueue")["QueueUrl"]
    assert urllib.parse.urlsplit(queue).hostname == "127.0.0.1"
    sqs.delete_queue(QueueUrl=queue)
    body = json.dumps({"topicName": "contract.unavailable", "run": run_id}).encode()
    check("POST /webhooks/genesys with the queue gone", "POST", GENESYS, 503, body, signed_genesys(body))
    sid = f"SM{run_id}"
    body, headers = twilio_form([("MessageSid", sid), ("MessageStatus", "failed")])
    check("POST /webhooks/twilio/status with the queue gone", "POST", TWILIO, 503, body, headers)
else:
    sys.exit(f"unknown phase {phase}")

sys.exit(3 if failures else 0)
PY

probe() {
  # probe.py prints `ok ...` / `FAIL ...` per check and exits 0 (all ok) or 3 (some failed);
  # any other exit (a crash, the time limit) is a failure of its own.
  local phase="$1" rc=0
  timeout 120 python "$work/probe.py" "$spec" "$base_url" "$aws_endpoint" \
    "$webhook_secret" "$twilio_token" "$phase" > "$work/probe-$phase.out" 2> "$work/probe-$phase.err" || rc=$?
  cat "$work/probe-$phase.out" >> "$results"
  cat "$work/probe-$phase.out"
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    fail "probe $phase stopped (exit $rc): $(tail -n 3 "$work/probe-$phase.err" | tr '\n' ' ')"
  fi
}

tally() {
  python - "$1" <<'PY'
import collections, json, sys
data = json.load(open(sys.argv[1]))
by_route = collections.defaultdict(collections.Counter)
for key, count in data.items():
    method, path, status = key.split(" ")
    by_route[f"{method} {path}" if method in ("POST", "GET", "HEAD") else "other methods"][status] += count
for route in sorted(by_route):
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(by_route[route].items()))
    print(f"        {route:32} {statuses}")
PY
}

schemathesis_run() {
  # $1: label, $2: 0 unsigned / 1 signed, $3: checks
  local label="$1" sign="$2" checks="$3" log="$work/schemathesis-$1.log"
  echo "api-contract: schemathesis ($label, $examples examples per operation, seed $seed)"
  local status=0
  (
    cd "$work"  # hypothesis and schemathesis keep their caches in the working directory
    PYTHONPATH="$work" SCHEMATHESIS_HOOKS=contract_hooks CONTRACT_SIGN="$sign" \
      CONTRACT_WEBHOOK_SECRET="$webhook_secret" CONTRACT_TWILIO_TOKEN="$twilio_token" \
      CONTRACT_STATS="$work/tally-$label.json" \
      timeout 180 schemathesis run "$spec" --url "$base_url" \
        --checks "$checks" --max-examples "$examples" --seed "$seed" \
        --request-timeout 15 --generation-database none --no-color --warnings off
  ) > "$log" 2>&1 || status=$?
  local cases
  cases="$(grep -E '^ +[0-9]+ generated' "$log" | sed 's/^ *//' || true)"
  if [ "$status" = 0 ]; then
    pass "schemathesis $label: ${cases:-no summary}"
  else
    fail "schemathesis $label (exit $status): ${cases:-no summary}; see below"
    sed -n '/FAILURES\|Failed\|Error/,$p' "$log" | head -n 80
  fi
  [ -f "$work/tally-$label.json" ] && tally "$work/tally-$label.json"
  return 0
}

# ---------------------------------------------------------------- 1. the document
if openapi-spec-validator "$spec" > "$work/validate.log" 2>&1; then
  pass "openapi.yaml is a valid OpenAPI 3.0 document"
else
  fail "openapi.yaml is not valid: $(tail -n 5 "$work/validate.log")"
fi

# ---------------------------------------------------------------- 2. the local stack
echo "api-contract: building relay-cli"
timeout 1200 cargo build --quiet -p relay-cli --features local
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base_url="http://127.0.0.1:$port"
echo "api-contract: starting the local stack on $base_url"
setsid cargo run --quiet -p relay-cli --features local -- local up --port "$port" \
  < /dev/null > "$work/stack.out" 2> "$work/stack.err" &
stack_pid=$!
# setsid makes it a process group leader once it has started; stopping relies on that.
for _ in $(seq 1 50); do
  [ "$(ps -o pgid= -p "$stack_pid" | tr -d ' ')" = "$stack_pid" ] && break
  sleep 0.1
done
if [ "$(ps -o pgid= -p "$stack_pid" | tr -d ' ')" != "$stack_pid" ]; then
  group="$stack_pid"; stack_pid=""
  kill -TERM "$group" 2>/dev/null || true
  echo "api-contract: the stack did not get its own process group" >&2
  exit 1
fi

healthy=0
for _ in $(seq 1 240); do
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    break
  fi
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base_url/health" || true)" = 200 ]; then
    healthy=1
    break
  fi
  sleep 0.5
done
if [ "$healthy" != 1 ]; then
  fail "the local stack did not answer GET /health with 200 within 120 s"
  tail -n 30 "$work/stack.err" >&2
  exit 1
fi
aws_endpoint="$(sed -n 's/^local AWS *\(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/stack.err" | head -n 1)"
if [ -z "$aws_endpoint" ]; then
  fail "the stack did not print its local AWS endpoint"
  exit 1
fi
pass "local stack up: receiver $base_url, local AWS $aws_endpoint"

# ---------------------------------------------------------------- 3. 500, before anything caches the secret
echo "api-contract: 500 (misconfigured secret)"
probe misconfigured

# ---------------------------------------------------------------- 4. generated requests
common_checks="not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,response_headers_conformance,unsupported_method,allow_header_conformance"
schemathesis_run unsigned 0 "$common_checks,missing_required_header,ignored_auth"
schemathesis_run signed 1 "$common_checks"

# ---------------------------------------------------------------- 5. every documented status
echo "api-contract: crafted requests"
probe statuses

# ---------------------------------------------------------------- 6. 503, last: it removes the queue
echo "api-contract: 503 (queue gone)"
probe unavailable

# ---------------------------------------------------------------- 7. stop, then the summary
stop_stack
summarize
