"""The TFLite exporter, validated with ai-edge-litert. Two backends: litert-torch (torch.export
-> LiteRT Torch, PT2E int8, no TensorFlow: litert.py) and onnx2tf (torch -> ONNX -> onnx2tf ->
SavedModel -> TFLiteConverter: convert.py); ``auto`` picks per model (``choose_backend``).

Variants: ``tflite-fp32`` (model.tflite), ``tflite-fp16`` (model.fp16.tflite),
``tflite-int8-dynamic`` (dynamic-range int8, model.int8-dynamic.tflite) and
``tflite-int8-full`` (full-integer int8 with int8 IO and a representative dataset from the
recipe's train split, model.int8.tflite). TensorFlow is imported only inside the onnx2tf path.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path

from pydantic import Field

from edgecompress.data import calibration_batches
from edgecompress.errors import ExportError, ValidationError
from edgecompress.exporters.base import ExportedModel, publish
from edgecompress.exporters.calibration import single_samples
from edgecompress.exporters.onnx.export import export_module
from edgecompress.exporters.tflite.convert import (
    NHWC_PERM,
    compact,
    convert,
    file_io,
    onnx_to_saved_model,
)
from edgecompress.exporters.tflite.litert_job import FILE_NAMES, LiteRTJob
from edgecompress.exporters.tflite.outliers import OutlierOptions
from edgecompress.exporters.validate import (
    LayoutRunner,
    Tolerances,
    ensure_baseline,
    torch_reference,
    validate,
)
from edgecompress.model import ModelBundle
from edgecompress.progress import log, progress
from edgecompress.quantspec import QuantScheme, realise, schemes_for
from edgecompress.registry import StepConfig, register_exporter
from edgecompress.runtimes import TFLiteRunner


class Backend(StrEnum):
    auto = "auto"  # text: litert-torch first; others: onnx2tf first; the other as fallback
    litert_torch = "litert-torch"
    onnx2tf = "onnx2tf"


class WeightScales(StrEnum):
    auto = "auto"  # int8-full: per-tensor on small models when it validates, else per-channel
    per_channel = "per-channel"
    per_tensor = "per-tensor"


# auto tries per-tensor first when per-channel parameters would add this share to the weights
PER_CHANNEL_SHARE = 0.05


TFLiteSchemes = schemes_for("tflite")


class TFLiteConfig(StepConfig):
    """Export to TFLite (litert-torch or onnx2tf) and realise the QuantSpec natively."""

    backend: Backend = Field(
        Backend.auto,
        description="litert-torch (torch.export, PT2E int8, no TensorFlow), onnx2tf (via ONNX "
        "and TensorFlow's converter) or auto: litert-torch for text models, onnx2tf for the "
        "others, each falling back to the other (when installed)",
    )
    sequence_length: int | None = Field(
        None,
        ge=2,
        description="litert-torch, text models: the file's fixed sequence length (texts are "
        "padded to it); default the task's max_length",
    )

    quantize: TFLiteSchemes = Field(
        None,
        description="variants to write (int8-static means int8-full, int8-weight-only "
        "int8-dynamic here); default: float plus the bundle's QuantSpec scheme",
    )
    opset: int = Field(18, ge=17, le=21, description="opset of the intermediate ONNX file")
    representative_samples: int = Field(
        128, ge=1, description="without a QuantSpec: samples of the representative dataset"
    )
    weight_scales: WeightScales = Field(
        WeightScales.auto,
        description="int8 weight scales; auto (int8-full): per-tensor when per-channel "
        "parameters (24 B a channel) would add >= 5 % to the weights and per-tensor passes "
        "validation, else per-channel",
    )
    compact_names: bool = Field(
        True, description="short tensor names and no conversion-metadata buffer in the file"
    )
    int8_outliers: OutlierOptions = Field(
        default_factory=OutlierOptions,
        description="litert-torch int8-full: SmoothQuant on LayerNorm -> Linear and own int8 "
        "scales for outlier Linear output channels (outliers.py)",
    )
    tolerance: Tolerances = Field(default_factory=Tolerances, description="validation limits")


def variants_for(bundle: ModelBundle, requested) -> list[str]:
    if requested is not None:
        return sorted(
            dict.fromkeys(QuantScheme(q).value for q in requested), key=lambda s: s != "none"
        )
    schemes = ["none"]
    spec = bundle.quant_spec
    if spec is not None:
        try:
            schemes.append(realise("tflite", spec.scheme).value)
        except ValueError as exc:
            raise ExportError(f"tflite: the QuantSpec scheme: {exc}") from None
    return schemes


@register_exporter("tflite", TFLiteConfig)
def export_tflite(bundle: ModelBundle, config: TFLiteConfig, ctx, out_dir: Path):
    """TFLite (fp32, fp16, dynamic-range int8, full-integer int8) via onnx2tf, validated."""
    if bundle.module is None:
        raise ExportError("tflite: needs a PyTorch model (this bundle was loaded from ONNX)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    schemes = variants_for(bundle, config.quantize)
    ensure_baseline(ctx, bundle)
    errors: dict[str, str] = {}
    for backend in choose_backend(config.backend, bundle.is_text):
        with tempfile.TemporaryDirectory(prefix=".tflite-", dir=out_dir) as tmp:
            job = (LiteRTJob if backend == Backend.litert_torch else _TFLiteJob)(
                bundle, config, ctx, Path(tmp)
            )
            try:
                made = job.run(schemes)
            except ExportError as exc:
                if config.backend != Backend.auto:
                    raise
                errors[backend.value] = str(exc)
                log.info("tflite backend %s failed: %s", backend.value, exc)
                continue
            for variant in made:
                variant.details["backend"] = backend.value
                variant.details["backend_choice"] = _why(config.backend, errors)
            return publish(made, out_dir)
    reasons = "; ".join(f"{k}: {v}" for k, v in errors.items())
    raise ExportError(f"tflite: no backend could export this model ({reasons})")


def choose_backend(choice: Backend, text: bool) -> list[Backend]:
    """The backends to try, in order. auto: text models litert-torch (onnx2tf fails on every
    transformer tried), other models onnx2tf (smaller full-int8 files at the same speed on the
    digits and ResNet-style CNNs, int8 IO, any batch: benchmarks/results/tflite-backends.md), each
    falling back to the other; a backend that is not installed is left out."""
    if choice != Backend.auto:
        return [choice]
    order = [Backend.litert_torch, Backend.onnx2tf]
    order = order if text else order[::-1]
    return [b for b in order if _installed(b)] or order


def _installed(backend: Backend) -> bool:
    from importlib.util import find_spec

    module = "litert_torch" if backend == Backend.litert_torch else "onnx2tf"
    return find_spec(module) is not None


def _why(choice: Backend, errors: dict[str, str]) -> str:
    if choice != Backend.auto:
        return "configured"
    if errors:
        return "auto: " + "; ".join(f"{k} failed: {v[:200]}" for k, v in errors.items())
    return "auto: first that converted and validated"


class _TFLiteJob:
    def __init__(self, bundle, config: TFLiteConfig, ctx, work: Path):
        self.bundle, self.config, self.ctx, self.work = bundle, config, ctx, work
        self.module = bundle.float_module or bundle.module

    def run(self, schemes: list[str]) -> list[ExportedModel]:
        with progress("TFLite export", total=len(schemes) + 1) as bar:
            self.saved, self.base_details = self.work / "saved_model", self._onnx()
            onnx_to_saved_model(self.work / "model.onnx", self.saved)
            bar.advance()
            self.reference = torch_reference(self.module, self.bundle, self.ctx)
            made = []
            for scheme in schemes:
                made.append(self._variant(scheme))
                bar.advance()
        return made

    def _onnx(self) -> dict:
        details = export_module(
            self.bundle, self.module, self.work / "model.onnx", self.config.opset, "auto"
        )
        return {
            "route": "torch -> ONNX -> onnx2tf -> SavedModel -> TFLiteConverter",
            "onnx": details,
        }

    def _variant(self, scheme: str) -> ExportedModel:
        mode = "fp32" if scheme == "none" else scheme
        choice = self.config.weight_scales
        if choice != WeightScales.auto or mode != "int8-full":
            return self._build(scheme, choice != WeightScales.per_tensor)
        share = per_channel_share(self.module)
        why = f"auto: per-channel parameters would add {share:.1%} to the int8 weights"
        if share < PER_CHANNEL_SHARE:
            return self._build(scheme, True, {"weight_scales_choice": why})
        try:
            return self._build(scheme, False, {"weight_scales_choice": f"{why}; validated"})
        except ValidationError as exc:
            log.info("per-tensor int8 failed validation (%s): per-channel instead", exc)
            return self._build(scheme, True, {"weight_scales_choice": f"{why}; per-tensor: {exc}"})

    def _build(self, scheme: str, per_channel: bool, extra: dict | None = None) -> ExportedModel:
        path = self.work / FILE_NAMES[scheme]
        mode = "fp32" if scheme == "none" else scheme
        details = dict(self.base_details)
        strip = self.config.compact_names
        rep = self._representative(scheme)
        details.update(convert(self.saved, path, mode, rep, per_channel, drop_metadata=strip))
        details.update(extra or {})
        if strip:
            details.update(compact(path, self.bundle.io))
        io, perms = file_io(path, self.bundle.io)
        details["input_layout"] = {n: "NHWC" for n in perms} or "as in torch"
        runner = TFLiteRunner(path, threads=1, io=io)
        validated = LayoutRunner(runner, perms) if perms else runner
        log.info("validating tflite %s", mode)
        validation = validate(
            validated, self.bundle, self.ctx, mode, self.config.tolerance, self.reference
        )
        return ExportedModel(f"tflite-{mode}", "tflite", path, mode, io, validation, details)

    def _representative(self, scheme: str):
        if scheme != "int8-full":
            return None

        spec = self.bundle.quant_spec
        n = spec.calibration_samples if spec else self.config.representative_samples
        batches = calibration_batches(self.bundle, self.ctx, n, batch_size=16)
        names = self.bundle.io.input_names

        def dataset():
            for feeds in single_samples(batches):
                yield [_to_file_layout(feeds[k], NHWC_PERM) for k in names]

        return dataset


def per_channel_share(module) -> float:
    """What per-channel int8 parameters (float32 scale + int64 zero point for the weights and
    the int32 bias of each output channel) add to the int8 weights of Conv / Linear layers."""
    from torch import nn

    channels = weights = 0
    for layer in module.modules():
        if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            channels += layer.weight.shape[0]
            weights += layer.weight.numel()
    return 24 * channels / weights if weights else 0.0


def _to_file_layout(array, perm):
    import numpy as np

    return np.transpose(array, perm) if array.ndim == 4 else array
