"""IO specs: names, dtypes and shapes (named dims are dynamic) of a model's tensors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, int64, int8 ...
    shape: tuple[int | str, ...]  # a str names a dynamic dim ("batch", "sequence")
    # int8/uint8 tensors of a full-integer model carry their affine quantization.
    scale: float | None = None
    zero_point: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(
            d["name"],
            str(d.get("dtype", "float32")),
            tuple(d["shape"]),
            d.get("scale"),
            d.get("zero_point"),
        )

    def describe(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    def matches(self, array: np.ndarray) -> str | None:
        """None when ``array`` fits this spec, else what is wrong."""
        if str(array.dtype) != self.dtype:
            return f"{self.name}: expected dtype {self.dtype}, got {array.dtype}"
        if array.ndim != len(self.shape):
            dims = f"{len(self.shape)} dims {list(self.shape)}"
            return f"{self.name}: expected {dims}, got {list(array.shape)}"
        for axis, (want, got) in enumerate(zip(self.shape, array.shape, strict=True)):
            if isinstance(want, int) and want != got:
                return (
                    f"{self.name}: dim {axis} must be {want}, got {got} (shape {list(array.shape)})"
                )
        return None


@dataclass
class IOSpec:
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def to_dict(self) -> dict:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> IOSpec:
        return cls(
            [TensorSpec.from_dict(t) for t in d.get("inputs", [])],
            [TensorSpec.from_dict(t) for t in d.get("outputs", [])],
        )

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """For torch.onnx.export: {tensor: {axis: dim_name}}."""
        axes: dict[str, dict[int, str]] = {}
        for spec in [*self.inputs, *self.outputs]:
            named = {i: s for i, s in enumerate(spec.shape) if isinstance(s, str)}
            if named:
                axes[spec.name] = named
        return axes
