"""Image preprocessing of a transformers image classifier, read from its folder.

``preprocessor_config.json`` (ViTImageProcessor, ConvNextImageProcessor, DeiT, BEiT, MobileNet,
EfficientNet ... field names) becomes an :class:`ImagePreprocess`: resize (to height x width,
or the shortest edge, ConvNeXt's ``crop_pct`` rule included), centre crop, rescale, normalise,
channel order. It is applied with PIL and numpy only, as the Lambda handler does
(awslambda/templates/images.py holds the same steps, standalone). Without the file the
config's ``image_size`` / ``num_channels`` are used with ImageNet's mean and std, and the
record says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgecompress.errors import ModelLoadError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
BILINEAR, BICUBIC = 2, 3  # PIL.Image.Resampling values, as processors record them


@dataclass
class ImagePreprocess:
    """What turns an image into the model's ``pixel_values`` (float32, N x C x H x W)."""

    height: int  # the model's input size, after resize and crop
    width: int
    channels: int = 3  # 3: RGB, 1: greyscale ("L")
    resize: dict | None = None  # {"height", "width"} or {"shortest_edge"}; None: no resize
    crop_pct: float | None = None  # ConvNeXt: shortest edge resized to edge / crop_pct, cropped
    crop: list[int] | None = None  # [height, width] of the centre crop; None: no crop
    resample: int = BILINEAR
    rescale_factor: float | None = 1 / 255
    mean: list[float] | None = None  # None: no normalisation
    std: list[float] | None = None
    processor: str = ""
    source: str = "preprocessor_config.json"
    notes: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ImagePreprocess:
        return cls(**d)


def _square(value) -> dict:
    return {"height": int(value), "width": int(value)}


def _size_dict(raw, square_default: bool) -> dict | None:
    """A processor's ``size`` / ``crop_size`` as {"height", "width"} or {"shortest_edge"}."""
    if raw is None:
        return None
    if isinstance(raw, int | float):
        return _square(raw) if square_default else {"shortest_edge": int(raw)}
    if isinstance(raw, list | tuple) and len(raw) == 2:
        return {"height": int(raw[0]), "width": int(raw[1])}
    if isinstance(raw, dict) and {"height", "width"} <= set(raw):
        return {"height": int(raw["height"]), "width": int(raw["width"])}
    if isinstance(raw, dict) and "shortest_edge" in raw:
        return {"shortest_edge": int(raw["shortest_edge"])}
    raise ValueError(f"size {raw!r} is neither {{height, width}} nor {{shortest_edge}}")


def from_processor(raw: dict, channels: int, path: str) -> ImagePreprocess:
    """The steps a preprocessor_config.json describes (``path`` names it in errors)."""
    try:
        resize = _size_dict(raw.get("size"), square_default=not raw.get("do_center_crop"))
        crop = _size_dict(raw.get("crop_size"), square_default=True)
    except ValueError as exc:
        raise ModelLoadError(f"model.hf: {path}: {exc}") from None
    if not raw.get("do_resize", True):
        resize = None
    crop_pct = raw.get("crop_pct") if resize and "shortest_edge" in resize else None
    if crop_pct and resize["shortest_edge"] < 384:  # ConvNextImageProcessor's rule
        crop = _square(resize["shortest_edge"])
    elif crop_pct:
        resize, crop_pct = _square(resize["shortest_edge"]), None
    if not raw.get("do_center_crop", False) and not crop_pct:
        crop = None
    out = crop or resize
    if out is None or "height" not in out:
        raise ModelLoadError(
            f"model.hf: {path}: cannot tell the model's input size (no size or crop_size)"
        )
    mean, std = raw.get("image_mean"), raw.get("image_std")
    normalize = raw.get("do_normalize", True) and mean is not None and std is not None
    return ImagePreprocess(
        height=out["height"],
        width=out["width"],
        channels=channels,
        resize=resize,
        crop_pct=crop_pct,
        crop=[crop["height"], crop["width"]] if crop else None,
        resample=int(raw.get("resample", BILINEAR)),
        rescale_factor=float(raw.get("rescale_factor", 1 / 255))
        if raw.get("do_rescale", True)
        else None,
        mean=_per_channel(mean, channels) if normalize else None,
        std=_per_channel(std, channels) if normalize else None,
        processor=str(raw.get("image_processor_type") or raw.get("feature_extractor_type") or ""),
        notes=_unsupported(raw),
    )


def _per_channel(values, channels: int) -> list[float]:
    values = [float(v) for v in (values if isinstance(values, list) else [values])]
    return values[:channels] if len(values) >= channels else values * channels


def _unsupported(raw: dict) -> list[str]:
    """Processor options these steps do not apply (recorded, never silently dropped)."""
    notes = []
    if raw.get("rescale_offset"):
        notes.append("rescale_offset (EfficientNet) is not applied")
    if raw.get("do_reduce_labels"):
        notes.append("do_reduce_labels concerns segmentation labels only")
    return notes


def from_config(config, reason: str) -> ImagePreprocess:
    """From the model config alone: square ``image_size``, ImageNet mean and std."""
    size = getattr(config, "image_size", None) or 224
    if isinstance(size, list | tuple):
        size = size[0]
    channels = int(getattr(config, "num_channels", 3) or 3)
    return ImagePreprocess(
        height=int(size),
        width=int(size),
        channels=channels,
        resize=_square(size),
        mean=_per_channel(IMAGENET_MEAN, channels),
        std=_per_channel(IMAGENET_STD, channels),
        processor="",
        source=f"config.json (image_size {size}, num_channels {channels}): {reason}",
        notes=["mean/std are ImageNet's: the folder records none"],
    )


def read_preprocess(folder: Path, config) -> ImagePreprocess:
    """The folder's preprocessing, from preprocessor_config.json or else from config.json."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return from_config(config, "the folder has no preprocessor_config.json")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model.hf: {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"model.hf: {path} must hold a JSON object")
    channels = int(getattr(config, "num_channels", 3) or 3)
    return from_processor(raw, channels, str(path))


def _resized(image, pre: ImagePreprocess):
    """PIL resize as transformers' processors do (shortest edge keeps the aspect ratio)."""
    if pre.resize is None:
        return image
    if "height" in pre.resize:
        return image.resize((pre.resize["width"], pre.resize["height"]), pre.resample)
    edge = pre.resize["shortest_edge"]
    if pre.crop_pct:
        edge = int(edge / pre.crop_pct)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = edge, int(edge * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    return image.resize(size, pre.resample)


def pixels(images, pre: ImagePreprocess) -> np.ndarray:
    """PIL images -> float32 [N, C, H, W]: mode, resize, centre crop, rescale, normalise."""
    out = []
    for image in images:
        array = np.asarray(_resized(image.convert(pre.mode), pre), dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        if pre.crop:
            ch, cw = pre.crop
            top, left = (array.shape[0] - ch) // 2, (array.shape[1] - cw) // 2
            array = array[max(top, 0) : max(top, 0) + ch, max(left, 0) : max(left, 0) + cw]
        if pre.rescale_factor is not None:
            array = array * np.float32(pre.rescale_factor)
        if pre.mean is not None:
            array = (array - np.float32(pre.mean)) / np.float32(pre.std)
        out.append(array.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def to_images(x: np.ndarray) -> list:
    """Image arrays of a tensor dataset as PIL images: [N, H, W], [N, 1|3, H, W] or
    [N, H, W, 1|3]; floats are taken as [0, 1] (digits), integers as 0..255."""
    from PIL import Image

    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4):
        raise ValueError(f"expected images [N, H, W(, C)], got shape {list(x.shape)}")
    if x.dtype.kind == "f":
        x = np.clip(np.rint(x * 255.0), 0, 255)
    return [Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8)) for a in x]


def image_feeds(x: np.ndarray, name: str, pre: ImagePreprocess) -> dict[str, np.ndarray]:
    """Feeds for an image model from a tensor dataset. Images (floats in [0, 1] as digits and
    image folders give them, or 0..255 integers, of any size) go through the preprocessing;
    floats shaped like the model's input and outside [0, 1] are taken as pixel_values already
    normalised, and pass through."""
    x = np.asarray(x)
    shaped = x.ndim == 4 and tuple(x.shape[1:]) == (pre.channels, pre.height, pre.width)
    if shaped and x.dtype.kind == "f" and x.size and (x.min() < 0 or x.max() > 1):
        return {name: np.ascontiguousarray(x, dtype=np.float32)}
    return {name: pixels(to_images(x), pre)}


def example_images(count: int = 2, size: int = 48, seed: int = 0) -> list:
    """Deterministic RGB test images (smooth gradients plus noise): example inputs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for i in range(count):
        base = np.stack([xx, yy, (xx + yy) / 2], -1) * 200 + i * 20
        noise = rng.integers(0, 40, size=(size, size, 3))
        images.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB"))
    return images
