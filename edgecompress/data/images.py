"""Image folders (PIL + numpy): ``root/<class>/*.png|jpg`` or with ``train/``, ``val/``,
``test/`` subfolders. Every image becomes float32 [C, H, W] in [0, 1]: C is 3 (RGB) or 1 (grey,
when the first image is grey or ``channels: 1``), H x W the first image's size unless
``image_size: [H, W]`` is given (others are resized to it, bilinear)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecompress.data.folders import has_split_folders, load_folder, walk
from edgecompress.data.splits import DataSplits
from edgecompress.errors import DataFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def is_image_folder(root: Path) -> bool:
    part = root / "train" if has_split_folders(root) else root
    return any(True for _ in walk(part, IMAGE_SUFFIXES))


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataFileError(f"{path}: image: unreadable ({first})") from None
    return image


class ImageReader:
    """Reads one image as [C, H, W] float32; the first image fixes mode and size."""

    def __init__(self, size: list[int] | None = None, channels: int | None = None):
        self.size = tuple(size) if size else None  # (H, W)
        self.mode = {1: "L", 3: "RGB"}.get(channels or 0)

    def __call__(self, path: Path) -> np.ndarray:
        from PIL import Image

        image = _open(path)
        if self.mode is None:
            self.mode = "L" if image.mode in GREY_MODES else "RGB"
        if self.size is None:
            self.size = (image.height, image.width)
        image = image.convert(self.mode)
        if (image.height, image.width) != self.size:
            image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_images(
    root: Path,
    seed: int,
    size: list[int] | None = None,
    channels: int | None = None,
    classes: list[str] | None = None,
) -> DataSplits:
    data = load_folder(root, IMAGE_SUFFIXES, ImageReader(size, channels), seed, "image", classes)
    data.meta["layout"] = "NCHW float32 in [0, 1]"
    return data
