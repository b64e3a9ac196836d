"""A Google Cloud Functions (2nd gen) or Cloud Run target: runtime, memory, CPU, concurrency,
region. One pydantic model per target is both the recipe's ``package: {gcf: ...}`` /
``package: {cloudrun: ...}`` section and the CLI's flags (``compress package gcf|cloudrun``).

Facts used (from Google's docs as known on 2025-06-01, not re-checked online; see
edgecompress/measure/pricing_gcp.json for the sources):

- 2nd-gen functions run on Cloud Run; the Python runtimes python311 / python312 / python313 run
  on Ubuntu 22.04 (glibc 2.35), x86_64 only.
- Without an explicit CPU, a function gets the CPU of its memory tier (128 MiB: 0.083 vCPU ...
  2 GiB: 1 vCPU, 4-8 GiB: 2, 16 GiB: 4, 32 GiB: 8). Below 1 vCPU, concurrency must be 1;
  one vCPU may have at most 4 GiB of memory; CPU >= 1 comes in 1, 2, 4, 6 or 8.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

GLIBC_MINOR = 35  # Ubuntu 22.04, the base of the python311..python313 runtimes
MACHINE = "x86_64"
# (memory MiB at most, default vCPU): the 2nd-gen tier a memory size falls in
CPU_TIERS = [
    (128, 0.083),
    (256, 0.167),
    (512, 0.333),
    (1024, 0.583),
    (2048, 1.0),
    (8192, 2.0),
    (16384, 4.0),
    (32768, 8.0),
]
WHOLE_CPUS = (1, 2, 4, 6, 8)
MEMORY_MIB_RANGE = (128, 32768)
ENTRY_POINT = "predict"
FUNCTIONS_FRAMEWORK = "3.10.2"

# Versions that exist as manylinux wheels for each runtime (checked with pip download).
PINS: dict[str, dict[str, str]] = {
    "3.11": {"onnxruntime": "1.32.0", "numpy": "2.4.6", "tokenizers": "0.23.3"},
    "3.12": {"onnxruntime": "1.32.0", "numpy": "2.5.5", "tokenizers": "0.23.3"},
    "3.13": {"onnxruntime": "1.32.0", "numpy": "2.5.5", "tokenizers": "0.23.3"},
}


class GcpRuntime(str, Enum):
    python311 = "python311"
    python312 = "python312"
    python313 = "python313"

    @property
    def python(self) -> str:
        """ "python312" -> "3.12"."""
        digits = self.value.removeprefix("python")
        return f"{digits[0]}.{digits[1:]}"


def default_cpu(memory_mib: int) -> float:
    """The vCPU a 2nd-gen function of ``memory_mib`` gets when no CPU is set."""
    for limit, cpu in CPU_TIERS:
        if memory_mib <= limit:
            return cpu
    return CPU_TIERS[-1][1]


def platforms() -> list[str]:
    """Every manylinux tag the runtimes' glibc accepts."""
    tags = [f"manylinux_2_{minor}_{MACHINE}" for minor in range(17, GLIBC_MINOR + 1)]
    return [*tags, f"manylinux2014_{MACHINE}"]


class GcpTarget(BaseModel):
    """The options of one Cloud Functions (2nd gen) deploy; the descriptions are the CLI's
    help texts and its defaults ``compress package gcf``'s."""

    model_config = ConfigDict(extra="forbid")

    runtime: GcpRuntime = Field(GcpRuntime.python312, description="Python runtime.")
    region: str = Field(
        "us-central1", pattern=r"^[a-z]+-[a-z]+[0-9]+$", description="Region (deploy, prices)."
    )
    memory_mib: int = Field(
        1024,
        ge=MEMORY_MIB_RANGE[0],
        le=MEMORY_MIB_RANGE[1],
        description="Memory in MiB.",
    )
    cpu: float | None = Field(
        None,
        gt=0,
        le=8,
        description="vCPUs (default: the memory tier's, e.g. 0.583 at 1024 MiB, 1 at 2048).",
    )
    concurrency: int = Field(1, ge=1, le=1000, description="Requests one instance serves at once.")
    max_instances: int = Field(10, ge=1, le=1000, description="Most instances at once.")
    timeout_s: int = Field(60, ge=1, le=3600, description="Request timeout in seconds.")
    budget_mib: float = Field(
        100.0, gt=0, description="Compressed source budget (upload limit 100 MiB)."
    )
    unzipped_budget_mib: float = Field(
        500.0, gt=0, description="Uncompressed budget: sources plus installed modules (500 MiB)."
    )
    self_check: bool = Field(True, description="Serve the bundle under functions-framework.")
    allow_non_finite: bool = Field(
        False,
        description="The handler accepts NaN and infinite inputs (by default they get a 400).",
    )

    @model_validator(mode="after")
    def _cloud_run_limits(self):
        cpu = self.vcpu
        if cpu >= 1 and cpu not in WHOLE_CPUS:
            raise ValueError(f"cpu: at least 1 vCPU comes in {WHOLE_CPUS}, got {cpu:g}")
        if cpu < 1 and self.concurrency > 1:
            raise ValueError(
                f"concurrency {self.concurrency} needs at least 1 vCPU (cpu is {cpu:g}; set "
                "--cpu 1 or a memory of 2048 MiB or more)"
            )
        if self.memory_mib > 4096 * max(cpu, 1):
            raise ValueError(
                f"memory_mib {self.memory_mib} needs more than {cpu:g} vCPU (4 GiB per vCPU)"
            )
        return self

    @property
    def vcpu(self) -> float:
        return float(self.cpu) if self.cpu is not None else default_cpu(self.memory_mib)

    @property
    def python(self) -> str:
        return self.runtime.python

    def memory_flag(self) -> str:
        return f"{self.memory_mib}Mi"


class CloudRunTarget(GcpTarget):
    """The options of one Cloud Run service (the same app in a container); defaults are
    ``compress package cloudrun``'s."""

    cpu: float | None = Field(1.0, gt=0, le=8, description="vCPUs of each instance.")
    concurrency: int = Field(8, ge=1, le=1000, description="Requests one instance serves at once.")
    budget_mib: float = Field(1024.0, gt=0, description="Build context budget (model + app files).")
    unzipped_budget_mib: float = Field(
        10240.0, gt=0, description="Image budget: the build context plus installed modules."
    )


class GcfSection(GcpTarget):
    """``package: {gcf: ...}``: one function bundle of the chosen export variant."""

    variant: str | None = Field(None, description="export variant to package (default: smallest)")

    def target(self) -> GcpTarget:
        return GcpTarget(**self.model_dump(exclude={"variant"}))


class CloudRunSection(CloudRunTarget):
    """``package: {cloudrun: ...}``: one Cloud Run service bundle of the chosen variant."""

    variant: str | None = Field(None, description="export variant to package (default: smallest)")

    def target(self) -> CloudRunTarget:
        return CloudRunTarget(**self.model_dump(exclude={"variant"}))
