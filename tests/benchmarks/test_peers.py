"""benchmarks/peers.py end to end on a tiny 6-layer BERT (structure and accuracy, no timings)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import build_tiny_bert


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("peers-bert"))


def _rows(text: str, section: str) -> dict[str, list[str]]:
    """The table under ``### section``: variant label -> its cells."""
    block = text.split(f"### {section}\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_single_feeds_pad_and_real_lengths(tiny_dir):
    import bench_helpers as sc

    bundle = sc.load_text_bundle(str(tiny_dir))
    texts = ["Short one here.", "A somewhat longer sentence with more words in it than that."]
    padded = sc.single_feeds(bundle, texts, pad_to=128)
    real = sc.single_feeds(bundle, texts)
    assert [f["input_ids"].shape for f in padded] == [(1, 128), (1, 128)]
    assert real[0]["input_ids"].shape[1] < real[1]["input_ids"].shape[1] < 128
    assert padded[0]["attention_mask"].sum() == real[0]["attention_mask"].sum()
    assert set(padded[0]) == set(bundle.io.input_names)
    # padding must not change the embedding (mean pooling over real tokens only)
    run = sc.torch_run(bundle.module, 1)
    a, b = sc.embed_all(run, padded), sc.embed_all(run, real)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_time_interleaved_gives_every_candidate_its_runs():
    import bench_helpers as sc

    calls = {"x": 0, "y": 0}

    def make(name):
        def run(feeds):
            calls[name] += 1
            return {"out": feeds["v"]}

        return run

    feeds = [{"v": np.ones(1)} for _ in range(3)]
    times = sc.time_interleaved(
        {"x": make("x"), "y": make("y")}, feeds, runs=25, block=10, warmup=2
    )
    assert [len(times["x"]), len(times["y"])] == [25, 25]
    assert calls == {"x": 27, "y": 27}
    assert sc.percentiles(times["x"])["runs"] == 25


def test_peers_quick_writes_the_report(tiny_dir, tmp_path):
    import peers

    out = tmp_path / "peers.md"
    rc = peers.main(
        [
            "--quick",
            "--model",
            str(tiny_dir),
            "--out",
            str(out),
            "--threads",
            "1",
            "--skip",
            "c,f,i",  # (i) TFLite via litert-torch: covered by tests/exporters/tflite
            "--no-zip",
        ]
    )
    assert rc == 0
    text = out.read_text()
    assert re.search(r"CPU: .+ avx2 (yes|no), avx512f (yes|no), avx512_vnni (yes|no)", text)
    assert "onnxruntime " in text and "## Targets for (g)" in text
    for section in ("b1-L128, 1 thread(s)", "b1-real, 1 thread(s)"):
        rows = _rows(text, section)
        assert len(rows) == 9, rows
        fp32 = rows["(b) onnxruntime fp32"]
        assert fp32[2] == "1.000"  # the ratio column is relative to (b)
        assert float(fp32[5]) > 0.9999 and fp32[7] == "100.0%"  # ORT fp32 == torch
        ours = rows["(g) edgecompress int8-token (ours)"]
        assert float(ours[0]) > 0 and float(ours[1]) >= float(ours[0])  # p95 >= p50
        assert float(ours[5]) > 0.999 and float(ours[6]) > 0.99
        speed_first = rows["(h) edgecompress int8-dynamic (ours, speed-first)"]
        assert float(speed_first[5]) > 0.99
        assert float(ours[5]) >= float(speed_first[5])  # int8-token: the smaller error
        assert "skipped (--skip)" in rows["(c) Optimum ORTQuantizer dynamic int8"][-1]
        torch_int8 = rows["(e) torch dynamic int8 (Linear)"]
        assert float(torch_int8[5]) > 0.99
    assert "mean cosine:" in text and "nearest-neighbour agreement:" in text


def test_neighbour_gaps_measure_near_ties():
    import bench_helpers as sc

    # sentence 0's neighbours 1 and 2 are nearly tied; sentence 3 is far from everything
    ref = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.9, 0.0, 0.1], [0.0, 0.0, 1.0]])
    gaps = sc.neighbour_gaps(ref)
    assert gaps.shape == (4,)
    assert gaps[0] < 1e-9  # a perfect tie
    assert gaps[3] > 0.05 and np.all(gaps >= 0)
