"""Child-process probe for cold start, warm zip latency and peak memory.

Run by coldstart.py in a fresh interpreter (``python -c`` runpy of this file, so that no
edgecompress code is imported into the measured process). It reads one JSON argument and
prints one line ``@@PROBE@@{json}`` with its timings in ms, ``answered_at`` (``time.time()``
when the first call returned) and ``peak_rss_mib`` (VmHWM, or
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` where /proc is absent). Standard library
only until it imports what it measures.

Zip mode contract with the Lambda handler: importing ``handler.py`` loads the model at module
scope; if the module defines a dict ``INIT_TIMINGS`` (or ``INIT``, as edgecompress's generated
handler names it) with ``import_ms`` and ``load_ms``, the probe reports the init broken down
with them.
"""

import importlib
import json
import os
import resource
import sys
import time

MARKER = "@@PROBE@@"


def _ms(start):
    return (time.perf_counter() - start) * 1000.0


def _peak_rss_mib():
    """Peak RSS of this process. Linux keeps ``ru_maxrss`` across fork + exec, so a child
    of a big parent reports the parent's high-water mark; /proc/self/status VmHWM belongs
    to the new address space only and is used where it exists."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 1024.0 / 1024.0


def _load_feeds(path):
    import numpy as np

    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _onnx(args, out):
    start = time.perf_counter()
    import numpy  # noqa: F401  (part of what a server imports)
    import onnxruntime as ort

    out["import_ms"] = _ms(start)
    feeds = _load_feeds(args["feeds"])
    start = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.get("threads", 1)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args["path"], options, providers=["CPUExecutionProvider"])
    out["load_ms"] = _ms(start)
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    return lambda: session.run(None, feeds)


def _tflite(args, out):
    start = time.perf_counter()
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    out["import_ms"] = _ms(start)
    feeds = list(_load_feeds(args["feeds"]).values())
    start = time.perf_counter()
    interp = Interpreter(model_path=args["path"], num_threads=args.get("threads", 1))
    interp.allocate_tensors()
    out["load_ms"] = _ms(start)
    details = interp.get_input_details()

    def call():
        for detail, array in zip(details, feeds, strict=False):
            scale, zero = detail["quantization"]
            if detail["dtype"] in (np.int8, np.uint8) and scale:
                info = np.iinfo(detail["dtype"])
                array = np.clip(np.round(array / scale + zero), info.min, info.max)
            array = np.ascontiguousarray(array, dtype=detail["dtype"])
            if tuple(detail["shape"]) != array.shape:
                interp.resize_tensor_input(detail["index"], array.shape, strict=False)
                interp.allocate_tensors()
            interp.set_tensor(detail["index"], array)
        interp.invoke()

    return call


def _zip(args, out):
    root = args["dir"]
    sys.path.insert(0, root)
    os.chdir(root)
    module_name, _, func_name = args.get("handler", "handler.handler").rpartition(".")
    start = time.perf_counter()
    module = importlib.import_module(module_name)
    out["init_ms"] = _ms(start)
    timings = getattr(module, "INIT_TIMINGS", None)
    if not isinstance(timings, dict):  # the generated handler's own name for it
        timings = getattr(module, "INIT", None)
    if isinstance(timings, dict):
        out["init_timings"] = {k: float(v) for k, v in timings.items() if _is_number(v)}
    handler = getattr(module, func_name)
    with open(args["events"]) as f:
        events = json.load(f)
    counter = {"i": 0}

    def call():
        event = events[counter["i"] % len(events)]
        counter["i"] += 1
        result = handler(event, None)
        if isinstance(result, dict) and result.get("statusCode", 200) >= 400:
            raise RuntimeError(f"handler returned {str(result)[:300]}")
        return result

    return call


def _is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def main(args):
    out = {}
    call = {"onnx": _onnx, "tflite": _tflite, "zip": _zip}[args["mode"]](args, out)
    start = time.perf_counter()
    call()
    out["first_inference_ms"] = _ms(start)
    out["answered_at"] = time.time()  # wall clock: the parent times process start -> answer
    for _ in range(args.get("warmup", 0)):
        call()
    warm = []
    for _ in range(args.get("runs", 0)):
        start = time.perf_counter()
        call()
        warm.append(_ms(start))
    out["warm_ms"] = warm
    out["peak_rss_mib"] = _peak_rss_mib()
    sys.stdout.flush()
    print(MARKER + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[-1]))
