"""Cloud Run bundle: the Cloud Functions app (gcp.bundle.stage_app: main.py -> handler.py, one
JSON contract) in a container: a ``Dockerfile`` on the official Python image installing the
pinned requirements.txt and serving the app with functions-framework (gunicorn), and a
``service.yaml`` with the recipe's memory, CPU and concurrency.

The app is served for real by the same self-check as the function; the Docker build is not
run (the base image cannot be pulled here), and the bundle says so.

Public API: ``build_cloudrun(model, io, task, out_dir, options: CloudRunTarget, ...)``.
"""

from __future__ import annotations

from pathlib import Path

from edgecompress import __version__
from edgecompress.gcp import bundle as gcf_bundle
from edgecompress.gcp.target import ENTRY_POINT, CloudRunTarget
from edgecompress.iospec import IOSpec
from edgecompress.model import TaskSpec

DOCKERIGNORE = ".dockerignore\nDockerfile\nservice.yaml\nREADME.md\n__pycache__/\n*.pyc\n"


def base_image(python: str) -> str:
    """The official Python image for the runtime (Debian bookworm: glibc 2.36)."""
    return f"python:{python}-slim-bookworm"


def cpu_limit(cpu: float) -> str:
    return f"{cpu:g}" if cpu >= 1 else f"{round(cpu * 1000)}m"


def image_name(name: str, region: str) -> str:
    return f"{region}-docker.pkg.dev/PROJECT_ID/edgecompress/{name}:latest"


def render(template: str, values: dict[str, str]) -> str:
    text = (gcf_bundle.TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def container_files(stage: Path, options: CloudRunTarget, name: str) -> list[str]:
    """Dockerfile, service.yaml, .dockerignore and README.md into ``stage``; the deploy lines."""
    image = image_name(name, options.region)
    values = {
        "VERSION": __version__,
        "BASE_IMAGE": base_image(options.python),
        "NAME": name,
        "ENTRY_POINT": ENTRY_POINT,
        "CONCURRENCY": str(options.concurrency),
        "REGION": options.region,
        "MAX_INSTANCES": str(options.max_instances),
        "TIMEOUT_S": str(options.timeout_s),
        "IMAGE": image,
        "CPU_LIMIT": cpu_limit(options.vcpu),
        "MEMORY_MIB": str(options.memory_mib),
    }
    (stage / "Dockerfile").write_text(render("Dockerfile.tmpl", values))
    (stage / "service.yaml").write_text(render("service.yaml.tmpl", values))
    (stage / ".dockerignore").write_text(DOCKERIGNORE)
    deploy = [
        f"gcloud builds submit --tag={image} .",
        f"gcloud run services replace service.yaml --region={options.region}",
    ]
    readme = gcf_bundle.render_readme(
        "README.cloudrun.md.tmpl",
        options,
        [],
        NAME=name,
        BASE_IMAGE=values["BASE_IMAGE"],
        DEPLOY=" && \\\n".join(deploy),
    )
    (stage / "README.md").write_text(readme)
    return deploy


def build_cloudrun(
    model_path: Path,
    io: IOSpec,
    task: TaskSpec,
    out_dir: Path,
    options: CloudRunTarget | None = None,
    *,
    tokenizer_dir: Path | None = None,
    sample_feeds: dict | None = None,
    reference_outputs: dict | None = None,
) -> gcf_bundle.GcpBundle:
    """Build ``out_dir/cloudrun-<runtime>/``; nothing is written unless it fits its budget and
    its app passes the self-check."""
    options = options or CloudRunTarget()
    return gcf_bundle.build_bundle(
        "cloudrun", model_path, io, task, out_dir, options,
        lambda stage, spec, name: container_files(stage, options, name),
        "the recipe's build context and installed-image budgets",
        tokenizer_dir=tokenizer_dir, sample_feeds=sample_feeds,
        reference_outputs=reference_outputs,
    )  # fmt: skip
