"""Photos for the task tests: scikit-image's sample images with rectangles and ellipses drawn on.

64x64 crops of the photos that ship inside scikit-image's wheel (nothing is downloaded), each
with one to three filled rectangles (class 0) and ellipses (class 1) in random colours, with
their boxes and per-pixel class masks. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import skimage.data as skdata

SIZE, CLASSES = 64, 2
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle_left", "hubble_deep_field",
          "retina", "colorwheel", "logo")


def _photos() -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        fn = getattr(skdata, name, None)
        if fn is None:
            continue
        try:
            img = np.asarray(fn())
        except Exception:  # noqa: BLE001 - an image that needs a download (pooch) is skipped
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            out.append(img[..., :3].astype(np.float32) / 255.0)
    assert len(out) >= 3, "scikit-image ships its sample photos in the wheel"
    return out


def scenes(n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """``(images [n, 3, 64, 64] float32 0..1, boxes per image [K, 5] (x1, y1, x2, y2, class), masks [n, 64, 64])``;
    mask values: 0 background, 1 rectangle, 2 ellipse."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    images = np.zeros((n, 3, SIZE, SIZE), np.float32)
    masks = np.zeros((n, SIZE, SIZE), np.int64)
    boxes = []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for i in range(n):
        p = photos[rng.integers(len(photos))]
        scale = int(rng.integers(1, 4))
        h, w = p.shape[0] // scale, p.shape[1] // scale
        y0, x0 = rng.integers(0, max(1, h - SIZE)), rng.integers(0, max(1, w - SIZE))
        crop = p[::scale, ::scale][y0:y0 + SIZE, x0:x0 + SIZE]
        img = np.zeros((SIZE, SIZE, 3), np.float32)
        img[:crop.shape[0], :crop.shape[1]] = crop
        found = []
        for _ in range(rng.integers(1, 4)):
            bw, bh = rng.integers(10, 28, size=2)
            x1, y1 = rng.integers(0, SIZE - bw), rng.integers(0, SIZE - bh)
            cls = int(rng.integers(CLASSES))
            if cls == 0:
                inside = (xx >= x1) & (xx < x1 + bw) & (yy >= y1) & (yy < y1 + bh)
            else:
                cx, cy = x1 + bw / 2, y1 + bh / 2
                inside = ((xx + 0.5 - cx) / (bw / 2)) ** 2 + ((yy + 0.5 - cy) / (bh / 2)) ** 2 <= 1
            img[inside] = rng.uniform(0, 1, 3).astype(np.float32)
            masks[i][inside] = cls + 1
            found.append([x1, y1, x1 + bw, y1 + bh, cls])
        images[i] = img.transpose(2, 0, 1)
        boxes.append(np.asarray(found, np.float32))
    return images, boxes, masks
