"""runtimes.py: layout adaptation between torch's NCHW feeds and NHWC files."""

import numpy as np

from edgecompress import runtimes


def test_adapt_layout_to_nhwc():
    x = np.arange(2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    out = runtimes.adapt_layout({"image": x}, {"image": ("batch", 8, 8, 1)})
    assert out["image"].shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(out["image"][..., 0], x[:, 0])
    same = runtimes.adapt_layout({"image": x}, {"image": ("batch", 1, 8, 8)})
    assert same["image"] is x


class _Recorder:
    io = "the file's io"

    def __init__(self):
        self.seen = []

    def run(self, feeds):
        self.seen.append(feeds)
        return {"out": next(iter(feeds.values()))}


def test_layout_runner_by_perms_or_by_shapes():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    by_perm = runtimes.LayoutRunner(_Recorder(), {"image": (0, 2, 3, 1)})
    assert by_perm.io == "the file's io"
    assert by_perm.run({"image": x, "mask": x})["out"].shape == (2, 4, 5, 3)
    assert by_perm.inner.seen[0]["mask"] is x  # inputs without a permutation pass as they are
    by_shape = runtimes.LayoutRunner(_Recorder(), shapes={"image": ("batch", 4, 5, 3)})
    np.testing.assert_array_equal(by_shape.run({"image": x})["out"], x.transpose(0, 2, 3, 1))
    plain = runtimes.LayoutRunner(_Recorder())
    assert plain.run({"image": x})["out"] is x
