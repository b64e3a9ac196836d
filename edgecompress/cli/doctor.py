"""``compress doctor``: what this machine has for building and checking Lambda zips, and the
one-time set-up of the arm64 root file systems the emulated self-check runs in.

Progress and timings go to stderr; ``--json`` prints one document on stdout. Exit 1 when a
root that could be set up (qemu and debootstrap present) failed to build or to run.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import click

from edgecompress.awslambda import emulate
from edgecompress.awslambda.target import GLIBC, interpreter_for
from edgecompress.cli.common import emit_json, handle_errors, json_option
from edgecompress.errors import ValidationError
from edgecompress.paths import cache_dir

PACKAGES = ("onnxruntime", "numpy", "torch", "awslambdaric", "tokenizers", "ai-edge-litert")
TOOLS = ("qemu-aarch64-static", "debootstrap", "dpkg-deb", "unshare")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _qemu_version(path: str | None) -> str | None:
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    return (out.splitlines() or [""])[0].strip() or None


def host_facts() -> dict:
    qemu = emulate.qemu_binary()
    return {
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "tools": {name: shutil.which(name) for name in TOOLS},
        "qemu": {"path": qemu, "version": _qemu_version(qemu)},
        "lambda_sysfs": emulate.lambda_sysfs_ok(),
        "cache": str(cache_dir()),
    }


def arm64_python(python: str, setup: bool) -> dict:
    """One target Python's arm64 status; builds its root first when ``setup``."""
    row = {"python": python, "native": interpreter_for("aarch64", python) is not None}
    if row["native"] or python in emulate.NO_ROOTFS:
        return {
            **row,
            "emulated": False,
            "why": None if row["native"] else emulate.NO_ROOTFS[python],
        }
    if setup and emulate.unavailable(python) and emulate.qemu_binary():
        row.update(_setup(python))
    emu, why = emulate.emulation_for(python, setup=False)
    row.update(emulated=emu is not None, why=why, root=str(emulate.rootfs_path(python)))
    if info := emulate.rootfs_info(python):
        row["rootfs"] = info
    if emu is not None:
        try:
            row["probe"] = emulate.probe(emu)
        except ValidationError as exc:
            row.update(emulated=False, why=str(exc), probe_error=str(exc))
    return row


def _setup(python: str) -> dict:
    suite = emulate.SUITES[python]
    click.echo(f"setting up the arm64 Debian {suite} root for Python {python} ...", err=True)
    started = time.perf_counter()
    try:
        info = emulate.ensure_rootfs(python)
    except ValidationError as exc:
        click.echo(f"  failed: {exc}", err=True)
        return {"setup_error": str(exc)}
    seconds = time.perf_counter() - started
    click.echo(f"  ready in {seconds:.0f} s ({info['debs']} packages unpacked)", err=True)
    return {"setup_seconds": round(seconds, 1)}


def render(facts: dict) -> str:
    lines = [f"host: {facts['machine']}, Python {facts['python']}, cache {facts['cache']}"]
    lines += [f"  {k:<16} {v or 'not installed'}" for k, v in facts["packages"].items()]
    lines += [f"  {k:<20} {v or 'not found'}" for k, v in facts["tools"].items()]
    lines.append(f"  qemu: {facts['qemu']['version'] or 'not installed'}")
    lines.append(
        f"  Lambda-like sysfs (no /sys/devices/system/cpu/possible): {facts['lambda_sysfs']}"
    )
    lines.append("arm64 Lambda zips, self-check:")
    for row in facts["arm64"]:
        if row["native"]:
            state = "runs natively"
        elif row["emulated"]:
            built = row.get("rootfs", {})
            state = (
                f"emulated (qemu, Debian {built.get('suite')} root, built in "
                f"{built.get('seconds')} s; probe: {row['probe']['python']} "
                f"{row['probe']['machine']})"
            )
        else:
            state = f"static check only: {row['why']}"
        lines.append(f"  python{row['python']}: {state}")
    return "\n".join(lines)


@click.command()
@click.option(
    "--setup/--no-setup",
    default=True,
    show_default=True,
    help="Build the arm64 root file systems now if missing (needs qemu-user-static, "
    "debootstrap and the Debian mirror; minutes, once).",
)
@json_option
@handle_errors
def doctor(setup: bool, as_json: bool) -> None:
    """What is installed for building and checking Lambda zips, and whether arm64 zips can be
    self-checked here (under qemu); sets up the arm64 roots once (timings on stderr)."""

    facts = host_facts()
    facts["arm64"] = [arm64_python(python, setup) for python in GLIBC]
    if as_json:
        emit_json(facts)
    else:
        click.echo(render(facts))
    failed = [r for r in facts["arm64"] if "setup_error" in r or "probe_error" in r]
    if failed:
        raise click.ClickException(
            "arm64 emulation could not be set up: "
            + "; ".join(f"python{r['python']}: {r.get('setup_error') or r['why']}" for r in failed)
        )


COMMANDS = [doctor]
