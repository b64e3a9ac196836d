"""The topics classifier's Lambda zip, invoked for real: every sentence of the ``topics`` test
split sent to the zip's handler (under awslambdaric, through a local Runtime API) in batches,
its ``labels`` scored against the topics' labels. Needs the zip's Python on this machine
(the running one, one on PATH or a pyenv version: what the zip's self-check uses too).

    compress run recipes/topics-classifier.yaml -o OUT
    python benchmarks/topics_classifier.py OUT/lambda-x86_64-py3.12.zip

Prints the zip's accuracy, a few labelled sentences and the machine (JSON).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecompress.awslambda.selfcheck import LocalFunction, ric_dir_for, unzip
from edgecompress.awslambda.target import target_interpreter
from edgecompress.data import load_topics
from edgecompress.measure.machine import machine_info


def label_split(zip_path: Path, batch: int = 32) -> dict:
    data = load_topics()
    names, test = data.meta["classes"], data.test
    predicted: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = unzip(zip_path, Path(tmp) / "task")
        target = json.loads((root / "io_spec.json").read_text())["target"]
        python = target["python"]
        interpreter = target_interpreter(target["arch"], python)
        if interpreter is None:
            raise SystemExit(f"no Python {python} for {target['arch']} on this machine")
        ric = ric_dir_for(python, Path(tmp) / "ric", target["arch"])
        kwargs = {"python": python, "interpreter": interpreter}
        with LocalFunction(root, ric, memory_mb=1769, timeout_s=120, **kwargs) as fn:
            start = time.perf_counter()
            for i in range(0, len(test), batch):
                kind, answer, _ = fn.invoke({"texts": test.texts[i : i + batch]})
                if kind != "response" or "labels" not in answer:
                    raise SystemExit(f"the zip did not answer: {kind} {answer}")
                predicted += answer["labels"]
            seconds = time.perf_counter() - start
    predicted_arr = np.asarray(predicted)
    examples = [
        {"text": t[:90], "label": names[p], "true": names[y]}
        for t, p, y in list(zip(test.texts, predicted_arr, test.labels, strict=True))[:5]
    ]
    return {
        "zip": str(zip_path),
        "zip_bytes": zip_path.stat().st_size,
        "samples": len(test),
        "accuracy": float((predicted_arr == test.labels).mean()),
        "seconds": round(seconds, 2),
        "examples": examples,
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path)
    args = parser.parse_args()
    print(json.dumps(label_split(args.zip), indent=1, default=str))


if __name__ == "__main__":
    main()
