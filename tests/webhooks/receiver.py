#!/usr/bin/env python3
"""A webhook receiver for Maskline's end-to-end tests.

It verifies every request with an implementation of Standard Webhooks that
shares no code with Maskline: the `standardwebhooks` package from PyPI
(`Webhook(secret).verify(body, headers)`). It answers the first
`--fail-first` attempts of each `webhook-id` with 500 and later ones with
200, and appends one JSON line per request to `--log`:

    {"webhook_id", "timestamp", "signature", "verified", "error",
     "attempt", "status", "event_id", "type", "body"}

The secret is read from `--secret-file` at each request (the test writes it
after `PUT /v1/webhook`); with no secret yet, verification fails and the
request is answered 500. The first line on stdout is `listening PORT`.

    python3 receiver.py --secret-file F --log L [--port 0] [--fail-first 2]
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-first", type=int, default=2)
    args = parser.parse_args()

    attempts = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            msg_id = headers.get("webhook-id", "")
            entry = {
                "webhook_id": msg_id,
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "verified": False,
                "error": None,
                "event_id": None,
                "type": None,
                "body": body.decode("utf-8", "replace"),
            }
            try:
                with open(args.secret_file, encoding="utf-8") as f:
                    secret = f.read().strip()
                payload = Webhook(secret).verify(body, headers)
                entry["verified"] = True
                entry["event_id"] = payload.get("id")
                entry["type"] = payload.get("type")
            except Exception as e:  # noqa: BLE001 - every failure is logged
                entry["error"] = f"{type(e).__name__}: {e}"
            with lock:
                n = attempts.get(msg_id, 0) + 1
                attempts[msg_id] = n
                status = 200 if entry["verified"] and n > args.fail_first else 500
                entry["attempt"] = n
                entry["status"] = status
                with open(args.log, "a", encoding="utf-8") as log:
                    log.write(json.dumps(entry) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, fmt, *a):
            sys.stderr.write("receiver: " + (fmt % a) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
