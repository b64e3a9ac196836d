"""Weight sharing inside the int8-token export: fewer distinct int8 values, for coded storage.

``package: {lambda: {storage: compressed}}`` entropy-codes the model's weights
(edgecompress/storage). Its gain grows as each column of a MatMul weight, or each row of an
embedding table, takes fewer distinct values. This config asks the int8-token pass to round
every MatMul weight by GPTQ onto a shared grid (``weight_step``: the int8 multiples of the
step; ``weight_levels``: k-means levels per output column, compressors/codebook_gptq.py) and
to snap every int8 embedding row to one (``embedding_step`` / ``embedding_levels``).
Measured on all-MiniLM-L6-v2 (benchmarks/results/deep-compression.md): weight_step 2 +
embedding_step 5 take 4.8 MiB off each Lambda zip at mean cosine 0.9991 (0.9998 without).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, model_validator

from edgecompress.compressors.codebook_gptq import codebook_gptq, share_table_rows
from edgecompress.registry import StepConfig


class TokenSharing(StepConfig):
    """Shared int8 grids for the int8-token weights (set at most one of step / levels each)."""

    weight_step: int | None = Field(
        None, ge=2, le=64, description="MatMul weights: GPTQ onto the int8 multiples of this"
    )
    weight_levels: int | None = Field(
        None, ge=2, le=128, description="MatMul weights: GPTQ onto k-means levels per column"
    )
    embedding_step: int | None = Field(
        None, ge=2, le=64, description="embedding rows: nearest int8 multiple of this"
    )
    embedding_levels: int | None = Field(
        None, ge=2, le=128, description="embedding rows: nearest of k-means levels per row"
    )

    @model_validator(mode="after")
    def _one_grid_each(self):
        for part in ("weight", "embedding"):
            if getattr(self, f"{part}_step") and getattr(self, f"{part}_levels"):
                raise ValueError(f"set {part}_step or {part}_levels, not both")
        return self

    def rounding(self) -> Callable | None:
        """The GPTQ rounding int8-token uses for MatMul weights (None: plain int8 GPTQ)."""
        if not (self.weight_step or self.weight_levels):
            return None
        return functools.partial(
            codebook_gptq, levels=self.weight_levels or 256, step=self.weight_step
        )

    def share_tables(self, path: Path) -> dict:
        """Snap the int8 embedding rows of the file at ``path`` in place; what was done."""
        if not (self.embedding_step or self.embedding_levels):
            return {}
        tables = share_table_rows(
            path, path, self.embedding_levels or 256, step=self.embedding_step
        )
        return {"shared_embedding_tables": len(tables)}
