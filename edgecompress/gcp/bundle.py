"""Google Cloud Functions (2nd gen) source bundle: ``main.py`` (a Functions Framework HTTP
entry point adapting requests to the AWS Lambda bundle's handler: one JSON contract),
``handler.py`` + ``io_spec.json`` rendered exactly as the Lambda bundle renders them, the
model (and tokenizer), ``requirements.txt`` pinned for the runtime, a README with the
``gcloud functions deploy`` line; sized against the source-upload limits and served for real
(gcp.selfcheck) before it is published.

Public API: ``build_gcf(model, io, task, out_dir, options: GcpTarget, ...) -> GcpBundle``;
``stage_app`` and ``finish`` are shared with the Cloud Run bundle (gcp.cloudrun).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress import __version__
from edgecompress.awslambda import app as lambda_app
from edgecompress.awslambda import bundle as lambda_bundle
from edgecompress.awslambda import checks as lambda_checks
from edgecompress.awslambda import generation as lm_generation
from edgecompress.awslambda.sizes import MIB, mib
from edgecompress.errors import BudgetError, ExportError
from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.gcp import requirements as gcp_requirements
from edgecompress.gcp import selfcheck as gcp_selfcheck
from edgecompress.gcp.target import ENTRY_POINT, GcpTarget
from edgecompress.iospec import IOSpec
from edgecompress.model import TaskSpec

TEMPLATES = Path(__file__).parent / "templates"
GCLOUDIGNORE = ".gcloudignore\n__pycache__/\n*.pyc\n"


@dataclass
class GcpBundle:
    kind: str  # "gcf" | "cloudrun"
    path: Path  # the folder to deploy
    runtime: str
    python: str
    memory_mib: int
    cpu: float
    concurrency: int
    region: str
    sizes: dict
    versions: dict[str, str]
    self_check: dict
    deploy: list[str]
    not_checked: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


def function_name(model_path: Path) -> str:
    """A Cloud Functions / Cloud Run name from the model file's stem."""
    chars = [c if c.isalnum() else "-" for c in model_path.stem.lower()]
    name = "-".join(p for p in "".join(chars).split("-") if p)
    return ("ec-" + name)[:48].rstrip("-") or "ec-model"


def stage_app(model_path, io, task, stage: Path, options: GcpTarget, tokenizer_dir, label: str):
    """Handler, io_spec.json, model, tokenizer, main.py and requirements.txt into ``stage``;
    returns (spec, pins, resolved, wheel folder, requirements text)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ExportError(f"{label}: model file not found: {model_path}")
    if model_path.suffix != ".onnx":
        raise ExportError(f"{label}: model {model_path} must be an .onnx file")
    facts = onnx_metadata.read(model_path)
    if lm_generation.is_generation(facts, task):
        raise ExportError(
            f"{label}: causal LMs (prompts) are packaged for AWS Lambda only so far; "
            "Google Cloud bundles serve tensors, texts and images"
        )
    text = tokenizer_dir is not None
    pins = gcp_requirements.direct_pins(options.python, text)
    if facts.get("image"):  # the handler decodes PNG / JPEG requests (images.py)
        pins["pillow"] = lambda_bundle.PILLOW
    resolved, wheel_dir = gcp_requirements.resolve(options.python, pins)
    runtime_pins = {k: v for k, v in pins.items() if k != "functions-framework"}
    lambda_app.add_model(model_path, stage, "onnxruntime", runtime_pins)
    spec = lambda_app.write_app(
        stage,
        model_path,
        io,
        task,
        "onnxruntime",
        tokenizer_dir,
        lambda_bundle.MAX_BATCH,
        runtime_pins,
        options.allow_non_finite,
    )
    spec["target"] = {"platform": label, "runtime": options.runtime.value, "python": options.python}
    (stage / "io_spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    main = (TEMPLATES / "main.py.tmpl").read_text()
    for key, value in {"VERSION": __version__, "TARGET": label, "ENTRY_POINT": ENTRY_POINT}.items():
        main = main.replace("{{" + key + "}}", value)
    (stage / "main.py").write_text(main)
    reqs = gcp_requirements.requirements_text(resolved, pins, options.runtime.value)
    (stage / "requirements.txt").write_text(reqs)
    return spec, pins, resolved, wheel_dir, reqs


def source_sizes(stage: Path, wheel_dir: Path, resolved: dict, model_file: str) -> dict:
    """Compressed (a zip of the folder, as gcloud uploads it) and uncompressed sizes, with the
    modules the build installs."""
    with tempfile.TemporaryDirectory(prefix="ec-gcp-size-") as tmp:
        zipped = Path(tmp) / "source.zip"
        lambda_bundle.write_zip(stage, zipped)
        compressed = zipped.stat().st_size
    files = {
        p.relative_to(stage).as_posix(): p.stat().st_size
        for p in sorted(stage.rglob("*"))
        if p.is_file()
    }
    modules = gcp_requirements.installed_bytes(wheel_dir, resolved)
    return {
        "compressed_bytes": compressed,
        "source_bytes": sum(files.values()),
        "model_bytes": files.get(model_file, 0),
        "modules_bytes": sum(modules.values()),
        "modules": dict(sorted(modules.items(), key=lambda kv: -kv[1])),
        "total_uncompressed_bytes": sum(files.values()) + sum(modules.values()),
    }, files


def check_budget(label: str, sizes: dict, options: GcpTarget, limits: str) -> dict:
    """Refuse a bundle over its budget (BudgetError, exit 1), naming what is large."""
    budget = {
        "compressed_mib": options.budget_mib,
        "uncompressed_mib": options.unzipped_budget_mib,
        "limits": limits,
    }
    over = []
    if sizes["compressed_bytes"] > options.budget_mib * MIB:
        over.append(
            f"compressed source {mib(sizes['compressed_bytes'])} > budget "
            f"{options.budget_mib:g} MiB"
        )
    if sizes["total_uncompressed_bytes"] > options.unzipped_budget_mib * MIB:
        over.append(
            f"sources plus modules {mib(sizes['total_uncompressed_bytes'])} > budget "
            f"{options.unzipped_budget_mib:g} MiB"
        )
    if over:
        top = ", ".join(f"{k} {mib(v)}" for k, v in list(sizes["modules"].items())[:3])
        raise BudgetError(
            f"{label}: {'; '.join(over)} (model {mib(sizes['model_bytes'])}; largest modules: "
            f"{top}). Quantize the model (int8) or raise --budget-mib."
        )
    return budget


def run_check(
    stage, options, spec, model_path, reqs, resolved, wheel_dir, tokenizer_dir, reference, feeds
) -> dict:
    if not options.self_check:
        return {"skipped": "self_check=False"}
    texts = lambda_checks.DEFAULT_TEXTS if tokenizer_dir is not None else None
    if texts is None and feeds is None:
        feeds = lambda_checks.sample_feeds_for(spec["inputs"])
    if reference is None:
        reference = lambda_checks.host_reference(model_path, spec, feeds, texts, tokenizer_dir)
    wheels = gcp_requirements.wheel_files(wheel_dir, resolved)
    threads = max(8, options.concurrency)
    return gcp_selfcheck.check_app(
        stage, options.python, reqs, wheels, reference, feeds, texts, threads
    )


def publish(stage: Path, dest: Path) -> Path:
    """Copy ``stage`` to ``dest`` via a temp name and a rename (replacing an older one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(stage, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def deploy_command(name: str, options: GcpTarget, folder: str) -> list[str]:
    return [
        "gcloud",
        "functions",
        "deploy",
        name,
        "--gen2",
        f"--runtime={options.runtime.value}",
        f"--region={options.region}",
        f"--source={folder}",
        f"--entry-point={ENTRY_POINT}",
        "--trigger-http",
        f"--memory={options.memory_mib}MiB",
        f"--cpu={options.vcpu:g}",
        f"--concurrency={options.concurrency}",
        f"--max-instances={options.max_instances}",
        f"--timeout={options.timeout_s}s",
        "--no-allow-unauthenticated",
    ]


GCF_LIMITS = (
    "100 MiB compressed source upload, 500 MiB sources plus modules (Cloud Functions quotas)"
)


def build_gcf(
    model_path: Path,
    io: IOSpec,
    task: TaskSpec,
    out_dir: Path,
    options: GcpTarget | None = None,
    *,
    tokenizer_dir: Path | None = None,
    sample_feeds: dict | None = None,
    reference_outputs: dict | None = None,
) -> GcpBundle:
    """Build ``out_dir/gcf-<runtime>/``; nothing is written unless it fits its budget and
    passes its self-check."""
    options = options or GcpTarget()

    def add_files(stage: Path, spec: dict, name: str) -> list[str]:
        (stage / ".gcloudignore").write_text(GCLOUDIGNORE)
        command = deploy_command(name, options, ".")
        readme = render_readme("README.gcf.md.tmpl", options, command, EXAMPLE=example_body(spec))
        (stage / "README.md").write_text(readme)
        return command

    return build_bundle(
        "gcf", model_path, io, task, out_dir, options, add_files, GCF_LIMITS,
        tokenizer_dir=tokenizer_dir, sample_feeds=sample_feeds,
        reference_outputs=reference_outputs,
    )  # fmt: skip


def build_bundle(
    kind: str,
    model_path: Path,
    io: IOSpec,
    task: TaskSpec,
    out_dir: Path,
    options: GcpTarget,
    add_files,
    limits: str,
    *,
    tokenizer_dir: Path | None = None,
    sample_feeds: dict | None = None,
    reference_outputs: dict | None = None,
) -> GcpBundle:
    """Stage the app, add the kind's own files (``add_files(stage, spec, name)`` returns the
    deploy command lines), size it against ``limits``, self-check it, then publish
    ``out_dir/<kind>-<runtime>/`` (nothing is written when a step fails)."""
    folder = f"{kind}-{options.runtime.value}"
    name = function_name(Path(model_path))
    with tempfile.TemporaryDirectory(prefix=f"ec-{kind}-") as tmp:
        stage = Path(tmp) / folder
        stage.mkdir()
        spec, _pins, resolved, wheel_dir, reqs = stage_app(
            model_path, io, task, stage, options, tokenizer_dir, kind
        )
        deploy = add_files(stage, spec, name)
        sizes, files = source_sizes(stage, wheel_dir, resolved, spec["model_file"])
        budget = check_budget(kind, sizes, options, limits)
        check = run_check(
            stage, options, spec, model_path, reqs, resolved, wheel_dir, tokenizer_dir,
            reference_outputs, sample_feeds,
        )  # fmt: skip
        final = publish(stage, Path(out_dir) / folder)
    return GcpBundle(
        kind, final, options.runtime.value, options.python, options.memory_mib, options.vcpu,
        options.concurrency, options.region, {**sizes, "budget": budget}, resolved, check,
        deploy, gcp_selfcheck.not_checked(docker=kind == "cloudrun"), files,
    )  # fmt: skip


def shell_lines(command: list[str]) -> str:
    """``gcloud functions deploy NAME`` on one line, one flag a line after it."""
    head = [w for w in command if not w.startswith("-")]
    flags = command[len(head) :]
    return " \\\n    ".join([" ".join(head), *flags])


def example_body(spec: dict) -> str:
    if spec.get("text"):
        return '{"texts": ["A small model answers quickly."]}'
    names = ", ".join(f'"{t["name"]}": [...]' for t in spec["inputs"])
    return '{"inputs": {' + names + "}}"


def render_readme(template: str, options: GcpTarget, command: list[str], **extra) -> str:
    values = {
        "VERSION": __version__,
        "RUNTIME": options.runtime.value,
        "REGION": options.region,
        "MEMORY_MIB": str(options.memory_mib),
        "CPU": f"{options.vcpu:g}",
        "CONCURRENCY": str(options.concurrency),
        "ENTRY_POINT": ENTRY_POINT,
        "DEPLOY": shell_lines(command),
        **extra,
    }
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text
