"""The Lambda self-check of an image classifier's zip: real image requests.

A PNG and a JPEG (base64, one of them not square) are sent as ``{"images": [...]}``, directly
and as a base64 API Gateway proxy body; the answers must match the host's runtime on the same
files decoded and preprocessed on the host (edgecompress.hf.preprocess, a separate
implementation of the steps the zip's images.py applies), labels and label names included.
Broken images (not base64, not an image) must get a 400 naming the problem.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from edgecompress.awslambda.checks import compare
from edgecompress.awslambda.selfcheck import LocalFunction, ric_dir_for, unzip
from edgecompress.errors import ValidationError
from edgecompress.iospec import IOSpec
from edgecompress.runtimes import open_runner


def sample_images() -> list[tuple[str, bytes]]:
    """(format, encoded bytes): a 60 x 44 PNG and a 40 x 40 JPEG, deterministic."""
    from PIL import Image

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:44, 0:60]
    png = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) + rng.integers(0, 30, (44, 60, 3))
    jpeg = np.roll(png[:40, :40], 7, axis=0)[:, :, ::-1]
    out = []
    for fmt, array in (("PNG", png), ("JPEG", jpeg)):
        buf = io.BytesIO()
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB").save(buf, fmt)
        out.append((fmt, buf.getvalue()))
    return out


def host_reference(model_path: Path, spec: dict, encoded: list[bytes]) -> dict:
    """The host runtime's outputs on the images decoded and preprocessed on the host."""
    from PIL import Image

    from edgecompress.hf.preprocess import ImagePreprocess, pixels

    pre = ImagePreprocess.from_dict(spec["image"])
    batch = pixels([Image.open(io.BytesIO(b)) for b in encoded], pre)
    io_spec = IOSpec.from_dict(spec)
    outputs = open_runner(Path(model_path), threads=1, io=io_spec).run(
        {io_spec.inputs[0].name: batch}
    )
    return {t["name"]: np.asarray(outputs[t["name"]]) for t in spec["outputs"]}


def events(encoded: list[bytes]) -> list[tuple[str, dict, str | None]]:
    """(label, event, word a 400 must contain; None for a good event)."""
    texts = [base64.b64encode(b).decode() for b in encoded]
    body = base64.b64encode(json.dumps({"images": texts}).encode()).decode()
    not_image = base64.b64encode(b"plain text, not a picture").decode()
    return [
        ("direct images (PNG, JPEG)", {"images": texts}, None),
        ("proxy base64 images", {"body": body, "isBase64Encoded": True}, None),
        ("image not base64", {"images": ["***"]}, "base64"),
        ("image not PNG/JPEG", {"images": [not_image]}, "PNG or JPEG"),
        ("images not a list", {"images": "x"}, "list"),
    ]


def run(zip_path: Path, model_path: Path, memory_mb: int, python: str, interpreter: str) -> dict:
    """Send the image events to the zip under awslambdaric; raise on any failure."""
    samples = sample_images()
    encoded = [b for _, b in samples]
    with tempfile.TemporaryDirectory(prefix="ec-lambda-images-") as tmp:
        root = unzip(zip_path, Path(tmp) / "task")
        spec = json.loads((root / "io_spec.json").read_text())
        reference = host_reference(model_path, spec, encoded)
        ric = ric_dir_for(python, Path(tmp) / "runtime")
        with LocalFunction(
            root, ric, memory_mb, python=python, log_dir=Path(tmp), interpreter=interpreter
        ) as fn:
            results = [_one(fn, label, event, word, reference, spec) for label, event, word in
                       events(encoded)]  # fmt: skip
    failed = [r for r in results if not r["passed"]]
    if failed:
        raise ValidationError(f"lambda image self-check failed: {json.dumps(failed)[:1500]}")
    return {"passed": True, "images": [fmt for fmt, _ in samples], "events": results}


def _one(fn, label: str, event: dict, word: str | None, reference: dict, spec: dict) -> dict:
    _kind, answer, _seconds = fn.invoke(event)
    if isinstance(answer, dict) and "statusCode" in answer:
        status, payload = answer["statusCode"], json.loads(answer["body"])
    else:
        status, payload = 200, answer
    if word is not None:
        error = payload.get("error", "") if isinstance(payload, dict) else ""
        ok = status == 400 and word.lower() in error.lower()
        return {"event": label, "passed": ok, "status": status, "error": error}
    if status != 200:
        return {"event": label, "passed": False, "status": status, "answer": str(payload)[:300]}
    record = {"event": label, **compare(payload, reference, spec["task"])}
    names = spec.get("id2label")
    if names and spec["task"] == "classification":
        want = [names.get(str(i), str(i)) for i in payload.get("labels", [])]
        record["label_names"] = payload.get("label_names")
        record["passed"] = record["passed"] and payload.get("label_names") == want
    return record
