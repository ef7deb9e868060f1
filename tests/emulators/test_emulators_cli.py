"""`opsgate emulators` starts every vendor emulator and prints URLs that answer."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx


def test_emulators_command_prints_working_urls_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "emulators"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        urls = {}
        deadline = time.monotonic() + 30
        while len(urls) < 4 and time.monotonic() < deadline:
            name, url = proc.stdout.readline().split()
            urls[name] = url
        assert set(urls) == {"opentext", "canto", "iconik", "confluence"}
        for url in urls.values():
            response = httpx.post(url + "/_control/reset", timeout=5)
            assert response.status_code in (200, 204), url
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
