"""``classifier_head``: turn a sentence encoder (a ``model: {hf: DIR}`` without a classifier,
e.g. all-MiniLM-L6-v2) into a text classifier for the recipe's labelled data.

A linear head over the encoder's pooled, L2-normalised embedding is initialised at the
train split's class centroids (logits = ``scale`` x cosine to each centroid: a nearest-centroid
classifier that is already accurate), then the encoder and head are fine-tuned together on
the train split (cross-entropy, AdamW, cosine decay, the best epoch on the val split kept).
The bundle's output becomes ``logits`` [batch, classes] and the run's baseline becomes this
classifier, so later steps, exports and gates are measured against it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgecompress.compressors.finetune import finetune
from edgecompress.errors import CompressorError
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.metrics import predict
from edgecompress.model import ModelBundle, TaskKind
from edgecompress.registry import StepConfig, register_compressor
from edgecompress.runtimes import TorchRunner


class ClassifierHeadConfig(StepConfig):
    """Linear classification head on a sentence encoder, fine-tuned on the task's labels."""

    epochs: int = Field(3, ge=0, description="fine-tuning epochs (0: the centroid head only)")
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate (encoder and head)")
    batch_size: int = Field(16, ge=1, description="sentences per training step")
    scale: float = Field(20.0, gt=0, description="logit scale of the centroid initialisation")


def _classifier(encoder, weight: np.ndarray):
    """encoder -> Linear(dim, classes), weight initialised to ``weight``, bias 0."""
    import torch
    from torch import nn

    class EncoderClassifier(nn.Module):
        output_name = "logits"

        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(torch.from_numpy(weight))
                self.head.bias.zero_()

        def forward(self, *inputs):
            return self.head(self.encoder(*inputs))

    return EncoderClassifier().eval()


def centroids(embeddings: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Unit-length mean embedding of each class ([classes, dim]; zero for an absent class)."""
    out = np.zeros((classes, embeddings.shape[1]), dtype=np.float32)
    for c in range(classes):
        rows = embeddings[labels == c]
        if len(rows):
            mean = rows.mean(0)
            out[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def _check(bundle: ModelBundle, ctx) -> int:
    """The number of classes; refuses what cannot take a head."""
    if bundle.tokenizer_dir is None or bundle.task.kind != TaskKind.classification:
        raise CompressorError(
            "classifier_head: needs a text encoder (model: {hf: DIR}) and task.kind classification"
        )
    outputs = bundle.io.outputs
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise CompressorError(
            "classifier_head: the model must output one embedding per text ([batch, dim]); "
            f"it outputs {[list(o.shape) for o in outputs]}"
        )
    labels = ctx.data.train.labels
    if labels is None or ctx.data.train.texts is None:
        raise CompressorError(f"classifier_head: {ctx.data.name} has no labelled texts")
    names = ctx.data.class_names
    return len(names) if names else int(labels.max()) + 1


@register_compressor("classifier_head", ClassifierHeadConfig)
def classifier_head(bundle: ModelBundle, config: ClassifierHeadConfig, ctx):
    """Linear head at the class centroids of a sentence encoder, then fine-tuned end to end."""
    classes = _check(bundle, ctx)
    train = ctx.data.train
    embeddings = predict(TorchRunner(bundle.module, bundle.io).run, bundle, train)
    weight = config.scale * centroids(embeddings, train.labels, classes)
    module = _classifier(bundle.clone_module(), weight)
    batch = bundle.io.outputs[0].shape[0]
    io = IOSpec(bundle.io.inputs, [TensorSpec("logits", "float32", (batch, classes))])
    names = ctx.data.class_names or list(map(str, range(classes)))
    # id2label travels in the ONNX file's metadata: the Lambda handler answers label names
    extra = {
        **bundle.extra,
        "class_names": names,
        "id2label": {str(i): n for i, n in enumerate(names)},
    }
    new = bundle.replace(module=module, io=io, extra=extra, float_module=None, quant_spec=None)
    before = ctx.evaluate_bundle(new)["value"]
    if config.epochs:
        finetune(module, new, ctx, config.epochs, config.lr, config.batch_size)
    metric = ctx.set_baseline(new)  # exports and gates compare to this classifier
    stats = {
        "classes": classes,
        "centroid_accuracy": round(before, 4),
        "finetuned_accuracy": round(metric["value"], 4),
    }
    return new, stats
