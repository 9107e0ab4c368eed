"""A small convolutional network for 8x8 digits, trained with numpy alone.

The layers, in NCHW like the ONNX graph that ``make_models.py`` builds from them:

    conv1  3x3, pad 1, 1 -> 8 channels, ReLU      [N, 8, 8, 8]
    pool   max 2x2, stride 2                       [N, 8, 4, 4]
    conv2  3x3, pad 1, 8 -> 16 channels, ReLU     [N, 16, 4, 4]
    flatten (channel-major, as ONNX Flatten)       [N, 256]
    fc     256 -> 10, softmax                      [N, 10]

Training is plain minibatch Adam on cross-entropy; with a fixed seed it gives the same weights on
every run on the same machine. numpy is the only dependency, so the example needs no deep learning
framework; a convolution is a matrix product over 3x3 patches ("im2col").
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Params = dict[str, np.ndarray]


def init_params(rng: np.random.Generator) -> Params:
    """He-initialised weights, named after the ONNX initializers they become."""

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1.weight": he((8, 1, 3, 3), 9),
        "conv1.bias": np.zeros(8, np.float32),
        "conv2.weight": he((16, 8, 3, 3), 72),
        "conv2.bias": np.zeros(16, np.float32),
        "fc.weight": he((10, 256), 256),  # [out, in], as ONNX Gemm with transB=1
        "fc.bias": np.zeros(10, np.float32),
    }


def _patches(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, H, W, C*9]: the zero-padded 3x3 neighbourhood of every pixel."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (3, 3), axis=(2, 3))  # [N, C, H, W, 3, 3]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, h, w, c * 9)


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = _patches(x)
    out = cols @ weight.reshape(weight.shape[0], -1).T + bias  # [N, H, W, O]
    return out.transpose(0, 3, 1, 2), cols


def _conv_grads(
    dout: np.ndarray, cols: np.ndarray, weight: np.ndarray, need_dx: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    n, o, h, w = dout.shape
    d = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dweight = (d.T @ cols.reshape(d.shape[0], -1)).reshape(weight.shape)
    if not need_dx:
        return dweight, d.sum(axis=0), None
    c = weight.shape[1]
    dcols = (d @ weight.reshape(o, -1)).reshape(n, h, w, c, 3, 3)
    dpadded = np.zeros((n, c, h + 2, w + 2), dout.dtype)
    for i in range(3):
        for j in range(3):
            dpadded[:, :, i : i + h, j : j + w] += dcols[..., i, j].transpose(0, 3, 1, 2)
    return dweight, d.sum(axis=0), dpadded[:, :, 1:-1, 1:-1]


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(n, c, h // 2, w // 2, 4)
    winner = blocks.argmax(axis=-1)[..., None]
    return np.take_along_axis(blocks, winner, axis=-1)[..., 0], winner


def _pool_grad(dout: np.ndarray, winner: np.ndarray) -> np.ndarray:
    n, c, h2, w2 = dout.shape
    dblocks = np.zeros((n, c, h2, w2, 4), dout.dtype)
    np.put_along_axis(dblocks, winner, dout[..., None], axis=-1)
    dblocks = dblocks.reshape(n, c, h2, w2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return dblocks.reshape(n, c, h2 * 2, w2 * 2)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(params: Params, image: np.ndarray) -> tuple[np.ndarray, dict]:
    """Probabilities [N, 10] for images [N, 1, 8, 8] in 0..1, and what backward needs."""
    a1, cols1 = _conv(image, params["conv1.weight"], params["conv1.bias"])
    r1 = np.maximum(a1, 0)
    p1, winner = _pool(r1)
    a2, cols2 = _conv(p1, params["conv2.weight"], params["conv2.bias"])
    r2 = np.maximum(a2, 0)
    flat = r2.reshape(len(image), -1)
    probs = _softmax(flat @ params["fc.weight"].T + params["fc.bias"])
    cache = {"cols1": cols1, "a1": a1, "winner": winner, "cols2": cols2, "a2": a2, "flat": flat}
    return probs, cache


def backward(params: Params, probs: np.ndarray, labels: np.ndarray, cache: dict) -> Params:
    """Gradients of the mean cross-entropy with respect to every parameter."""
    n = len(labels)
    dlogits = probs.copy()
    dlogits[np.arange(n), labels] -= 1.0
    dlogits /= n
    grads = {"fc.weight": dlogits.T @ cache["flat"], "fc.bias": dlogits.sum(axis=0)}
    dr2 = (dlogits @ params["fc.weight"]).reshape(cache["a2"].shape)
    da2 = dr2 * (cache["a2"] > 0)
    dw2, db2, dp1 = _conv_grads(da2, cache["cols2"], params["conv2.weight"], need_dx=True)
    assert dp1 is not None
    da1 = _pool_grad(dp1, cache["winner"]) * (cache["a1"] > 0)
    dw1, db1, _ = _conv_grads(da1, cache["cols1"], params["conv1.weight"], need_dx=False)
    grads.update({"conv2.weight": dw2, "conv2.bias": db2, "conv1.weight": dw1, "conv1.bias": db1})
    return grads


def train(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    epochs: int = 40,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
) -> Params:
    """Train on images [N, 1, 8, 8] (float32, 0..1) and int labels; returns float32 params."""
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    moment1 = {k: np.zeros_like(v) for k, v in params.items()}
    moment2 = {k: np.zeros_like(v) for k, v in params.items()}
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    for epoch in range(epochs):
        order = rng.permutation(len(image))
        losses = []
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            probs, cache = forward(params, image[batch])
            losses.append(-np.log(probs[np.arange(len(batch)), labels[batch]] + 1e-12).mean())
            grads = backward(params, probs, labels[batch], cache)
            step += 1
            for k, g in grads.items():
                moment1[k] = beta1 * moment1[k] + (1 - beta1) * g
                moment2[k] = beta2 * moment2[k] + (1 - beta2) * g * g
                m_hat = moment1[k] / (1 - beta1**step)
                v_hat = moment2[k] / (1 - beta2**step)
                params[k] = (params[k] - learning_rate * m_hat / (np.sqrt(v_hat) + eps)).astype(
                    np.float32
                )
        if epoch % 10 == 9 or epoch == epochs - 1:
            print(f"  cnn epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}", file=sys.stderr)
    return params
