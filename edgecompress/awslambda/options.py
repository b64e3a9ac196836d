"""The options of AWS Lambda targets: one pydantic model per scope, used whole by recipes
(``package: {lambda: ...}``) and by ``compress package lambda`` (its flags are these fields)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Arch(str, Enum):
    arm64 = "arm64"
    x86_64 = "x86_64"


class LambdaPython(str, Enum):
    py311 = "3.11"
    py312 = "3.12"
    py313 = "3.13"


MEMORY_MB_RANGE = (128, 10240)  # Lambda's function memory, in 1 MB steps


class Storage(str, Enum):
    """How the model's weights ship in a zip: as the model file ('plain'), or 'compressed'
    (a skeleton ONNX + entropy-coded weights that decoder.py rebuilds at cold start)."""

    plain = "plain"
    compressed = "compressed"


class LambdaOptions(_Options):
    """What every Lambda function built from one recipe (or one ``compress package lambda``)
    shares; the descriptions are the CLI's help texts."""

    python: LambdaPython = Field(LambdaPython.py312, description="Lambda runtime pythonX.Y.")
    budget_mib: float = Field(
        50.0, gt=0, description="Zipped size budget (direct upload limit is 50 MiB)."
    )
    unzipped_budget_mib: float = Field(250.0, gt=0, description="Unzipped size budget.")
    self_check: bool = Field(True, description="Run the zip under awslambdaric where possible.")
    timeout_s: int = Field(30, ge=1, le=900, description="Function timeout in seconds.")
    allow_non_finite: bool = Field(
        False,
        description="The handler accepts NaN and infinite inputs (by default they get a 400).",
    )
    storage: Storage = Field(
        Storage.plain,
        description="Weights in the zip: 'plain' model file, or 'compressed' (skeleton ONNX + "
        "coded weights, decoded in memory at cold start; ONNX only, lossless).",
    )
    max_new_tokens: int = Field(
        64,
        ge=1,
        le=4096,
        description="Causal LMs: most tokens one request may generate "
        "(a larger max_new_tokens gets a 400).",
    )
    snapstart: bool = Field(
        False,
        description="Lambda SnapStart (python 3.12+): snapshot hooks in the zip, SnapStart "
        "and an alias in template.yaml, its cache and restore charges in the cost table.",
    )

    @field_validator("snapstart")
    @classmethod
    def _snapstart_python(cls, value: bool, info):
        python = info.data.get("python")
        version = tuple(int(p) for p in str(getattr(python, "value", python)).split("."))
        if value and python is not None and version < (3, 12):
            raise ValueError(
                "Lambda SnapStart for Python needs python 3.12 or later, and python is "
                f"{getattr(python, 'value', python)}"
            )
        return value


class LambdaTarget(LambdaOptions):
    """The options of one Lambda function: what ``build_lambda_zip`` takes, whole. Its
    defaults are ``compress package lambda``'s."""

    arch: Arch = Field(Arch.x86_64, description="Lambda architecture.")
    memory_mb: int = Field(
        1024,
        ge=MEMORY_MB_RANGE[0],
        le=MEMORY_MB_RANGE[1],
        description="Function memory (threads = memory / 1769 MB, at least 1).",
    )


class LambdaSection(LambdaOptions):
    """``package: {lambda: ...}``: one zip per arch; the cost table covers every memory_mb."""

    arch: list[Arch] = Field(default_factory=lambda: [Arch.x86_64], description="targets")
    memory_mb: list[int] = Field(default_factory=lambda: [512, 1024, 2048])
    variant: str | None = Field(None, description="export variant to package (default: last)")

    @model_validator(mode="after")
    def _memory_range(self):
        low, high = MEMORY_MB_RANGE
        bad = [m for m in self.memory_mb if not low <= m <= high]
        if bad:
            raise ValueError(f"memory_mb must be within {low}..{high} MB, got {bad}")
        return self

    def for_arch(self, arch: Arch | str) -> LambdaTarget:
        """The function built for ``arch``: the shared options, and the largest memory_mb
        (the template's MemorySize and the self-check's memory)."""
        shared = self.model_dump(include=set(LambdaOptions.model_fields))
        memory = max(self.memory_mb, default=LambdaTarget.model_fields["memory_mb"].default)
        return LambdaTarget(arch=arch, memory_mb=memory, **shared)
