"""Lambda SnapStart runtime hooks for the edgecompress handler (python3.12 and later).

Copied beside handler.py when io_spec.json says "snapstart": true; handler.py calls
``register(module)`` once its model is loaded. Needs the standard library and numpy only.

- Before the snapshot: one inference through the whole handler on a zero request, so the
  session's lazy allocations, the first-run kernel choices and the JSON path are in the
  snapshot and not paid by the first restored request.
- After each restore: every restored copy of the snapshot starts with the same memory, so the
  random generators are re-seeded from the OS (Python's ``random`` and numpy's global one),
  and what is bound to a time or an identity is re-read: a fresh instance id, the restore time,
  the log stream and the function version of this execution environment.

``snapshot_restore_py`` ships with Lambda's managed Python runtime (and awslambdaric's wheel);
where it is missing (python3.11, a plain local import) ``register`` does nothing and says so.
"""

import os
import random
import sys
import time
import uuid

import numpy as np

try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # not a SnapStart runtime: the handler works the same, without hooks
    register_after_restore = register_before_snapshot = None

STATE = {
    "hooks": False,
    "warmed": False,
    "warm_ms": None,
    "restores": 0,
    "restored_at": None,
    "instance_id": uuid.uuid4().hex,
    "log_stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
    "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
}


def warm_event(spec):
    """A request the handler accepts: zeros of every input (dynamic dims 1), or one text."""
    if spec.get("text"):
        return {"texts": ["snapstart warm-up"]}
    inputs = {}
    for tensor in spec["inputs"]:
        shape = [d if isinstance(d, int) else 1 for d in tensor["shape"]]
        quantized = tensor.get("scale") is not None
        dtype = np.float32 if quantized else np.dtype(tensor["dtype"])
        inputs[tensor["name"]] = np.zeros(shape, dtype=dtype).tolist()
    return {"inputs": inputs}


def before_snapshot(module):
    """Warm the session through the real handler; a failed warm-up fails the snapshot."""
    t = time.perf_counter()
    answer = module.handler(warm_event(module.SPEC), None)
    if isinstance(answer, dict) and "statusCode" in answer:
        raise RuntimeError(f"snapstart warm-up answered {answer['statusCode']}: {answer['body']}")
    STATE["warm_ms"] = (time.perf_counter() - t) * 1e3
    STATE["warmed"] = True


def after_restore(module=None):
    """Re-seed randomness and re-read what is bound to a time or an identity."""
    random.seed()  # from os.urandom
    np.random.seed()  # numpy's legacy global generator, from the OS too
    STATE["instance_id"] = uuid.uuid4().hex
    STATE["restored_at"] = time.time()
    STATE["restores"] += 1
    STATE["log_stream"] = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
    STATE["function_version"] = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
    print(f"EDGECOMPRESS_RESTORE instance {STATE['instance_id']}", file=sys.stderr, flush=True)


def register(module):
    """Register both hooks for ``module`` (the handler); False where SnapStart is absent."""
    if register_before_snapshot is None:
        print("snapstart: snapshot_restore_py not found; no hooks", file=sys.stderr, flush=True)
        return False
    register_before_snapshot(before_snapshot, module)
    register_after_restore(after_restore, module)
    STATE["hooks"] = True
    return True
