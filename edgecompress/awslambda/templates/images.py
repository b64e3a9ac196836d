"""Image requests for an edgecompress Lambda handler: base64 PNG / JPEG -> pixel tensor.

Standalone (numpy + Pillow, nothing from edgecompress): the zip holds it beside handler.py
when the model is an image classifier. The steps are the ones the model's folder recorded
(io_spec.json "image", from its preprocessor_config.json): convert to RGB (or L), resize
(height x width, or the shortest edge keeping the aspect ratio; ConvNeXt's crop_pct rule),
centre crop, rescale, normalise, channels first. edgecompress.hf.preprocess applies the same
steps on the host; the self-check compares the two.
"""

import base64
import binascii
import io

import numpy as np
from PIL import Image

MAX_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
FORMATS = ("PNG", "JPEG")


def decode(text, index):
    """One base64 PNG / JPEG (a data: URL prefix is allowed) as a PIL image, or ValueError."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"images[{index}]: expected a base64 PNG or JPEG string")
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"images[{index}]: not valid base64") from None
    try:
        image = Image.open(io.BytesIO(raw), formats=FORMATS)
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"images[{index}]: {image.width}x{image.height} is too large")
        image.load()
    except ValueError:
        raise
    except Exception:
        raise ValueError(f"images[{index}]: not a PNG or JPEG image") from None
    return image


def _resized(image, pre):
    resize = pre.get("resize")
    if not resize:
        return image
    if "height" in resize:
        return image.resize((resize["width"], resize["height"]), pre.get("resample", 2))
    edge = resize["shortest_edge"]
    if pre.get("crop_pct"):
        edge = int(edge / pre["crop_pct"])
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = edge, int(edge * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    return image.resize(size, pre.get("resample", 2))


def pixels(image, pre):
    """One PIL image -> float32 [C, H, W] with the recorded steps."""
    mode = "L" if int(pre.get("channels", 3)) == 1 else "RGB"
    array = np.asarray(_resized(image.convert(mode), pre), dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if pre.get("crop"):
        ch, cw = pre["crop"]
        top, left = max((array.shape[0] - ch) // 2, 0), max((array.shape[1] - cw) // 2, 0)
        array = array[top : top + ch, left : left + cw]
    if pre.get("rescale_factor") is not None:
        array = array * np.float32(pre["rescale_factor"])
    if pre.get("mean") is not None:
        array = (array - np.float32(pre["mean"])) / np.float32(pre["std"])
    return array.transpose(2, 0, 1)


def feeds(images, spec, max_batch):
    """{input name: float32 [N, C, H, W]} for a request's "images"; ValueError names the
    problem (the handler answers 400 with it)."""
    if not isinstance(images, list) or not images:
        raise ValueError("'images' must be a non-empty list of base64 PNG / JPEG strings")
    if len(images) > max_batch:
        raise ValueError(f"images: batch {len(images)} > max batch {max_batch}")
    pre = spec["image"]
    batch = np.stack([pixels(decode(text, i), pre) for i, text in enumerate(images)])
    return {spec["inputs"][0]["name"]: np.ascontiguousarray(batch, dtype=np.float32)}
