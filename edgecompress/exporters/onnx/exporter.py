"""The ONNX exporter: torch -> ONNX (+ ORT optimisations / transformer fusions) -> quantized
variants realised with onnxruntime from the bundle's QuantSpec, each validated.

Variants: ``onnx-fp32`` (model.onnx), ``onnx-int8-static`` / ``onnx-int8-dynamic``
(model.int8.onnx), ``onnx-int8-token`` (model.int8-token.onnx: onnx_token_int8.py),
``onnx-int4-weight-only`` (model.int4.onnx), ``onnx-fp16`` (model.fp16.onnx).
Everything is built in a temp folder inside ``out_dir`` and moved in only when every variant
validated: a failure leaves no partial file.
"""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path

from pydantic import Field

from edgecompress.data import calibration_batches
from edgecompress.errors import DataError, ExportError
from edgecompress.exporters.base import ExportedModel, publish
from edgecompress.exporters.onnx import kv_cache
from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.exporters.onnx import quantize as oq
from edgecompress.exporters.onnx.export import export_module
from edgecompress.exporters.onnx.optimize import fuse_transformer, optimize, transformer_config
from edgecompress.exporters.onnx.padding_mask import mask_sites, soften_padding_mask
from edgecompress.exporters.onnx.sharing import TokenSharing
from edgecompress.exporters.onnx.token_int8 import quantize_token_int8
from edgecompress.exporters.validate import Tolerances, ensure_baseline, torch_reference, validate
from edgecompress.metrics import predict
from edgecompress.model import ModelBundle
from edgecompress.progress import log, progress
from edgecompress.quantspec import CalibrationMethod, QuantScheme, QuantSpec, realise, schemes_for
from edgecompress.registry import StepConfig, register_exporter
from edgecompress.runtimes import OnnxRunner


class TorchExporter(StrEnum):
    auto = "auto"  # dynamo first (TorchScript first for transformers: ORT fuses its graphs)
    dynamo = "dynamo"
    torchscript = "torchscript"


class OptimizeLevel(StrEnum):
    none = "none"
    basic = "basic"  # portable: constant folding, redundant nodes, Conv+BN
    extended = "extended"  # ORT-only fused ops (FusedConv ...): runs on onnxruntime only


class StaticFormat(StrEnum):
    qoperator = "qoperator"  # QLinearConv/QGemm, U8S8 + reduce_range (fast, small on AVX2)
    qdq = "qdq"  # QuantizeLinear/DequantizeLinear pairs, S8S8 (portable to other EPs)


OnnxSchemes = schemes_for("onnx")


class OnnxConfig(StepConfig):
    """Export to ONNX and realise the QuantSpec with onnxruntime's quantizers."""

    quantize: OnnxSchemes = Field(
        None,
        description="variants to write (int8-full means int8-static here); default: float plus "
        "the bundle's QuantSpec scheme",
    )
    opset: int = Field(18, ge=17, le=21, description="ONNX opset (>= 17)")
    exporter: TorchExporter = Field(TorchExporter.auto, description="torch.onnx exporter")
    optimize: OptimizeLevel = Field(OptimizeLevel.basic, description="ORT graph optimisation")
    fuse_transformer: bool = Field(
        True, description="BERT-like encoders: ORT transformer optimizer fusions (Attention ...)"
    )
    static_format: StaticFormat = Field(StaticFormat.qoperator, description="int8-static format")
    per_channel: bool = Field(True, description="int8 weights: one scale per output channel")
    calibration_samples: int = Field(128, ge=1, description="without a QuantSpec: calibration")
    calibration_method: CalibrationMethod = Field(CalibrationMethod.minmax, description="ditto")
    group_size: int = Field(128, ge=16, description="without a QuantSpec: int4 block size")
    symmetric: bool = Field(
        True, description="without a QuantSpec: weight-only blocks symmetric (False: zero points)"
    )
    int4_embeddings: bool = Field(
        True,
        description="int4: embedding tables read by Gather become GatherBlockQuantized "
        "(com.microsoft contrib op: a recent onnxruntime; the file moves to opset 21)",
    )
    nbits_accuracy_level: int = Field(
        4,
        ge=0,
        le=4,
        description="MatMulNBits compute type: 0 float activations, 4 int8 activations "
        "(integer path on AVX2 / AVX512-VNNI)",
    )
    int4_keep_8bit: list[str] = Field(
        default_factory=list,
        description="int4: module-path patterns (fnmatch, like keep_float) whose MatMuls get "
        "8-bit weights instead",
    )
    token_outliers: int = Field(
        8,
        ge=0,
        le=64,
        description="int8-token: input channels per MatMul input kept float (largest "
        "calibrated |x|)",
    )
    gptq: bool = Field(
        True, description="int8-token: GPTQ weight rounding (False: round to nearest)"
    )
    token_attention_fusion: bool = Field(
        False,
        description="int8-token: each float attention core as one com.microsoft."
        "MultiHeadAttention node, checked against the unfused graph (MiniLM: faster on padded "
        "batches, not at real lengths: benchmarks/results/int8-token-profile.md)",
    )
    token_sharing: TokenSharing | None = Field(
        None,
        description="int8-token: weights GPTQ-rounded onto shared grids and embedding rows "
        "snapped (fewer distinct values: smaller `storage: compressed` zips, lower accuracy)",
    )
    padding_mask: bool = Field(
        True,
        description="text encoders: the attention mask's finfo.min padding value becomes -50 "
        "(its exp() is a denormal that slows softmax ~3x on padded batches), checked on "
        "padded calibration batches and left as it is if any output moves",
    )
    compact_names: bool = Field(True, description="shorten internal names of quantized files")
    tolerance: Tolerances = Field(default_factory=Tolerances, description="validation limits")


FILE_NAMES = {
    "none": "model.onnx",
    "int8-static": "model.int8.onnx",
    "int8-dynamic": "model.int8.onnx",
    "int8-token": "model.int8-token.onnx",
    "int8-weight-only": "model.int8-wo.onnx",
    "int4-weight-only": "model.int4.onnx",
    "fp16": "model.fp16.onnx",
}


def variants_for(bundle: ModelBundle, requested) -> list[str]:
    """The schemes to write, in order, float first."""
    if requested is None:
        requested = [QuantScheme.none]
        if bundle.quant_spec is not None:
            requested.append(realise("onnx", bundle.quant_spec.scheme))
    schemes = list(dict.fromkeys(QuantScheme(q).value for q in requested))
    return sorted(schemes, key=lambda s: s != "none")


def file_name(scheme: str, schemes: list[str]) -> str:
    both = {"int8-static", "int8-dynamic"} <= set(schemes)
    shared = scheme in ("int8-static", "int8-dynamic")
    return f"model.{scheme}.onnx" if both and shared else FILE_NAMES[scheme]


def spec_for(bundle: ModelBundle, config: OnnxConfig, scheme: str) -> QuantSpec:
    spec = bundle.quant_spec
    if spec is not None and spec.scheme.value == scheme:
        return spec
    return QuantSpec(
        QuantScheme(scheme),
        group_size=config.group_size,
        symmetric=config.symmetric,
        per_channel=config.per_channel,
        calibration_method=config.calibration_method,
        calibration_samples=config.calibration_samples,
        keep_float=list(spec.keep_float) if spec else [],
    )


@register_exporter("onnx", OnnxConfig)
def export_onnx(bundle: ModelBundle, config: OnnxConfig, ctx, out_dir: Path) -> list[ExportedModel]:
    """ONNX (fp32, int8 static/dynamic, int4 MatMulNBits, fp16) via onnxruntime, validated."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    schemes = variants_for(bundle, config.quantize)
    if bundle.module is not None:
        ensure_baseline(ctx, bundle)
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=out_dir) as tmp:
        return publish(_Job(bundle, config, ctx, Path(tmp), schemes).run(), out_dir)


class _Job:
    """One export: the float file, then every requested variant from it."""

    def __init__(self, bundle, config: OnnxConfig, ctx, work: Path, schemes: list[str]):
        self.bundle, self.config, self.ctx, self.work = bundle, config, ctx, work
        self.schemes = schemes
        self.module = bundle.float_module or bundle.module
        self._sources: dict[Path, dict] = {}

    def run(self) -> list[ExportedModel]:
        with progress("ONNX export", total=len(self.schemes) + 1) as bar:
            self.float_path, self.base_details = self._export_float()
            bar.advance()
            self.reference = self._reference()
            made = []
            for scheme in self.schemes:
                made.append(self._variant(scheme))
                bar.advance()
        return made

    def _export_float(self) -> tuple[Path, dict]:
        raw = self.work / "raw.onnx"
        if self.module is None:
            if self.bundle.onnx_path is None:
                raise ExportError("onnx: the bundle has neither a torch module nor an ONNX file")
            shutil.copyfile(self.bundle.onnx_path, raw)
            details = {"exporter": "none (bundle loaded from ONNX)"}
        else:
            details = export_module(
                self.bundle, self.module, raw, self.config.opset, self.config.exporter.value
            )
        if self.bundle.is_text:
            wrapper = type(self.bundle.module).__name__
            details["hf_export"] = f"torch.onnx on the {wrapper} wrapper (optimum not installed)"
        path = self.work / "float.onnx"
        details.update(
            optimize(
                raw, path, self.bundle, self.config.optimize.value, self.config.fuse_transformer
            )
        )
        if self.config.padding_mask:
            details.update(self._soften_padding_mask(path))
        return path, details

    def _soften_padding_mask(self, path: Path) -> dict:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        if not mask_sites(model):
            return {}
        if any(i.data_location == onnx.TensorProto.EXTERNAL for i in model.graph.initializer):
            return {"padding_mask": "unchanged (weights in external data files)"}
        try:
            feeds = calibration_batches(self.bundle, self.ctx, 32, batch_size=8)
        except DataError:
            return {"padding_mask": "unchanged (no train split to check it on)"}
        model, details = soften_padding_mask(model, feeds)
        onnx.save(model, str(path))
        return details

    def _reference(self):
        """Outputs every variant is compared to: the torch module's (or the source file's)."""

        if self.module is not None:
            return torch_reference(self.module, self.bundle, self.ctx)
        source = OnnxRunner(self.bundle.onnx_path, io=self.bundle.io)
        if not self.ctx.baseline:
            metric, out = self.ctx.evaluate_runner(source, self.bundle)
            self.ctx.baseline, self.ctx.reference_outputs = metric, out
        return predict(source.run, self.bundle, self.ctx.eval_split)

    def _variant(self, scheme: str) -> ExportedModel:
        path = self.work / file_name(scheme, self.schemes)
        details = dict(self.base_details)
        details.update(self._realise(scheme, path))
        facts = onnx_metadata.stamp(path, onnx_metadata.serving_facts(self.bundle.extra))
        if facts:
            details["serving_metadata"] = sorted(facts)  # family, id2label, image preprocessing
        runner = OnnxRunner(path, threads=1, io=self.bundle.io)
        log.info("validating onnx %s", scheme)
        name = "fp32" if scheme == "none" else scheme
        validation = validate(
            runner, self.bundle, self.ctx, name, self.config.tolerance, self.reference
        )
        return ExportedModel(
            f"onnx-{name}", "onnx", path, name, self.bundle.io, validation, details
        )

    def _realise(self, scheme: str, path: Path) -> dict:
        if scheme == "none":
            shutil.copyfile(self.float_path, path)
            return {}
        if scheme == "int8-token":
            details = self._token_int8(path)
        else:
            spec = spec_for(self.bundle, self.config, scheme)
            exclude = oq.excluded_nodes(self.float_path, spec.keep_float)
            details = {"quant_spec": spec.to_dict()}
            details.update(self._quantize(scheme, spec, path, exclude))
        if self.config.compact_names and scheme.startswith("int8"):
            details.update(oq.compact_names(path))
        return details

    def _quantize(self, scheme: str, spec: QuantSpec, path: Path, exclude: list[str]) -> dict:
        if scheme == "int8-static":
            kv_cache.refuse_static(self.float_path)  # causal LMs with a KV cache
            batches = calibration_batches(
                self.bundle, self.ctx, spec.calibration_samples, batch_size=16
            )
            return oq.quantize_static(
                self.float_path,
                path,
                batches,
                spec.calibration_method.value,
                spec.per_channel,
                self.config.static_format.value,
                exclude,
            )
        if scheme == "int8-dynamic":
            return oq.quantize_dynamic(self.float_path, path, spec.per_channel, exclude)
        if scheme in ("int4-weight-only", "int8-weight-only"):
            return self._nbits(4 if scheme.startswith("int4") else 8, spec, path)
        return oq.convert_fp16(self.float_path, path, exclude)

    def _token_int8(self, path: Path) -> dict:
        source, details = self._unfused_source(embed=True)
        keep = self.bundle.quant_spec.keep_float if self.bundle.quant_spec else []
        batches = calibration_batches(
            self.bundle, self.ctx, self.config.calibration_samples, batch_size=16
        )
        batches = kv_cache.calibration_feeds(source, batches)  # causal LMs: an empty past
        details["quant_spec"] = {"scheme": "int8-token", "bits": 8, "keep_float": list(keep)}
        sharing = self.config.token_sharing
        details.update(
            quantize_token_int8(
                source,
                path,
                batches,
                self.config.token_outliers,
                oq.excluded_nodes(source, keep),
                self.config.gptq,
                attention_fusion=self.config.token_attention_fusion,
                rounding=sharing.rounding() if sharing else None,
            )
        )
        if sharing:
            details["token_sharing"] = sharing.model_dump(exclude_none=True)
            details.update(sharing.share_tables(path))
        return details

    def _nbits(self, bits: int, spec: QuantSpec, path: Path) -> dict:
        source, details = self._unfused_source(embed=bits != 4 or not self.config.int4_embeddings)
        exclude = oq.excluded_nodes(source, spec.keep_float)
        keep_8bit = oq.excluded_nodes(source, self.config.int4_keep_8bit) if bits == 4 else []
        details.update(
            oq.quantize_nbits(
                source,
                path,
                bits,
                spec.group_size,
                spec.symmetric,
                exclude,
                accuracy_level=self.config.nbits_accuracy_level,
                gather=self.config.int4_embeddings,
                keep_8bit=keep_8bit,
            )
        )
        return details

    def _unfused_source(self, embed: bool) -> tuple[Path, dict]:
        """For MatMulNBits: the transformer graph with the Q/K/V MatMuls not fused into
        Attention (and with ``embed`` False, the embedding Gathers not fused into
        EmbedLayerNormalization, so GatherBlockQuantized can take the tables)."""

        if transformer_config(self.bundle) is None or not self.config.fuse_transformer:
            return self.float_path, {}
        path = self.work / ("float.noattn.onnx" if embed else "float.noattn-noembed.onnx")
        if path not in self._sources:
            spec = transformer_config(self.bundle)
            self._sources[path] = fuse_transformer(
                self.work / "raw.onnx", path, spec, attention=False, embed_layer_norm=embed
            )
        return path, dict(self._sources[path])
