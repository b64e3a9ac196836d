"""torch.fx tracing that, when it fails, says which layer and which line of code failed."""

from __future__ import annotations

import functools
import traceback
from typing import TYPE_CHECKING

from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch.fx as fx
    from torch import nn


@functools.cache
def _naming_tracer_cls() -> type:
    """The Tracer subclass below, defined on first use (subclassing fx.Tracer imports torch)."""
    import torch.fx as fx

    class _NamingTracer(fx.Tracer):
        """A Tracer remembering the innermost module being traced when an error is raised."""

        def __init__(self):
            super().__init__()
            self.stack: list[str] = []
            self.failed_at: str | None = None

        def call_module(self, m, forward, args, kwargs):
            name = self.path_of_module(m)
            self.stack.append(name)
            try:
                return super().call_module(m, forward, args, kwargs)
            except Exception:
                if self.failed_at is None:
                    self.failed_at = f"{name} ({type(m).__name__})"
                raise
            finally:
                self.stack.pop()

    return _NamingTracer


def _user_line(exc: BaseException) -> str:
    """The last frame outside torch itself: the model's own line that could not be traced."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {f.filename.rsplit('/', 1)[-1]}:{f.lineno}: {(f.line or '').strip()}"


def trace(module: nn.Module, purpose: str) -> fx.GraphModule:
    """``symbolic_trace`` of ``module``; CompressorError naming the failing layer otherwise."""
    import torch.fx as fx

    tracer = _naming_tracer_cls()()
    try:
        graph = tracer.trace(module)
    except Exception as exc:
        layer = tracer.failed_at or f"<root> ({type(module).__name__}.forward)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompressorError(
            f"{purpose}: torch.fx cannot trace layer {layer}: {first}{_user_line(exc)}"
        ) from None
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None
