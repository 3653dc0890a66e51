"""`make run` then `make demo`, as a developer would type them (the module entry points)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.defaults import free_port
from tests.integration.conftest import http

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_make_run_then_make_demo_shows_a_ticket_per_conversation(tmp_path: Path, helpdesk: str) -> None:
    state_file = tmp_path / "local.json"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ZENDESK_", "FRESHDESK_", "GOOGLE_", "X_", "HELPDESK", "META_", "TELEGRAM_", "LINE_", "WHATSAPP_", "TABLE_NAME", "STREAM_ARN", "DLQ_URL"))
    }
    env.update(
        PORT=str(free_port()),
        MOTO_PORT=str(free_port()),
        ZENDESK_SANDBOX_PORT=str(free_port()),
        FRESHDESK_SANDBOX_PORT=str(free_port()),
        GOOGLE_SANDBOX_PORT=str(free_port()),
        X_SANDBOX_PORT=str(free_port()),
        META_SANDBOX_PORT=str(free_port()),
        TELEGRAM_SANDBOX_PORT=str(free_port()),
        LINE_SANDBOX_PORT=str(free_port()),
        HELPDESK=helpdesk,
        SOCIALDESK_STATE_FILE=str(state_file),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "run.log"
    with log.open("w") as output:
        stack = subprocess.Popen(
            [sys.executable, "-m", "local.run"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 90
            while not state_file.exists():
                assert stack.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "make run did not come up:\n" + log.read_text()
                time.sleep(0.3)
            state = json.loads(state_file.read_text())
            assert http("GET", f"{state['app_url']}/health").status == 200
            banner = log.read_text()
            assert f"{state['app_url']}/webhooks/meta" in banner and "/api/v2/tickets" in banner

            demo = subprocess.run(
                [sys.executable, "-m", "local.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
            )
            assert demo.returncode == 0, demo.stdout + demo.stderr + log.read_text()
            assert "all messages arrived" in demo.stdout
            assert "was recognised and stored nothing" in demo.stdout
            for label in ("Facebook", "Messenger", "Instagram", "WhatsApp", "X ", "Telegram", "LINE", "Trustpilot review", "Google review", "Jo Polled", "Facebook review"):
                assert label in demo.stdout, label
        finally:
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stack.kill()
                raise
    assert stack.returncode == 0, log.read_text()
    assert not state_file.exists()  # Ctrl-C cleans up after itself
