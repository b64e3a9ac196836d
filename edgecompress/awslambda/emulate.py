"""Run arm64 Lambda code on an x86_64 host: qemu user-mode emulation over a Debian arm64 root
file system, cached once per Python in ``cache_dir("rootfs")``.

A root is made with ``debootstrap --foreign --arch=arm64 --variant=minbase --include=python3``
(trixie: Python 3.13, bookworm: Python 3.11; Debian has no arm64 Python 3.12), then every
downloaded ``.deb`` is unpacked with ``dpkg-deb -x``: nothing runs inside it, so no binfmt is
needed. ``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.X`` then runs the root's Python;
``-L`` also makes the guest read ``ROOT/proc/cpuinfo`` instead of the host's, where a
Graviton2-like cpuinfo is written (without one, onnxruntime's cpuinfo segfaults under qemu).

Where this process may make mount namespaces (root), ``Emulation.sysfs`` hides
``/sys/devices/system/cpu`` behind an empty tmpfs, as on Lambda (no ``possible``/``present``
files: onnxruntime issue #10038).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress.errors import ValidationError
from edgecompress.paths import cache_dir
from edgecompress.progress import log

SUITES = {"3.13": "trixie", "3.11": "bookworm"}  # Debian arm64 suites by their Python
NO_ROOTFS = {
    "3.12": "Debian ships no arm64 Python 3.12 (bookworm has 3.11, trixie 3.13), so no "
    "emulated root for it"
}
MIRROR = "http://deb.debian.org/debian"
QEMU = ("qemu-aarch64-static", "qemu-aarch64")
READY = "edgecompress-rootfs.json"  # written last: a root without it is incomplete
EMULATED_TIMEOUT_S = 300.0  # imports take seconds under emulation, on shared cores more
# A Graviton2 (Neoverse N1) as the kernel shows it; one block per CPU.
CPUINFO_BLOCK = """processor\t: {n}
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
"""
SYSFS_HIDE = "/sys/devices/system/cpu"


def graviton_cpuinfo(cpus: int = 2) -> str:
    return "\n".join(CPUINFO_BLOCK.format(n=n) for n in range(cpus))


def qemu_binary() -> str | None:
    """qemu-aarch64(-static) on PATH, or None."""
    for name in QEMU:
        if path := shutil.which(name):
            return path
    return None


def rootfs_path(python: str) -> Path:
    """Where the arm64 root for ``python`` lives (made or not)."""
    return cache_dir("rootfs") / f"arm64-{SUITES.get(python, 'none')}"


def rootfs_info(python: str) -> dict | None:
    """The finished root's record (suite, python, seconds to build, ...), or None."""
    try:
        return json.loads((rootfs_path(python) / READY).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Emulation:
    """How to run target code for ``python`` here: a command prefix for the interpreter."""

    python: str
    qemu: str
    root: Path
    sysfs: bool = False  # /sys/devices/system/cpu hidden as on Lambda
    notes: list[str] = field(default_factory=list)

    @property
    def interpreter(self) -> Path:
        return self.root / "usr" / "bin" / f"python{self.python}"

    def command(self) -> list[str]:
        base = [self.qemu, "-L", str(self.root), str(self.interpreter)]
        if not self.sysfs:
            return base
        script = f'mount -t tmpfs -o size=64k,mode=0555 none {SYSFS_HIDE} && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                "sh", *base]  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "qemu": self.qemu,
            "root": str(self.root),
            "python": self.python,
            "interpreter": str(self.interpreter),
            "lambda_sysfs": self.sysfs,
            "timeout_s": EMULATED_TIMEOUT_S,
            "notes": self.notes,
        }


def unavailable(python: str) -> str | None:
    """Why arm64 ``python`` cannot be emulated here now (None: it can, root cached)."""
    if python in NO_ROOTFS:
        return NO_ROOTFS[python]
    if python not in SUITES:
        return f"no Debian arm64 suite known for Python {python}"
    if qemu_binary() is None:
        return "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"
    if rootfs_info(python) is None:
        return f"no arm64 root for Python {python} in {rootfs_path(python)} (run compress doctor)"
    return None


def emulation_for(python: str, setup: bool = True) -> tuple[Emulation | None, str | None]:
    """(Emulation, None) when arm64 ``python`` can run here, building the root first if
    ``setup`` and qemu and debootstrap are present; else (None, why not).
    ``EDGECOMPRESS_EMULATION=0`` turns it off (the static check then runs alone)."""
    if os.environ.get("EDGECOMPRESS_EMULATION", "1") == "0":
        return None, "turned off (EDGECOMPRESS_EMULATION=0)"
    why = unavailable(python)
    if why and setup and python in SUITES and qemu_binary():
        try:
            ensure_rootfs(python)
            why = None
        except ValidationError as exc:
            why = f"{exc} (the static check only, until the root is cached: compress doctor)"
    if why:
        return None, why
    emu = Emulation(python, qemu_binary(), rootfs_path(python))
    emu.sysfs = os.environ.get("EDGECOMPRESS_LAMBDA_SYSFS", "1") != "0" and lambda_sysfs_ok()
    if not emu.sysfs:
        emu.notes.append(
            f"{SYSFS_HIDE} not hidden (off, or no root / mount namespaces): the host's is seen"
        )
    return emu, None


@functools.cache
def lambda_sysfs_ok() -> bool:
    """True when ``unshare --mount`` can hide /sys/devices/system/cpu here (root only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    script = f"mount -t tmpfs none {SYSFS_HIDE} && test ! -e {SYSFS_HIDE}/possible"
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def ensure_rootfs(python: str, mirror: str | None = None) -> dict:
    """The arm64 root for ``python``, built now if not cached (minutes; progress on stderr);
    returns its record, with ``seconds`` the build took."""
    if info := rootfs_info(python):
        return info
    if python not in SUITES:
        raise ValidationError(f"arm64 emulation: {NO_ROOTFS.get(python, python)}")
    if shutil.which("debootstrap") is None:
        raise ValidationError(
            "arm64 emulation: debootstrap is not installed (apt-get install debootstrap)"
        )
    suite, final = SUITES[python], rootfs_path(python)
    mirror = mirror or os.environ.get("EDGECOMPRESS_DEBIAN_MIRROR") or MIRROR
    log.warning("building the arm64 Debian %s root for Python %s in %s ...", suite, python, final)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{final.name}.", dir=final.parent) as tmp:
        root = Path(tmp) / "root"
        _debootstrap(suite, root, mirror)
        debs = _unpack_debs(root)
        _finish_root(root, python)
        info = {
            "suite": suite,
            "python": python,
            "arch": "arm64",
            "mirror": mirror,
            "debs": debs,
            "seconds": round(time.perf_counter() - started, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (root / READY).write_text(json.dumps(info, indent=1))
        if done := rootfs_info(python):  # another process finished first: keep its root
            return done
        if final.exists():  # an unfinished root (no record): replace it
            shutil.rmtree(final)
        os.replace(root, final)
    log.warning("arm64 root for Python %s ready in %.0f s", python, info["seconds"])
    return info


def _debootstrap(suite: str, root: Path, mirror: str) -> None:
    cmd = ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase"]
    cmd += ["--include=python3", suite, str(root), mirror]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ValidationError(f"arm64 emulation: debootstrap {suite} failed: {tail}")


def _unpack_debs(root: Path) -> int:
    """dpkg-deb -x every downloaded package into the root (nothing is configured or run)."""
    debs = sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    for deb in debs:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True)
        if proc.returncode != 0:
            raise ValidationError(f"arm64 emulation: dpkg-deb -x {deb.name} failed")
        deb.unlink()
    return len(debs)


def _finish_root(root: Path, python: str) -> None:
    if not (root / "usr" / "bin" / f"python{python}").is_file():
        raise ValidationError(f"arm64 emulation: the root has no usr/bin/python{python}")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(graviton_cpuinfo())


def probe(emu: Emulation, timeout_s: float = EMULATED_TIMEOUT_S) -> dict:
    """Run the emulated interpreter once: its machine, Python version and whether it sees
    the Graviton cpuinfo and (under ``lambda_sysfs``) no /sys/devices/system/cpu/possible."""
    code = (
        "import json, os, platform, sys; print(json.dumps({'machine': platform.machine(), "
        "'python': '%d.%d.%d' % sys.version_info[:3], 'cpu_part_0xd0c': "
        "'0xd0c' in open('/proc/cpuinfo').read(), 'sys_cpu_possible': "
        f"os.path.exists('{SYSFS_HIDE}/possible')}}))"
    )
    proc = subprocess.run(
        [*emu.command(), "-I", "-S", "-c", code], capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        raise ValidationError(f"arm64 emulation: {emu.interpreter} does not run: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
