"""No secret reaches any log: ``trackguard serve`` at debug level, as a real process.

The gateway runs with upstream credentials, per-source client keys, a metrics token and a
Slack alert channel (a loopback receiver; its webhook URL is a secret). The test drives
accepted, refused, quarantined and unauthenticated traffic (a wrong key too) and an alert
notification, then reads everything the run wrote: stderr, the request log and the store
(the quarantine) byte for byte. No secret appears there, raw or as the base64 of a Basic
``Authorization`` header.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.store.quarantine import list_quarantine, record_to_dict

SITE = "tg-site-4417"
API_KEY = "upstream-Key-9f3e71c2"
WEB_KEY = "client-web-Key-55d0aa"
APP_KEY = "client-app-Key-8c1b02"
METRICS_TOKEN = "metrics-Token-e4f7c9"
WRONG_KEY = "wrong-Key-b6a2d4"
SLACK_PATH = "/services/T0SECRET/B0SECRET/slack-Token-0c9d8e"


class Slack(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append(body)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Handler", (Slack,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{SLACK_PATH}", received
    server.shutdown()
    server.server_close()


def wait_for(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_serve_at_debug_level_logs_no_secret(
    tmp_path: Path, slack: tuple[str, list[bytes]]
) -> None:
    slack_url, notifications = slack
    (tmp_path / "gateway.yaml").write_text(
        "clients:\n"
        f"  - {{source: web, site_id: web-site, api_key: {WEB_KEY}}}\n"
        f"  - {{source: app, site_id: app-site, api_key: {APP_KEY}}}\n"
    )
    (tmp_path / "alerts.yaml").write_text(
        "settings: {evaluate_every: 1s}\n"
        'channels:\n  slack: {type: slack, url: "${SLACK_WEBHOOK_URL}"}\n'
        "rules:\n"
        "  - {name: bad-json, kind: count, codes: [invalid_json], window: 5m, channels: [slack]}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKGUARD_")}
    env |= {
        "TRACKGUARD_SITE_ID": SITE,
        "TRACKGUARD_API_KEY": API_KEY,
        "TRACKGUARD_METRICS_TOKEN": METRICS_TOKEN,
        "SLACK_WEBHOOK_URL": slack_url,
    }
    emulator = create_emulator(SITE, API_KEY)
    stderr: list[str] = []
    stdout: list[str] = []  # uvicorn's access log, at debug level
    with start_in_thread(emulator) as upstream:
        process = subprocess.Popen(
            [sys.executable, "-m", "trackguard", "serve", "--db", "tg.db", "--listen",
             "127.0.0.1:0", "--upstream", upstream.url, "--config", "gateway.yaml",
             "--alerts", "alerts.yaml", "--request-log", "requests.jsonl", "--log-level",
             "debug"],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        readers = [
            threading.Thread(target=lambda: stderr.extend(process.stderr or ()), daemon=True),
            threading.Thread(target=lambda: stdout.extend(process.stdout or ()), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            wait_for("the gateway", lambda: any("listening on" in line for line in stderr))
            url = re.search(r"listening on (\S+)", "".join(stderr)).group(1)  # type: ignore[union-attr]
            events = "/api/v1/customers/cus_1/events"
            with httpx.Client(base_url=url, timeout=10) as client:
                web, app, wrong = (
                    ("web-site", WEB_KEY),
                    ("app-site", APP_KEY),
                    ("web-site", WRONG_KEY),
                )
                assert client.post(events, json={"name": "signup"}, auth=web).status_code == 200
                assert (
                    client.put(
                        "/api/v1/customers/cus_1", json={"email": "a@b.co"}, auth=app
                    ).status_code
                    == 200
                )
                bad = client.post(events, content=b"{not json", auth=web)
                assert bad.status_code == 400
                assert client.post(events, json={"name": "x"}, auth=wrong).status_code == 401
                assert (
                    client.post(events, json={"name": "x"}, auth=(SITE, WRONG_KEY)).status_code
                    == 401
                )
                assert client.post(events, json={"name": "x"}).status_code == 401
                client.get("/metrics", headers={"authorization": f"Bearer {WRONG_KEY}"})
                metrics = client.get(
                    "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
                )
                assert metrics.status_code == 200
                assert "trackguard_delivery_circuit_open 0.0" in metrics.text
            wait_for("the Slack notification", lambda: bool(notifications))
            wait_for("delivery", lambda: len(emulator.state.events) == 1)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
            for reader, pipe in zip(readers, (process.stderr, process.stdout), strict=True):
                reader.join(10)
                if pipe is not None:
                    pipe.close()
    assert b"bad-json" in notifications[0]
    log = "".join(stderr)
    assert " DEBUG trackguard.delivery: round: " in log  # the level is debug
    assert '"POST /api/v1/customers/cus_1/events HTTP/1.1" 401' in "".join(stdout)
    written = {
        "stderr": log.encode(),
        "stdout": "".join(stdout).encode(),
        "request log": (tmp_path / "requests.jsonl").read_bytes(),
        "store": b"".join(p.read_bytes() for p in tmp_path.glob("tg.db*")),
        "quarantine": repr(
            [record_to_dict(r) for r in list_quarantine(tmp_path / "tg.db")]
        ).encode(),
    }
    assert b"{not json" in written["quarantine"]  # the quarantine is not empty
    secrets = [API_KEY, WEB_KEY, APP_KEY, METRICS_TOKEN, WRONG_KEY, slack_url, SLACK_PATH]
    for user, key in [(SITE, API_KEY), ("web-site", WEB_KEY), ("app-site", APP_KEY),
                      ("web-site", WRONG_KEY), (SITE, WRONG_KEY)]:  # fmt: skip
        secrets.append(base64.b64encode(f"{user}:{key}".encode()).decode())
    for where, data in written.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} is in the {where}"
