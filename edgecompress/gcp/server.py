"""The bundle's app served for real: ``python -m functions_framework`` (gunicorn, as on Cloud
Functions and in the Cloud Run image) on 127.0.0.1 and a free port, in its own process group;
``post`` sends one HTTP request. The server is always stopped (the whole group) on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from edgecompress.awslambda.selfcheck import init_timings_in
from edgecompress.errors import ValidationError
from edgecompress.gcp.target import ENTRY_POINT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """functions-framework over ``app_dir`` with ``python`` (a venv's, or the host's)."""

    def __init__(self, app_dir: Path, python: str, threads: int = 8, ready_timeout_s=120):
        self.app_dir, self.python, self.threads = Path(app_dir), str(python), threads
        self.ready_timeout_s = ready_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> AppServer:
        self.log = open(self.app_dir.parent / f"server-{self.port}.log", "w+b")  # noqa: SIM115
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                self.python,
                "-m",
                "functions_framework",
                "--target",
                ENTRY_POINT,
                "--source",
                "main.py",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=self.app_dir,
            env=self._env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.ready_ms = self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.app_dir.parent),
            "PYTHONDONTWRITEBYTECODE": "1",  # the bundle folder stays as built
            "THREADS": str(self.threads),
            "WORKERS": "1",
            "K_SERVICE": "edgecompress-selfcheck",
            "FUNCTION_TARGET": ENTRY_POINT,
        }

    def _wait_ready(self) -> float:
        """ms from the process start until it answers HTTP (a GET gets the adapter's 405)."""
        deadline = time.perf_counter() + self.ready_timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise ValidationError(
                    f"gcp self-check: functions-framework exited ({self.proc.returncode}) "
                    f"before answering: {self.log_tail()}"
                )
            try:
                status, _ = self.request(b"", method="GET", timeout=2)
                return (time.perf_counter() - self.started) * 1e3 if status else 0.0
            except OSError:
                time.sleep(0.1)
        raise ValidationError(
            f"gcp self-check: functions-framework did not answer within "
            f"{self.ready_timeout_s:g} s: {self.log_tail()}"
        )

    def request(self, body: bytes, method: str = "POST", timeout: float = 60) -> tuple[int, bytes]:
        """(status, body) of one request to ``/``."""
        req = urllib.request.Request(
            self.url,
            data=body if method != "GET" else None,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1)
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def post_json(self, body: bytes, timeout: float = 60) -> tuple[int, dict, float]:
        """(status, decoded JSON answer, seconds) of one POST."""
        t = time.perf_counter()
        status, raw = self.request(body, timeout=timeout)
        seconds = time.perf_counter() - t
        try:
            return status, json.loads(raw), seconds
        except ValueError:
            return status, {"not_json": raw[:300].decode(errors="replace")}, seconds

    def log_tail(self, chars: int = 1500) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def init_timings(self) -> dict:
        return init_timings_in(self.log_tail(1 << 20))

    def __exit__(self, *exc) -> None:
        """Stop the whole process group (gunicorn's master and its workers)."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError):  # workers of a master that died first
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        self.log.close()
