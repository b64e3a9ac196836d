"""classifier_head: a sentence encoder becomes a text classifier on the ``topics`` set (the
recipes/topics-classifier.yaml flow, on a small random-init BERT and a subset of the set)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.compressors.classifier_head import ClassifierHeadConfig, centroids
from edgecompress.context import RunContext
from edgecompress.data import DataSplits
from edgecompress.errors import CompressorError
from edgecompress.metrics import predict, score
from edgecompress.pipeline import run_step
from edgecompress.runtimes import TorchRunner


def test_centroids_are_unit_class_means():
    emb = np.array([[1, 0], [3, 0], [0, 2], [0, 0]], np.float32)
    out = centroids(emb, np.array([0, 0, 1, 2]), 4)
    np.testing.assert_allclose(out, [[1, 0], [0, 1], [0, 0], [0, 0]])


def test_refuses_a_model_without_tokenizer(digits_bundle, run_ctx):
    with pytest.raises(CompressorError, match="classifier_head: needs a text encoder"):
        run_step("classifier_head", ClassifierHeadConfig(epochs=0), digits_bundle, run_ctx)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec
    from tests.conftest import build_tiny_bert

    folder = build_tiny_bert(tmp_path_factory.mktemp("enc"), layers=2)
    return load_hf(folder, TaskSpec(TaskKind.classification, "topics", "accuracy", 32))


@pytest.fixture(scope="module")
def topics_subset():
    from edgecompress.data import load_topics

    data = load_topics()
    parts = (data.train.take(160), data.val.take(48), data.test.take(96))
    return DataSplits("topics", *parts, meta=data.meta)


def test_head_starts_as_the_nearest_centroid_classifier(encoder, topics_subset, tmp_path):
    ctx = RunContext(topics_subset, tmp_path)
    ctx.set_baseline(encoder)
    config = ClassifierHeadConfig(epochs=0, scale=20.0)
    new = run_step("classifier_head", config, encoder, ctx)
    assert new.io.outputs[0].name == "logits" and new.io.outputs[0].shape == ("batch", 16)
    assert new.extra["class_names"] == topics_subset.meta["classes"]
    emb = predict(TorchRunner(encoder.module, encoder.io).run, encoder, topics_subset.train)
    cents = centroids(emb, topics_subset.train.labels, 16)
    test_emb = predict(TorchRunner(encoder.module, encoder.io).run, encoder, topics_subset.test)
    logits = predict(TorchRunner(new.module, new.io).run, new, topics_subset.test)
    np.testing.assert_allclose(logits, 20.0 * test_emb @ cents.T, atol=1e-4)
    stats = new.history[-1].stats
    expected = float(((test_emb @ cents.T).argmax(1) == topics_subset.test.labels).mean())
    assert stats["centroid_accuracy"] == pytest.approx(expected, abs=1e-4)
    assert ctx.baseline["value"] == pytest.approx(expected)  # the baseline is the classifier
    assert encoder.io.outputs[0].name != "logits"  # the input bundle is left as it was


@pytest.mark.slow
def test_fine_tuning_fits_the_train_split(encoder, topics_subset, tmp_path):
    ctx = RunContext(topics_subset, tmp_path)
    train = topics_subset.train
    start = run_step("classifier_head", ClassifierHeadConfig(epochs=0), encoder, ctx)
    tuned = run_step(
        "classifier_head", ClassifierHeadConfig(epochs=3, lr=2e-3, batch_size=32), encoder, ctx
    )

    def train_accuracy(bundle):
        outputs = predict(TorchRunner(bundle.module, bundle.io).run, bundle, train)
        return score(bundle.task.kind, outputs, train)["value"]

    assert train_accuracy(tuned) > train_accuracy(start) + 0.05
    assert tuned.history[-1].stats["finetuned_accuracy"] == pytest.approx(
        ctx.baseline["value"], abs=1e-4
    )
