"""A model that runs on a microcontroller: ``edgeops validate REF.onnx serial://...`` (or ``socket://...``).

:func:`open_remote` opens a :class:`~.link.Link` to the device, reads its HELLO (the model's input
and output tensors: type, shape, int8/uint8 quantization) and returns an :class:`edgeops.Model`
whose backend, ``mcu``, sends each sample as an INFER_REQ and reads the INFER_RESP. Everything that
takes a model takes it: validate compares it with the reference like any candidate (a quantized
input gets the data quantized, its outputs dequantized, as for an int8 TFLite model). The device's
own measure of each run (``INFER_RESP.latency_us``, its µs clock around the model call) is kept in
:attr:`McuBackend.device_latency_us`; the host's timing includes the serial round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InferenceError
from ..runtime.spec import TensorSpec
from . import wire
from .link import Link, LinkError

__all__ = ["McuBackend", "is_remote", "open_remote"]

SCHEMES = ("serial://", "socket://")
DTYPES: dict[int, type[np.generic]] = {wire.DType.INT8: np.int8, wire.DType.UINT8: np.uint8, wire.DType.INT16: np.int16,
          wire.DType.INT32: np.int32, wire.DType.FLOAT32: np.float32}


def is_remote(target: Any) -> bool:
    """True for a ``serial://`` or ``socket://`` URL."""
    return isinstance(target, str) and target.startswith(SCHEMES)


def _spec(name: str, t: wire.TensorDesc) -> TensorSpec:
    dtype = DTYPES.get(t.dtype)
    if dtype is None:
        raise LinkError(f"the device's {name} tensor has an unknown dtype code {t.dtype}")
    quant = (float(t.scale), int(t.zero_point)) if t.dtype in (wire.DType.INT8, wire.DType.UINT8) and t.scale else None
    return TensorSpec(name=name, shape=tuple(t.dims), dtype=np.dtype(dtype), quantization=quant)


def _elements(spec: TensorSpec) -> int:
    n = 1
    for d in spec.shape or ():
        n *= int(d or 1)
    return n


def _shaped(spec: TensorSpec, others: list[TensorSpec]) -> TensorSpec:
    """``spec`` with the shape of the one tensor in ``others`` (a dynamic axis taken as 1) when the element counts
    agree: the device knows ``[64]`` where the reference says ``[N, 1, 8, 8]``."""
    if len(others) != 1 or others[0].shape is None:
        return spec
    shape = tuple(1 if d is None else int(d) for d in others[0].shape)
    if int(np.prod(shape)) != _elements(spec):
        return spec
    return TensorSpec(name=spec.name, shape=shape, dtype=spec.dtype, quantization=spec.quantization)


class McuBackend:
    """The ``mcu`` backend: one INFER round trip per sample over the link."""

    name = "mcu"

    def __init__(self, link: Link, hello: wire.Hello, like: Any = None):
        if not hello.capabilities & wire.Capability.INFER:
            raise LinkError(f"device {hello.device_id} was built without INFER (HELLO capabilities)")
        self.link, self.hello = link, hello
        self.inputs = [_shaped(_spec("input", hello.input), like.inputs if like is not None else [])]
        self.outputs = [_shaped(_spec("output", hello.output), like.outputs if like is not None else [])]
        self.providers = [f"{hello.device_id} firmware {hello.firmware_version} on {link.url}"]
        self.version = hello.firmware_version
        self.device_latency_us: list[int] = []

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = np.ascontiguousarray(feeds["input"], dtype=self.inputs[0].dtype)
        reply = self.link.request(wire.InferReq(input=x.tobytes()), timeout=max(self.link.timeout, 5.0))
        if not isinstance(reply, wire.InferResp):
            raise InferenceError(f"INFER_REQ answered with {type(reply).__name__}")
        if reply.status != wire.ErrorCode.OK:
            raise InferenceError(f"the device failed the inference: {wire.ErrorCode(reply.status).name}")
        self.device_latency_us.append(reply.latency_us)
        out = self.outputs[0]
        want = _elements(out) * out.dtype.itemsize
        if len(reply.output) != want:
            raise InferenceError(f"the device returned {len(reply.output)} output bytes, its HELLO says {want}")
        return [np.frombuffer(reply.output, out.dtype).reshape(out.shape).copy()]

    def close(self) -> None:
        self.link.stop()


def open_remote(url: str, *, baud: int = 115200, timeout: float = 10.0, like: Any = None) -> Any:
    """An :class:`edgeops.Model` running on the device at ``url`` (``serial://PATH[?baud=N]`` or ``socket://H:P``);
    its input and output take the shapes of ``like``'s (a reference model) where the element counts agree."""
    from ..runtime.model import Model

    if "?baud=" in url:
        url, _, rate = url.partition("?baud=")
        baud = int(rate)
    link = Link(url, baud=baud).start()
    try:
        if not link.wait_open(timeout):
            raise LinkError(f"cannot open {url}: {link.last_error}")
        hello = link.request(wire.HelloReq(), retries=max(1, int(timeout)))
        if not isinstance(hello, wire.Hello):
            raise LinkError(f"HELLO_REQ answered with {type(hello).__name__}")
        link.max_payload = hello.max_payload
        backend = McuBackend(link, hello, like)
    except BaseException:
        link.stop()
        raise
    return Model(backend, path=url, fmt="mcu")
