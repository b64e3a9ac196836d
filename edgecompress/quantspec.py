"""QuantSpec: the declarative description of a quantization, realised by every backend.

The ``quantize`` compressor records one on the ModelBundle (and applies the torch realisation);
the ONNX exporter realises it with onnxruntime's quantizers, the TFLite exporter with the
converter's optimisations. One recipe, every backend.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator


class QuantScheme(str, Enum):
    """The one scheme vocabulary: recipes, the CLI and every backend speak it."""

    none = "none"  # float: an exporter's unquantized variant
    int8_static = "int8-static"  # int8 weights and activations, calibrated ranges
    int8_dynamic = "int8-dynamic"  # int8 weights, activations quantized per call
    int8_token = "int8-token"  # ONNX: per-token int8 activations, float outliers, GPTQ weights
    int8_weight_only = "int8-weight-only"  # int8 weights, float activations
    int4_weight_only = "int4-weight-only"  # int4 group-wise weights, float activations
    fp16 = "fp16"
    int8_full = "int8-full"  # TFLite full integer: int8 weights, activations and IO


S = QuantScheme
# What each backend makes of a scheme: the scheme it realises (absent: it cannot).
REALISATIONS: dict[str, dict[QuantScheme, QuantScheme]] = {
    "torch": {s: s for s in (S.int8_static, S.int8_dynamic, S.int8_weight_only,
                             S.int4_weight_only, S.fp16)},
    "onnx": {s: s for s in (S.none, S.int8_static, S.int8_dynamic, S.int8_token,
                            S.int8_weight_only, S.int4_weight_only, S.fp16)}
    | {S.int8_full: S.int8_static},
    "tflite": {S.none: S.none, S.fp16: S.fp16, S.int8_dynamic: S.int8_dynamic,
               S.int8_weight_only: S.int8_dynamic, S.int8_static: S.int8_full,
               S.int8_full: S.int8_full},
}  # fmt: skip


def realised_by(backend: str) -> list[QuantScheme]:
    """The schemes ``backend`` accepts (it may realise several as the same one)."""
    return list(REALISATIONS[backend])


def schemes_for(backend: str) -> Any:
    """A config field's type: a list of schemes, each validated into what ``backend`` makes of
    it (a scheme it cannot realise is a validation error naming the ones it can)."""

    def check(value: list[QuantScheme] | None) -> list[QuantScheme] | None:
        return None if value is None else [realise(backend, q) for q in value]

    return Annotated[list[QuantScheme] | None, AfterValidator(check)]


def realise(backend: str, scheme: QuantScheme | str) -> QuantScheme:
    """``scheme`` as ``backend`` realises it; ValueError naming what it can realise."""
    scheme = QuantScheme(scheme)
    table = REALISATIONS[backend]
    if scheme not in table:
        names = ", ".join(s.value for s in table)
        raise ValueError(f"{backend} cannot realise {scheme.value} (it realises {names})")
    return table[scheme]


class CalibrationMethod(str, Enum):
    minmax = "minmax"
    percentile = "percentile"
    entropy = "entropy"


SCHEME_BITS = {
    QuantScheme.none: 32,
    QuantScheme.int8_token: 8,
    QuantScheme.int8_full: 8,
    QuantScheme.int8_dynamic: 8,
    QuantScheme.int8_static: 8,
    QuantScheme.int8_weight_only: 8,
    QuantScheme.int4_weight_only: 4,
    QuantScheme.fp16: 16,
}


@dataclass
class QuantSpec:
    scheme: QuantScheme
    group_size: int = 128  # int4 only
    symmetric: bool = True  # int4: False adds zero points
    per_channel: bool = True  # int8 weights: one scale per output channel
    calibration_method: CalibrationMethod = CalibrationMethod.minmax
    calibration_samples: int = 128
    keep_float: list[str] = field(default_factory=list)  # fnmatch patterns on module names

    @property
    def bits(self) -> int:
        return SCHEME_BITS[self.scheme]

    def keeps_float(self, module_name: str) -> bool:
        return any(fnmatch.fnmatchcase(module_name, p) for p in self.keep_float)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scheme"] = self.scheme.value
        d["calibration_method"] = self.calibration_method.value
        d["bits"] = self.bits
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QuantSpec:
        d = {k: v for k, v in d.items() if k != "bits"}
        d["scheme"] = QuantScheme(d["scheme"])
        if "calibration_method" in d:
            d["calibration_method"] = CalibrationMethod(d["calibration_method"])
        return cls(**d)
