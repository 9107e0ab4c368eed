"""Preprocessing a model expects between raw data and its input tensor.

``Preprocess(scale=1/255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), layout="nhwc->nchw")``
turns raw samples (uint8 images, sensor counts) into the model's input:
``((raw * scale) - mean) / std``, per channel, then the layout change, as float32.
The same description travels in bundles' manifests and drives end-to-end benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError

LAYOUTS = ("nhwc->nchw", "nchw->nhwc")


@dataclass(frozen=True)
class Preprocess:
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.layout is not None and self.layout not in LAYOUTS:
            raise UsageError(f"preprocessing layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if any(s == 0 for s in self.std):
            raise UsageError("preprocessing std must not be 0")

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        x = raw.astype(self.dtype, copy=False) * np.asarray(self.scale, self.dtype)
        x = (x - np.asarray(self.mean, self.dtype)) / np.asarray(self.std, self.dtype)
        if self.layout == "nhwc->nchw":
            x = np.transpose(x, (0, 3, 1, 2))
        elif self.layout == "nchw->nhwc":
            x = np.transpose(x, (0, 2, 3, 1))
        return np.ascontiguousarray(x)

    def raw_shape(self, model_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape raw data must have to become ``model_shape``."""
        if self.layout == "nhwc->nchw":
            n, c, h, w = model_shape
            return (n, h, w, c)
        if self.layout == "nchw->nhwc":
            n, h, w, c = model_shape
            return (n, c, h, w)
        return tuple(model_shape)

    @classmethod
    def parse(cls, text: str) -> Preprocess:
        """From ``"scale=0.0625,mean=0.5;0.5;0.5,std=0.25,layout=nhwc->nchw"`` (the CLI form)."""
        fields: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise UsageError(f"preprocessing item {part!r} is not key=value")
            try:
                if key == "scale":
                    fields["scale"] = _number(value)
                elif key in ("mean", "std"):
                    fields[key] = tuple(_number(v) for v in value.split(";"))
                elif key in ("layout", "dtype"):
                    fields[key] = value
                else:
                    raise UsageError(f"unknown preprocessing key {key!r} (scale, mean, std, layout, dtype)")
            except ValueError as exc:
                raise UsageError(f"preprocessing {key}={value!r} is not a number") from exc
        return cls(**fields)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std), "layout": self.layout,
                "dtype": self.dtype}


def _number(text: str) -> float:
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)
