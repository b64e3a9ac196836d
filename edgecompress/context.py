"""What every step of a run can see: the recipe, the data, the baseline, the work folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecompress.data import DataSplits, Split
from edgecompress.metrics import evaluate
from edgecompress.model import ModelBundle
from edgecompress.runtimes import torch_run


@dataclass
class RunContext:
    data: DataSplits
    work_dir: Path
    seed: int = 0
    eval_samples: int | None = None
    recipe: object | None = None  # recipe.Recipe when run from a recipe
    baseline: dict = field(default_factory=dict)  # metric dict of the original model
    reference_outputs: np.ndarray | None = None  # original model's outputs on the eval split
    original: ModelBundle | None = None  # the model as loaded (set_baseline records it)

    @property
    def eval_split(self) -> Split:
        """The test split (capped by task.eval_samples): what every metric is reported on."""
        return self.data.test.take(self.eval_samples)

    def set_baseline(self, bundle: ModelBundle) -> dict:
        metric, outputs = evaluate(torch_run(bundle), bundle, self.eval_split)
        self.baseline, self.reference_outputs = metric, outputs
        self.original = bundle.replace()
        return metric

    def evaluate_bundle(self, bundle: ModelBundle) -> dict:
        """The task metric of a torch model on the eval split, against the baseline."""
        return evaluate(torch_run(bundle), bundle, self.eval_split, self.reference_outputs)[0]

    def evaluate_runner(self, runner, bundle: ModelBundle) -> tuple[dict, np.ndarray]:
        """Metric and raw outputs of any Runner (onnxruntime, LiteRT) on the eval split."""
        return evaluate(runner.run, bundle, self.eval_split, self.reference_outputs)
