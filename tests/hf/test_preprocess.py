"""Image preprocessing read from preprocessor_config.json, checked against transformers' own
image processors, and the Lambda template's copy of the steps against the host's."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from edgecompress.errors import ModelLoadError
from edgecompress.hf.preprocess import (
    ImagePreprocess,
    example_images,
    from_processor,
    image_feeds,
    pixels,
    read_preprocess,
)
from edgecompress.hf.vision import default_data
from tests.hf.conftest import CONVNEXT_PROCESSOR, VIT_PROCESSOR

CONFIG = SimpleNamespace(image_size=32, num_channels=3)
DEIT_PROCESSOR = {
    "image_processor_type": "DeiTImageProcessor",
    "do_resize": True,
    "size": {"height": 40, "width": 40},
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "resample": 3,
    "rescale_factor": 1 / 255,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}


def _images():
    """Non-square images (both orientations): the shortest-edge rule matters."""
    rng = np.random.default_rng(3)
    return [
        Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (61, 38, 3), dtype=np.uint8)),
    ]


def _hf(cls_name: str, raw: dict, images) -> np.ndarray:
    import transformers

    kwargs = {k: v for k, v in raw.items() if k != "image_processor_type"}
    processor = getattr(transformers, cls_name)(**kwargs)
    return processor(images=images, return_tensors="np")["pixel_values"]


@pytest.mark.parametrize(
    ("cls_name", "raw", "size"),
    [
        ("ViTImageProcessor", VIT_PROCESSOR, (32, 32)),
        ("ConvNextImageProcessor", CONVNEXT_PROCESSOR, (32, 32)),
        ("DeiTImageProcessor", DEIT_PROCESSOR, (32, 32)),
    ],
)
def test_pixels_match_transformers_processors(cls_name, raw, size):
    pre = from_processor(raw, 3, "preprocessor_config.json")
    images = _images()
    ours = pixels(images, pre)
    theirs = _hf(cls_name, raw, images)
    assert ours.shape == (2, 3, *size) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_convnext_crop_pct_rule_and_large_sizes_warp():
    small = from_processor(CONVNEXT_PROCESSOR, 3, "p.json")
    assert small.resize == {"shortest_edge": 32} and small.crop_pct == 0.875
    assert small.crop == [32, 32] and (small.height, small.width) == (32, 32)
    large = from_processor({**CONVNEXT_PROCESSOR, "size": {"shortest_edge": 384}}, 3, "p.json")
    assert large.resize == {"height": 384, "width": 384} and large.crop is None


def test_without_preprocessor_config_the_config_is_used_and_said(tmp_path):
    pre = read_preprocess(tmp_path, CONFIG)
    assert (pre.height, pre.width, pre.channels) == (32, 32, 3)
    assert "no preprocessor_config.json" in pre.source
    assert pre.mean == [0.485, 0.456, 0.406]


def test_bad_preprocessor_config_names_the_file(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": {"depth": 3}}))
    with pytest.raises(ModelLoadError, match="preprocessor_config.json: size"):
        read_preprocess(tmp_path, CONFIG)
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        read_preprocess(tmp_path, CONFIG)


def test_template_applies_the_same_steps(tmp_path):
    """awslambda/templates/images.py (what the zip runs) equals the host's steps."""
    import edgecompress.awslambda.app as lambda_app

    path = lambda_app.TEMPLATES / "images.py"
    spec = importlib.util.spec_from_file_location("zip_images", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for raw in (VIT_PROCESSOR, CONVNEXT_PROCESSOR, DEIT_PROCESSOR):
        pre = from_processor(raw, 3, "p.json")
        images = _images()
        template = np.stack([module.pixels(im, pre.to_dict()) for im in images])
        np.testing.assert_array_equal(template, pixels(images, pre))


def test_image_feeds_upscale_digits_and_pass_pixels_through():
    pre = from_processor(VIT_PROCESSOR, 3, "p.json")
    digits = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    feeds = image_feeds(digits, "pixel_values", pre)["pixel_values"]
    assert feeds.shape == (5, 3, 32, 32)
    assert feeds.min() >= -1.0 and feeds.max() <= 1.0  # mean/std 0.5: [0, 1] -> [-1, 1]
    ready = pixels(example_images(3), pre)  # normalised: values below 0
    np.testing.assert_array_equal(image_feeds(ready, "pixel_values", pre)["pixel_values"], ready)
    # an image folder at the model's size ([0, 1] floats) is still normalised
    folder = np.full((2, 3, 32, 32), 1.0, dtype=np.float32)
    np.testing.assert_allclose(image_feeds(folder, "pixel_values", pre)["pixel_values"], 1.0)
    np.testing.assert_allclose(image_feeds(folder * 0, "pixel_values", pre)["pixel_values"], -1)


def test_round_trip_and_default_data():
    pre = from_processor(DEIT_PROCESSOR, 3, "p.json")
    assert ImagePreprocess.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    ten = SimpleNamespace(num_labels=10, id2label={i: f"LABEL_{i}" for i in range(10)})
    three = SimpleNamespace(num_labels=3, id2label={0: "cat", 1: "dog", 2: "bird"})
    assert default_data(ten, "digits") == "digits"  # labels that mean something
    assert default_data(three, "digits").endswith(":unlabelled_digits")
    assert default_data(three, "my.pkg:data") == "my.pkg:data"
