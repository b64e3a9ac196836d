"""Image classification family (AutoModelForImageClassification: ViT / DeiT, ResNet, ConvNeXt,
MobileNet, EfficientNet, Swin ...): pixel_values in, logits out, label names from id2label."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from torch import nn

from edgecompress.data import DataSplits, Split, load_digits
from edgecompress.hf.family import Family, from_pretrained
from edgecompress.hf.preprocess import ImagePreprocess, example_images, pixels, read_preprocess
from edgecompress.hf.text import label_names
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import ModelBundle, TaskKind, infer_outputs


class HFImageClassifier(nn.Module):
    """Wraps a transformers image classifier: pixel_values in, logits out (a plain tensor)."""

    output_name = "logits"
    input_names = ["pixel_values"]

    def __init__(self, model: nn.Module, preprocess: ImagePreprocess):
        super().__init__()
        self.model = model
        self.preprocess = preprocess  # what the loader records and the Lambda handler applies

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def load_vision_module(folder: Path, config) -> HFImageClassifier:
    """The wrapped classifier, with the preprocessing its pixel inputs need."""
    from transformers import AutoModelForImageClassification

    pre = read_preprocess(folder, config)
    return HFImageClassifier(from_pretrained(AutoModelForImageClassification, folder), pre).eval()


def example_pixels(pre: ImagePreprocess, count: int = 2) -> np.ndarray:
    """Example inputs: deterministic synthetic images through the model's preprocessing."""
    return pixels(example_images(count), pre)


DIGIT_NAMES = {str(i): str(i) for i in range(10)}
UNLABELLED_DIGITS = "edgecompress.hf.vision:unlabelled_digits"


def unlabelled_digits() -> DataSplits:
    """scikit-learn's digits without their labels: real images for calibration and for
    top-1 agreement with the float model, for an image classifier that does not classify
    digits."""
    digits = load_digits()

    def strip(split: Split) -> Split:
        return Split(x=split.x)

    return DataSplits(
        "digits (unlabelled)",
        strip(digits.train),
        strip(digits.val),
        strip(digits.test),
        meta={**digits.meta, "labels": "none: accuracy is top-1 agreement with the float model"},
    )


def default_data(config, task_data: str) -> str:
    """The data of an image classifier given none: scikit-learn's digits (8 x 8, upscaled by
    the preprocessing), with their labels only when the model classifies the ten digits;
    otherwise unlabelled, and accuracy is top-1 agreement with the model being exported."""
    if task_data not in ("digits", "sentences"):
        return task_data  # the user's
    names = label_names(config)
    if int(getattr(config, "num_labels", 0)) == 10 and names in (None, DIGIT_NAMES):
        return "digits"
    return UNLABELLED_DIGITS


def vision_bundle(module: HFImageClassifier, config, task, folder: Path):
    """The ModelBundle of an image classifier: pixel_values [batch, C, H, W] float32 with
    example inputs, logits out; preprocessing and label names recorded in ``extra``."""
    pre = module.preprocess
    spec = TensorSpec("pixel_values", "float32", ("batch", pre.channels, pre.height, pre.width))
    examples = {"pixel_values": example_pixels(pre)}
    io = IOSpec([spec], infer_outputs(module, [spec], examples, [module.output_name]))
    if task.kind == TaskKind.embedding and task.data == "sentences":  # the CLI's folder default
        task = dataclasses.replace(task, kind=TaskKind.classification, metric="accuracy")
    task = dataclasses.replace(task, data=default_data(config, task.data))
    extra = {
        "model_type": config.model_type,
        "family": Family.image_classification.value,
        "architecture": (config.architectures or [""])[0],
        "image": pre.to_dict(),
        "id2label": label_names(config),
    }
    source = {"kind": "hf", "path": str(folder)}
    return ModelBundle(module, io, examples, task, source=source, extra=extra)
