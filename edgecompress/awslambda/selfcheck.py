"""Run a Lambda zip the way Lambda does: a local Runtime API server plus a fresh interpreter
under awslambdaric that sees only the zip's contents, the standard library and awslambdaric.

``LocalFunction`` starts the server (127.0.0.1, free port, threads) and the child process;
``invoke`` sends one event and waits for its answer. Both are always stopped (timeouts).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edgecompress.awslambda.target import Target, arch_of, host_python
from edgecompress.awslambda.wheels import fetch_wheels, unpack
from edgecompress.errors import ValidationError

API = "/2018-06-01/runtime"
RIC_DISTS = ("awslambdaric", "simplejson", "snapshot-restore-py")
RIC_MODULES = ("awslambdaric", "simplejson", "snapshot_restore_py", "runtime_client")
BOOT = (
    "import sys; sys.path[:0] = [{root!r}, {ric!r}]; import runpy; "
    "runpy.run_module('awslambdaric', run_name='__main__', alter_sys=True)"
)
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:edgecompress-selfcheck"


def ric_dir(dest: Path) -> Path:
    """A folder holding ONLY awslambdaric and its deps, copied from the host's install: it
    stands in for the managed runtime's bootstrap (/var/runtime)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in RIC_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValidationError(
                f"lambda self-check: {name} is not installed (pip install awslambdaric)"
            )
        origin = Path(spec.origin)
        if spec.submodule_search_locations:  # a package
            shutil.copytree(
                origin.parent,
                dest / origin.parent.name,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        else:
            shutil.copy2(origin, dest / origin.name)
    return dest


class _State:
    def __init__(self):
        self.pending: queue.Queue = queue.Queue()
        self.answers: queue.Queue = queue.Queue()
        self.stop = threading.Event()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a runtime we stopped hung up: fine
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        state: _State = self.server.state
        if self.path != f"{API}/invocation/next":
            return self._send(404, b'{"errorMessage":"unknown path"}')
        while not state.stop.is_set():
            try:
                request_id, payload = state.pending.get(timeout=0.1)
            except queue.Empty:
                continue
            deadline = int(time.time() * 1000) + 30_000
            return self._send(
                200,
                payload,
                {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{request_id:0>24};Sampled=0",
                },
            )
        return self._send(500, b'{"errorMessage":"runtime API stopped"}')

    def do_POST(self):  # noqa: N802
        state: _State = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = re.fullmatch(rf"{API}/invocation/([^/]+)/(response|error)", self.path)
        if match:
            state.answers.put((match[1], match[2], body, time.perf_counter()))
        elif self.path == f"{API}/init/error":
            state.answers.put((None, "init_error", body, time.perf_counter()))
        else:
            return self._send(404, b'{"errorMessage":"unknown path"}')
        return self._send(202, b'{"status":"OK"}')


def init_timings_in(log: str) -> dict:
    """The handler's ``EDGECOMPRESS_INIT {json}`` line (import / load / first inference) in a
    runtime's log; {} when it never answered."""
    for line in log.splitlines():
        if line.startswith("EDGECOMPRESS_INIT "):
            return json.loads(line.split(" ", 1)[1])
    return {}


class LocalFunction:
    """A local Runtime API server and one fresh runtime process over ``task_root``."""

    def __init__(
        self,
        task_root: Path,
        ric: Path,
        memory_mb: int = 1024,
        timeout_s: float = 60,
        python: str = "3.11",
        log_dir: Path | None = None,
        interpreter: str | None = None,
        command: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        """``command``: the interpreter as a command prefix (emulation: qemu -L ROOT python),
        instead of ``interpreter``; ``extra_env`` is added to the runtime's environment."""
        self.task_root, self.ric, self.memory_mb = Path(task_root), Path(ric), memory_mb
        self.timeout_s, self.python = timeout_s, python
        self.interpreter = interpreter or sys.executable
        self.command, self.extra_env = list(command or [self.interpreter]), extra_env or {}
        self.log_dir = Path(log_dir or task_root.parent)
        self._count = 0

    def __enter__(self) -> LocalFunction:
        self.state = _State()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = self.state
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.started = time.perf_counter()
        self.stdout = open(self.log_dir / "runtime.stdout", "w+b")  # noqa: SIM115
        self.stderr = open(self.log_dir / "runtime.stderr", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *self.command,
                "-I",
                "-S",
                "-c",
                BOOT.format(root=str(self.task_root), ric=str(self.ric)),
                "handler.handler",
            ],
            cwd=self.task_root,
            env={**self._env(), **self.extra_env},
            stdout=self.stdout,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
        )
        return self

    def _env(self) -> dict[str, str]:
        root = str(self.task_root)
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}",
            "_HANDLER": "handler.handler",
            "LAMBDA_TASK_ROOT": root,
            "LAMBDA_RUNTIME_DIR": str(self.ric),
            "LD_LIBRARY_PATH": f"{root}:{root}/lib",
            "AWS_LAMBDA_FUNCTION_NAME": "edgecompress-selfcheck",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{self.python}",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/edgecompress-selfcheck",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        }

    def invoke(self, event) -> tuple[str, object, float]:
        """Send one event; return (kind 'response'|'error', decoded answer, seconds since
        the process started)."""
        self._count += 1
        request_id = f"{self._count:08d}"
        payload = event if isinstance(event, bytes) else json.dumps(event).encode()
        self.state.pending.put((request_id, payload))
        deadline = time.perf_counter() + self.timeout_s
        while time.perf_counter() < deadline:
            try:
                rid, kind, body, at = self.state.answers.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise ValidationError(
                        f"lambda self-check: the runtime exited "
                        f"({self.proc.returncode}): {self.log_tail()}"
                    ) from None
                continue
            if kind == "init_error":
                raise ValidationError(
                    f"lambda self-check: the function's init failed: {_error_text(body)}"
                )
            if rid == request_id:
                return kind, json.loads(body or b"null"), at - self.started
        raise ValidationError(
            f"lambda self-check: no answer in {self.timeout_s:g} s: {self.log_tail()}"
        )

    def log_tail(self, chars: int = 1500) -> str:
        text = b""
        for fh in (self.stdout, self.stderr):
            fh.flush()
            fh.seek(0)
            text += fh.read()
        return text.decode(errors="replace")[-chars:]

    def init_timings(self) -> dict:
        return init_timings_in(self.log_tail(1 << 20))

    def __exit__(self, *exc) -> None:
        self.state.stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.stdout.close()
        self.stderr.close()


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body)
        return f"{error.get('errorType')}: {error.get('errorMessage')}"
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:1000]


def task_env_ok(task_root: Path) -> None:
    """The handler must not import edgecompress (only the runtime, numpy, tokenizers)."""
    text = (task_root / "handler.py").read_text()
    if re.search(r"^\s*(import|from)\s+edgecompress", text, re.M):
        raise ValidationError("lambda: handler.py imports edgecompress")


def unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            path = dest / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zf.read(info))
            os.chmod(path, (info.external_attr >> 16) & 0o777 or 0o644)
    return dest


def ric_versions() -> dict[str, str]:
    """The host's awslambdaric and its dependencies, pinned for other Pythons."""

    try:
        return {name: version(name) for name in RIC_DISTS}
    except PackageNotFoundError as exc:
        raise ValidationError(
            f"lambda self-check: {exc.name} is not installed (pip install awslambdaric)"
        ) from None


def ric_dir_for(python: str, dest: Path, arch: str | None = None) -> Path:
    """A folder holding only awslambdaric and its deps for ``python`` (and Lambda ``arch``,
    default this host's): the host's install when that is the running Python and arch, else
    unpacked from cached wheels for that target."""
    arch = arch or arch_of(platform.machine())
    if python == host_python() and arch == arch_of(platform.machine()):
        return ric_dir(dest)
    target = Target(arch, python)
    wheels = fetch_wheels(target, ric_versions())
    dest.mkdir(parents=True, exist_ok=True)
    unpack(wheels, dest)
    return dest
