#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the sample events in events/ (run from anywhere).

Each seed is in the textual input format of fuzz/src/lib.rs: a URL line and `name: value` lines,
an empty line, then the body. Signatures use the fixed keys of the fuzz targets, so the seeds
start the fuzzer on the accepting paths as well as the rejecting ones. Other files in seeds/
(inputs worth keeping that the fuzzer found, such as long-float) are left as they are.
"""
import base64
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SEEDS = ROOT / "fuzz" / "seeds"
API = "https://abc123.execute-api.us-east-1.amazonaws.com"


def event(name):
    return json.loads((EVENTS / name).read_text())


def request(url, headers, body):
    head = [url] + [f"{k}: {v}" for k, v in headers]
    if isinstance(body, str):
        body = body.encode()
    return "\n".join(head).encode() + b"\n\n" + body


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / name).write_bytes(data)


def api_request(name):
    """URL, headers and body of an API Gateway sample event."""
    e = event(name)
    return API + e["rawPath"], list(e["headers"].items()), e["body"]


def b64(raw):
    return base64.b64encode(raw).decode()


# auth_hmac: the receiver samples as sent, and the same bodies signed with the target's keys.
hmac_key = b"It's a Secret to Everybody"
for name in ["receiver-genesys-webhook", "receiver-genesys-bad-signature", "receiver-genesys-malformed"]:
    url, headers, body = api_request(name + ".json")
    write("auth_hmac", name, request(url, headers, body))
url, headers, body = api_request("receiver-genesys-webhook.json")
mac = hmac.new(hmac_key, body.encode(), hashlib.sha256).digest()
write("auth_hmac", "signed-base64", request(url, [("content-type", "application/json"),
      ("x-hub-signature-256", "sha256=" + b64(mac))], body))
write("auth_hmac", "signed-hex", request(url, [("x-signature", "v1=" + mac.hex())], body))
write("auth_hmac", "empty-body", request(url, [("x-hub-signature-256", "sha256=")], ""))

# auth_standard_webhooks: the specification's test vector, then a Genesys body.
sw_key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def sw_sign(msg_id, ts, body):
    mac = hmac.new(sw_key, f"{msg_id}.{ts}.".encode() + body.encode(), hashlib.sha256).digest()
    return "v1," + b64(mac)


spec_body = '{"test": 2432232314}'
assert sw_sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, spec_body) == \
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
write("auth_standard_webhooks", "spec-vector", request("https://relay.example.com/webhooks/std", [
    ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("webhook-timestamp", "1614265330"),
    ("webhook-signature", sw_sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, spec_body))], spec_body))
write("auth_standard_webhooks", "several-entries", request("https://relay.example.com/webhooks/std", [
    ("webhook-id", "msg_2"), ("webhook-timestamp", "1614265200"),
    ("webhook-signature", "v1a,AAAA v2,BBBB= v1, " + sw_sign("msg_2", 1614265200, body))], body))
write("auth_standard_webhooks", "clock", request("https://relay.example.com/webhooks/std", [
    ("@now", "-9223372036854775808"), ("webhook-id", "msg_3"),
    ("webhook-timestamp", "99999999999999999999"), ("webhook-signature", "v1,====")], "{}"))

# auth_basic_bearer: each scheme with the target's credentials, and the Genesys body.
basic = "genesys:correct horse battery staple"
for name, headers in [
    ("basic", [("authorization", "Basic " + b64(basic.encode()))]),
    ("bearer", [("authorization", "Bearer token-0123456789")]),
    ("api-key", [("x-api-key", "token-0123456789")]),
    ("wrong-scheme", [("authorization", "Digest username=x"), ("x-api-key", "")]),
]:
    write("auth_basic_bearer", name, request(url, [("content-type", "application/json")] + headers, body))
write("auth_basic_bearer", "bare-credential", b"https://x/y\nauthorization: Basic\n\nuser:pass")

# auth_twilio: the status callback sample, and the same request signed with the target's keys.
url, headers, body = api_request("receiver-twilio-status.json")
write("auth_twilio", "receiver-twilio-status", request(url, headers, body))


def twilio_sign(key, digest, url, params):
    data = url + "".join(n + v for n, v in sorted(set(params)))
    return b64(hmac.new(key, data.encode(), digest).digest())


from urllib.parse import parse_qsl  # noqa: E402

params = parse_qsl(body, keep_blank_values=True)
form = ("content-type", "application/x-www-form-urlencoded")
write("auth_twilio", "auth-token", request(url, [form,
      ("x-twilio-signature", twilio_sign(b"12345", hashlib.sha1, url, params))], body))
write("auth_twilio", "shared-key", request(url.replace(".com/", ".com:443/", 1), [form,
      ("x-twilio-webhooks-signature-settings", "key=KS1,algorithm=HMAC_SHA256"),
      ("x-twilio-signature", twilio_sign(b"shared-secret", hashlib.sha256, url, params))], body))
json_body = '{"MessageSid":"SM0123456789abcdef0123456789abcdef","MessageStatus":"delivered"}'
json_url = url + "?bodySHA256=" + hashlib.sha256(json_body.encode()).hexdigest()
write("auth_twilio", "json-body", request(json_url, [("content-type", "application/json"),
      ("x-twilio-signature", twilio_sign(b"12345", hashlib.sha1, json_url, []))], json_body))
write("auth_twilio", "ports", request("https://[::1]:8443/webhooks/twilio/status?a=1&a=1#f", [form,
      ("x-twilio-signature", "AAAA")], "a=1&a=1&b=%zz"))

# event_parsers: whole events, their details, webhook bodies and a queued message.
for path in sorted(EVENTS.glob("eventbridge-*.json")):
    write("event_parsers", path.stem, path.read_bytes())
    write("event_parsers", path.stem + "-detail", json.dumps(event(path.name)["detail"]))
for name in ["receiver-genesys-webhook", "receiver-genesys-malformed"]:
    write("event_parsers", name + "-body", event(name + ".json")["body"])
record = event("processor-sqs-batch.json")["Records"][0]
attrs = [(k, v["stringValue"]) for k, v in record["messageAttributes"].items()]
write("event_parsers", "queued-message", "\n".join(f"{k}: {v}" for k, v in attrs) + "\n\n" + record["body"])
claim = {"bucket": "relay-bucket", "key": "claim-checks/" + "0" * 64, "size": 12, "sha256": "0" * 64}
write("event_parsers", "claim-check", "\n".join(f"{k}: {v}" for k, v in attrs)
      + "\nclaim-check: s3\n\n" + json.dumps(claim))
write("event_parsers", "key-rule", "pointers: /eventBody/conversationId,/eventBody/wrapupCode,/x~1y\n"
      "webhook-id: msg_1\n\n" + json.dumps(event("eventbridge-acw.json")["detail"]))
write("event_parsers", "iso-time", '{"topicName":"t","eventBody":{"eventTime":"2026-11-22T05:00:00.123+01:00"},'
      '"conversation":{"id":"c"}}')

# form_parser: the Twilio callback body, variants, and forwarding-job attributes.
twilio_body = event("receiver-twilio-status.json")["body"]
write("form_parser", "twilio-status", twilio_body)
write("form_parser", "twilio-failed", "MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003&ErrorCode=")
write("form_parser", "encoded", "Message%53id=%E2%9C%93+x&MessageStatus=sent&=&&x")
write("form_parser", "jobs", "crm;1;0\ncrm-2;18446744073709551615;4294967295\n;1;2\na;b;c;d")
write("form_parser", "json-event", record["body"])

# rules: the documented examples and the ones the tests use.
write("rules", "sms-on-wrapup", json.dumps({"smsOnWrapup": {
    "templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}. Reply to this text to talk to us.",
                  "Callback-Requested": "We will call you back about {{conversationId}}."},
    "messagingServiceSid": "MG0123456789abcdef0123456789abcdef"},
    "deliveryStatus": {"attributePrefix": "sms."}}))
write("rules", "forward", json.dumps({"forward": {"maxAttempts": 8, "endpoints": [
    {"name": "crm", "url": "https://crm.example.com/hooks/genesys",
     "eventTypes": ["v2.detail.events.conversation.{id}.acw", "twilio.message-status"],
     "auth": {"type": "bearer", "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:crm-token"},
     "signingSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:crm-signing",
     "timeoutSecs": 10, "concurrency": 4},
    {"name": "all", "url": "http://[::1]:8080/x", "auth": {"type": "basic", "secretArn": "a"}}]}}))
write("rules", "numbers", json.dumps({"smsOnWrapup": {
    "templates": {"Sale": "{{ wrapupCode }} {{campaignId}} {{contact.score}} {{unclosed"},
    "numberPointers": ["/contact/phone", "/customerNumber"], "from": "+15005550006"}}))
write("rules", "template", "Hi {{contact.firstName}}, {{conversationId}} {{ contact.tags }}{{}}{{{{x}}}}}")
write("rules", "patterns", "v2.detail.events.conversation.{id}.acw\n*\nv2.*.events\n..\n")
