"""The litert-torch backend of the TFLite exporter: one validated file per scheme."""

from __future__ import annotations

from pathlib import Path

from edgecompress.data import calibration_batches
from edgecompress.exporters.base import ExportedModel
from edgecompress.exporters.calibration import single_samples
from edgecompress.exporters.tflite.litert import (
    convert_module,
    file_io,
    op_precision,
    static_shapes,
    torch_args,
)
from edgecompress.exporters.validate import torch_reference, validate
from edgecompress.progress import log, progress
from edgecompress.runtimes import RowRunner, TFLiteRunner, pad_row

FILE_NAMES = {
    "none": "model.tflite",
    "fp16": "model.fp16.tflite",
    "int8-dynamic": "model.int8-dynamic.tflite",
    "int8-full": "model.int8.tflite",
}


class LiteRTJob:
    """torch.export + litert-torch for each scheme, each file validated with ai-edge-litert."""

    def __init__(self, bundle, config, ctx, work: Path):
        self.bundle, self.config, self.ctx, self.work = bundle, config, ctx, work
        self.module = bundle.float_module or bundle.module
        length = config.sequence_length or bundle.task.max_length
        self.shapes = static_shapes(bundle, length)
        names = bundle.io.input_names
        self.args = torch_args(pad_row(_first_row(bundle.example_inputs), self.shapes), names)

    def run(self, schemes: list[str]) -> list[ExportedModel]:
        with progress("TFLite export (litert-torch)", total=len(schemes) + 1) as bar:
            self.reference = torch_reference(self.module, self.bundle, self.ctx)
            bar.advance()
            made = []
            for scheme in schemes:
                made.append(self._build(scheme))
                bar.advance()
        return made

    def _build(self, scheme: str) -> ExportedModel:
        mode = "fp32" if scheme == "none" else scheme
        path = self.work / FILE_NAMES[scheme]
        calibration = self._calibration() if mode == "int8-full" else None
        details = {"route": "torch.export -> litert-torch -> .tflite"}
        outliers = self.config.int8_outliers
        details.update(convert_module(self.module, self.args, path, mode, calibration, outliers))
        io = file_io(path, self.bundle.io)
        if mode == "int8-full":
            details.update(op_precision(path))
        details["static_shapes"] = {k: list(v) for k, v in self.shapes.items()}
        details["input_layout"] = "as in torch"
        runner = RowRunner(TFLiteRunner(path, threads=1, io=io), self.shapes)
        log.info("validating tflite %s (litert-torch)", mode)
        validation = validate(
            runner, self.bundle, self.ctx, mode, self.config.tolerance, self.reference
        )
        return ExportedModel(f"tflite-{mode}", "tflite", path, mode, io, validation, details)

    def _calibration(self) -> list[tuple]:
        spec = self.bundle.quant_spec
        n = spec.calibration_samples if spec else self.config.representative_samples
        batches = calibration_batches(self.bundle, self.ctx, n, batch_size=16)
        names = self.bundle.io.input_names
        return [torch_args(pad_row(f, self.shapes), names) for f in single_samples(batches)]


def _first_row(feeds: dict) -> dict:
    return {k: v[:1] for k, v in feeds.items()}
