"""AWS Lambda deploy zip: handler + model + runtime deps vendored for the target, trimmed,
reproducible (sorted entries, 1980-01-01 timestamps, fixed modes, fixed deflate level), checked
against the size budget, and self-checked under awslambdaric where the host can run it.

Public API: ``build_lambda_zip(model, io, task, out_dir, options: LambdaTarget) -> LambdaZip``
and ``measure_cold_start(zip_path, runs)``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress.awslambda import app as lambda_app
from edgecompress.awslambda import checks as lambda_checks
from edgecompress.awslambda import emucheck as lambda_emucheck
from edgecompress.awslambda import emulate as lambda_emulate
from edgecompress.awslambda import fixed_rows as lambda_fixed
from edgecompress.awslambda import generation as lm_generation
from edgecompress.awslambda import image_check
from edgecompress.awslambda import sizes as lambda_sizes
from edgecompress.awslambda import snapstart as lambda_snapstart
from edgecompress.awslambda import trim as lambda_trim
from edgecompress.awslambda import wheels as lambda_wheels
from edgecompress.awslambda.checks import measure_cold_start  # noqa: F401 (public API)
from edgecompress.awslambda.options import LambdaTarget, Storage
from edgecompress.awslambda.target import Target
from edgecompress.errors import ExportError
from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.iospec import IOSpec
from edgecompress.model import TaskSpec
from edgecompress.outdir import sha256_file
from edgecompress.storage.encode import store_compressed

ZIP_LEVEL = 9
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TEMPLATES = lambda_app.TEMPLATES
MAX_BATCH = 64
# Image classifiers decode PNG / JPEG in the handler: Pillow 11.3.0 has manylinux_2_17 wheels
# for cp311-cp313 on x86_64 and aarch64 (every Lambda target; checked with pip download).
PILLOW = "11.3.0"


@dataclass
class LambdaZip:
    path: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    arch: str
    python: str
    runtime: str  # "onnxruntime" | "litert"
    breakdown: dict[str, dict[str, int]]
    removed: list[dict]
    self_check: dict
    template: Path
    versions: dict[str, str] = field(default_factory=dict)
    wheels: list[dict] = field(default_factory=list)
    stripped: dict = field(default_factory=dict)
    pyc: dict = field(default_factory=dict)
    model_changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"], d["template"] = str(self.path), str(self.template)
        d["removed_bytes"] = sum(r["bytes"] for r in self.removed)
        return d


def zip_name(arch: str, python: str) -> str:
    return f"lambda-{arch}-py{python}.zip"


def runtime_for(model_path: Path) -> str:
    if model_path.suffix == ".onnx":
        return "onnxruntime"
    if model_path.suffix == ".tflite":
        return "litert"
    raise ExportError(f"lambda: model {model_path} must be an .onnx or .tflite file")


def build_lambda_zip(
    model_path: Path,
    io: IOSpec,
    task: TaskSpec,
    out_dir: Path,
    options: LambdaTarget | None = None,
    *,
    tokenizer_dir: Path | None = None,
    sample_feeds: dict | None = None,
    reference_outputs: dict | None = None,
    max_batch: int = MAX_BATCH,
) -> LambdaZip:
    """Build ``out_dir/lambda-<arch>-py<ver>.zip`` and ``template.yaml`` for the function
    ``options`` describes (default: ``LambdaTarget()``, the CLI's defaults); nothing is written
    to out_dir unless the zip fits its budget and passes its self-check."""
    options = options or LambdaTarget()
    arch, python, memory_mb = options.arch.value, options.python.value, options.memory_mb
    model_path, target = Path(model_path), Target(arch, python)
    if not model_path.is_file():
        raise ExportError(f"lambda: model file not found: {model_path}")
    runtime = runtime_for(model_path)
    text = tokenizer_dir is not None
    with tempfile.TemporaryDirectory(prefix="ec-lambda-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        pins = lambda_wheels.pins_for(target, runtime, text)
        pins.update({"pillow": PILLOW} if onnx_metadata.read(model_path).get("image") else {})
        wheels = lambda_wheels.fetch_wheels(target, pins)
        lambda_wheels.unpack(wheels, stage)
        removed = lambda_trim.trim_tree(stage)
        stripped = lambda_trim.strip_binaries(stage, target.machine)
        changes = lambda_app.add_model(model_path, stage, runtime, pins)
        spec = lambda_app.write_app(
            stage, model_path, io, task, runtime, tokenizer_dir, max_batch, pins,
            options.allow_non_finite,
        )  # fmt: skip
        facts = onnx_metadata.read(model_path)  # causal LMs: generate.py, generation settings
        bound = options.max_new_tokens
        spec.update(
            lm_generation.serving(stage, facts, task, bound, spec.get("text"), spec.get("inputs"))
        )
        if options.storage == Storage.compressed:
            store_compressed(stage, spec)  # skeleton + coded weights + decoder.py
        lambda_snapstart.add_hooks(stage, spec, options.snapstart)  # snapstart.py + io_spec
        spec["target"] = lambda_app.write_target(stage, spec, target)
        pyc = lambda_trim.compile_pyc(stage, python, target.machine)
        verified = lambda_checks.verify_target(stage, wheels, target)
        built = Path(tmp) / zip_name(arch, python)
        write_zip(stage, built)
        parts, zipped, unzipped = lambda_sizes.breakdown(built, spec["model_file"])
        lambda_sizes.check_budget(
            built.name,
            parts,
            zipped,
            unzipped,
            options.budget_mib,
            options.unzipped_budget_mib,
            runtime,
            _model_hint(model_path),
        )
        check = _check(
            built,
            target,
            options.self_check,
            verified,
            model_path,
            spec,
            sample_feeds,
            reference_outputs,
            tokenizer_dir,
            memory_mb,
        )
        template = _render_template(
            Path(tmp) / "template.yaml", built.name, target, memory_mb, options.timeout_s,
            options.snapstart,
        )  # fmt: skip
        final, final_template = _publish(built, template, Path(out_dir))
    return LambdaZip(
        final,
        sha256_file(final),
        zipped,
        unzipped,
        arch,
        python,
        runtime,
        parts,
        removed,
        check,
        final_template,
        versions=pins,
        wheels=[w.to_dict() for w in wheels],
        stripped=stripped,
        pyc=pyc,
        model_changes=changes,
    )


def _model_hint(model_path: Path) -> str:
    return "int8" if "int8" in model_path.name or "quant" in model_path.name else ""


def write_zip(stage: Path, path: Path) -> None:
    """Sorted entries, fixed timestamps and modes, fixed deflate level: byte-reproducible."""
    files = sorted((p.relative_to(stage).as_posix(), p) for p in stage.rglob("*") if p.is_file())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
        for rel, p in files:
            info = zipfile.ZipInfo(rel, date_time=ZIP_DATE)
            info.create_system = 3
            mode = 0o755 if (p.stat().st_mode & 0o111) or lambda_trim.elf_machine(p) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, p.read_bytes(), compresslevel=ZIP_LEVEL)


def _check(
    built, target, enabled, verified, model_path, spec, feeds, reference, tok_dir, memory_mb
) -> dict:
    host = f"{platform.machine()} Python {sys.version_info.major}.{sys.version_info.minor}"
    if not enabled:
        return {"skipped": "self_check=False", "verified": verified}
    interpreter = target.interpreter()
    emu, no_emu = None, None
    if interpreter is None and target.arch == "arm64" and platform.machine() == "x86_64":
        if spec.get("generation"):  # prompts need the LM self-check, which runs natively only
            no_emu = "the generation self-check does not run under qemu"
        else:
            emu, no_emu = lambda_emulate.emulation_for(target.python)  # arm64 under qemu
    if interpreter is None and emu is None:
        why = (
            f"no Python {target.python} found on PATH or in pyenv"
            if platform.machine() == target.machine
            else f"another architecture than {platform.machine()}"
        )
        why += f"; no emulation: {no_emu}" if no_emu else ""
        return {
            "skipped": f"target {target.machine} Python {target.python} cannot run on this "
            f"host ({host}; {why}): wheel tags and ELF machines verified instead",
            "verified": verified,
        }
    if spec.get("generation") and emu is None:  # causal LMs: prompts, greedy token ids
        result = lm_generation.self_check(
            built, model_path, spec, tok_dir, memory_mb, target.python, interpreter
        )
        return {**result, "interpreter": interpreter, "verified": verified}
    texts = lambda_checks.DEFAULT_TEXTS if tok_dir is not None else None
    if tok_dir is None and feeds is None:
        feeds = lambda_checks.sample_feeds_for(spec["inputs"])
    if reference is None and spec.get("fixed_rows"):
        reference = lambda_fixed.host_reference(model_path, spec, feeds, texts, tok_dir)
    if reference is None:
        reference = lambda_checks.host_reference(model_path, spec, feeds, texts, tok_dir)
    if emu is not None:
        scheme = _model_hint(model_path) or "float"
        result = lambda_emucheck.emulated_self_check(
            built, reference, feeds, texts, memory_mb, emu, scheme
        )
        return {**result, "interpreter": str(emu.interpreter), "verified": verified}
    result = lambda_checks.self_check(
        built, reference, feeds, texts, memory_mb, target.python, interpreter
    )
    if spec.get("image"):  # image classifiers: base64 PNG / JPEG requests too
        result["images"] = image_check.run(built, model_path, memory_mb, target.python, interpreter)
    return {**result, "interpreter": interpreter, "verified": verified}


def _render_template(
    path: Path, zip_file: str, target, memory_mb: int, timeout_s: int, snapstart: bool = False
) -> Path:
    text = (TEMPLATES / "template.yaml.tmpl").read_text()
    values = {
        "DESCRIPTION": f"edgecompress model on Lambda ({target.arch}, python{target.python})",
        "LOGICAL_ID": "ModelFunction",
        "CODE_URI": zip_file,
        "PYTHON": target.python,
        "ARCH": target.arch,
        "MEMORY_MB": str(memory_mb),
        "TIMEOUT_S": str(timeout_s),
        "SNAPSTART": lambda_snapstart.template_lines(snapstart),
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    path.write_text(text)
    return path


def _publish(built: Path, template: Path, out_dir: Path) -> tuple[Path, Path]:
    """Move zip and template into out_dir, each via a temp name and os.replace."""
    out_dir.mkdir(parents=True, exist_ok=True)
    finals = []
    for src in (built, template):
        tmp = out_dir / f".{src.name}.partial"
        shutil.copyfile(src, tmp)
        os.replace(tmp, out_dir / src.name)
        finals.append(out_dir / src.name)
    return finals[0], finals[1]
