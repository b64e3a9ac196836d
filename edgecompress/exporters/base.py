"""What an exporter returns: the file, its real IO spec, and how it validated."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress.iospec import IOSpec


@dataclass
class ExportedModel:
    name: str  # variant name, unique in a run: "onnx-fp32", "tflite-int8-full" ...
    format: str  # "onnx" | "tflite"
    path: Path
    scheme: str  # "fp32", "fp16", "int8-dynamic", "int8-static", "int4-weight-only" ...
    io: IOSpec  # the file's real layout and dtypes (NHWC after onnx2tf, int8 with scales ...)
    validation: dict = field(default_factory=dict)  # max_abs_diff, cosine, metric, passed ...
    details: dict = field(default_factory=dict)  # choices made: opset, QDQ/QOperator, fusions

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def to_dict(self, root: Path | None = None) -> dict:
        path = self.path.relative_to(root) if root else self.path
        return {
            "name": self.name,
            "format": self.format,
            "path": str(path),
            "scheme": self.scheme,
            "size_bytes": self.size_bytes,
            "io": self.io.to_dict(),
            "validation": self.validation,
            "details": self.details,
        }


def publish(variants: list[ExportedModel], out_dir: Path) -> list[ExportedModel]:
    """Move every validated file from the exporter's temp folder into ``out_dir`` (only once
    all variants have validated, so a failed export leaves no partial file there)."""

    for variant in variants:
        final = Path(out_dir) / variant.path.name
        shutil.move(str(variant.path), final)
        variant.path = final
    return variants
