"""Cold start and footprint of each function's release `bootstrap`, under a minimal local Lambda
Runtime API on 127.0.0.1.

For each function and run: exec the bootstrap with the Runtime API's address, time exec -> its
first GET /next (init: every client constructed) and /next -> its response (the first
invocation), and read its peak RSS (VmHWM) once it answered. Prints medians beside the targets and
the lambda-perf anchors (its published hello-world figures).

Usage: python scripts/cold_start.py [--runs N] [--build]
  --build   build the release binaries first (cargo build --release for the three functions)
Host binaries are measured (x86_64 here); the deployed ones are arm64. Sizes of the arm64 zips come
from `cargo lambda build --release --arm64 --output-format zip` (see BENCHMARKS.md).
"""
import argparse
import http.server
import json
import pathlib
import statistics
import subprocess
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREFIX = "/2018-06-01/runtime"

# One cheap invocation per function: no AWS call on the way.
EVENTS = {
    "receiver": {
        "version": "2.0", "routeKey": "GET /health", "rawPath": "/health", "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                           "domainPrefix": "abc123", "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1",
                                                              "sourceIp": "203.0.113.10", "userAgent": "probe"},
                           "requestId": "cold-1", "routeKey": "GET /health", "stage": "$default",
                           "time": "22/Nov/2026:05:00:00 +0000", "timeEpoch": 1795150800000},
        "isBase64Encoded": False,
    },
    "processor": {"Records": []},
    "eventbridge-handler": json.loads((ROOT / "events" / "eventbridge-customer-end.json").read_text()),
}

SETTINGS = {
    "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "1",
    "QUEUE_URL": "http://127.0.0.1:9/123456789012/main", "DLQ_URL": "http://127.0.0.1:9/123456789012/dlq",
    "TABLE_NAME": "state", "CLAIM_CHECK_BUCKET": "claims",
    "GENESYS_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook",
    "TWILIO_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:twilio",
    "GENESYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:genesys",
}


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Serves one event, records when /next and the response arrived, then holds /next."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server.state
        if not self.path.startswith(f"{PREFIX}/invocation/next"):
            self.send_error(404)
            return
        if state.get("next") is None:
            state["next"] = time.perf_counter()
            body = json.dumps(self.server.event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-start-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:probe")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            state["done"].wait(10)
            self.send_error(410)

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        state["answered"] = time.perf_counter()
        state["ok"] = self.path.endswith("/response")
        state["payload"] = payload[:300]
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        state["answered_event"].set()


class QuietServer(http.server.ThreadingHTTPServer):
    """The held second /next ends with a broken pipe when the function is stopped: expected."""

    def handle_error(self, request, client_address):
        pass


def measure(function, binary):
    server = QuietServer(("127.0.0.1", 0), RuntimeApi)
    server.event = EVENTS[function]
    server.state = {"next": None, "answered_event": threading.Event(), "done": threading.Event()}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = dict(SETTINGS, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME=function, PATH="/usr/bin:/bin")
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not server.state["answered_event"].wait(30):
            raise RuntimeError(f"{function}: no answer within 30 s: {process.stderr.read1(2000)!r}")
        rss_kb = next(int(line.split()[1]) for line in open(f"/proc/{process.pid}/status") if line.startswith("VmHWM:"))
        state = server.state
        if not state["ok"]:
            raise RuntimeError(f"{function}: invocation error: {state['payload']!r}")
        return (state["next"] - started) * 1000, (state["answered"] - state["next"]) * 1000, rss_kb / 1024
    finally:
        server.state["done"].set()
        process.kill()
        process.wait()
        server.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--build", action="store_true")
    args = parser.parse_args()
    if args.build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "receiver", "-p", "processor", "-p", "eventbridge-handler"],
                       cwd=ROOT, check=True)
    print(f"{'function':22} {'init ms (median)':>17} {'first invoke ms':>16} {'peak RSS MB':>12} {'binary MB':>10}")
    worst_init, worst_rss = 0.0, 0.0
    for function in EVENTS:
        binary = ROOT / "target" / "release" / function
        runs = [measure(function, binary) for _ in range(args.runs)]
        init = statistics.median(r[0] for r in runs)
        invoke = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        worst_init, worst_rss = max(worst_init, init), max(worst_rss, rss)
        size = binary.stat().st_size / 1_000_000
        print(f"{function:22} {init:17.1f} {invoke:16.1f} {rss:12.1f} {size:10.1f}")
    print(f"targets: init <= 20 ms median ({'met' if worst_init <= 20 else 'NOT met'}), "
          f"peak RSS <= 32 MB ({'met' if worst_rss <= 32 else 'NOT met'})")
    print("lambda-perf anchors (hello world, 128 MB, Aug 2026): Rust al2023 arm64 init 13.9 ms, 14.9 MB; "
          "Go ~42 ms; Python 3.13 80.6 ms, 35 MB; Node 22 124 ms, 73 MB; Java 21 242 ms, 93 MB")


if __name__ == "__main__":
    main()
