"""Task metrics: a detector's boxes and a segmenter's masks, compared the way their users read them.

Cosine similarity says little about a detection head: a few boxes whose score crosses the
threshold, or that NMS keeps, decide what the user sees. So with ``task="detection"`` or
``"segmentation"`` :func:`edgeops.validate.validate` decodes both models' outputs the same way
and takes the reference's (fp32) result as the truth; no labels are needed.

Detection (:class:`Detection`): per sample, boxes whose best class score is at least
``score_threshold``, then greedy NMS per class at ``nms_iou`` (at most ``max_detections``).
Each candidate box, highest score first, is matched to the unmatched reference box of the
same class (any class with ``class_agnostic``) with the highest IoU, if that IoU is at least
``match_iou``. ``recall`` = matched / reference boxes, ``precision`` = matched / candidate boxes,
both over all samples; either is NaN when its denominator is 0, so a gate on it fails.

Accepted layouts (``layout``):

* ``"yolo"``: one output ``[N, boxes, 4 + C]``: 4 box values then C class scores (no objectness
  column; ``C >= 1``), as YOLOv8-style heads after their sigmoid;
* ``"yolo-transposed"``: one output ``[N, 4 + C, boxes]``, as ultralytics exports it;
* ``"auto"`` (default): one output of rank 3, read as ``yolo-transposed`` when its middle axis is
  the shorter one (``[1, 84, 8400]``), else as ``yolo``;
* ``"boxes-scores"``: two outputs, boxes ``[N, boxes, 4]`` and scores ``[N, boxes, C]`` or
  ``[N, boxes]`` (one class); named by ``outputs=(boxes, scores)`` or told apart by shape.

Boxes are ``xywh`` (centre x, centre y, width, height) for the YOLO layouts and ``xyxy`` for
``boxes-scores`` unless ``box_format`` says otherwise. Anything else (rank other than 3, fewer
than 5 columns, YOLOv5's objectness column, heads with NMS inside the model) is refused with a
:class:`~edgeops.DataError` that says what was found.

Segmentation (:class:`Segmentation`): a per-pixel probability map ``[N, H, W]`` or
``[N, 1, H, W]`` becomes a mask at ``threshold`` (a map with values outside 0..1 is read as
logits and goes through a sigmoid first); a multi-class map ``[N, C, H, W]`` (``class_axis=1``;
``-1`` for ``[N, H, W, C]``) becomes an argmax label map. ``mask_iou``: foreground IoU over all
pixels of all samples (binary) or the mean over classes of each class's IoU (multi-class, classes
present in either map); two empty masks agree (IoU 1). Per-sample IoUs give the mean and the worst.

A candidate that outputs NaN or inf gets NaN recall, precision and mask IoU (and the count in
``nonfinite``), so every task gate on it fails, as the other gates do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._gates import at_least, shown
from ..errors import DataError, UsageError

LAYOUTS = ("auto", "yolo", "yolo-transposed", "boxes-scores")
BOX_FORMATS = ("xywh", "xyxy")
PRE_NMS = 3000  # boxes per sample kept (highest scores) before NMS


@dataclass(frozen=True)
class Detection:
    """How to read a detection head for ``validate(task="detection")``; see the module docstring."""

    layout: str = "auto"
    score_threshold: float = 0.25
    nms_iou: float = 0.45  # boxes of a class overlapping a kept one by more than this are dropped
    match_iou: float = 0.5  # a candidate box matches a reference box at this IoU or more
    box_format: str | None = None  # "xywh" (centre) or "xyxy"; None: xywh for yolo, xyxy for boxes-scores
    outputs: tuple[str, ...] = ()  # yolo: (name,); boxes-scores: (boxes, scores); (): chosen by shape
    max_detections: int = 300
    class_agnostic: bool = False

    def check(self) -> None:
        if self.layout not in LAYOUTS:
            raise UsageError(f"detection layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if self.box_format is not None and self.box_format not in BOX_FORMATS:
            raise UsageError(f"box format must be xywh (centre) or xyxy, not {self.box_format!r}")
        for name in ("score_threshold", "nms_iou", "match_iou"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise UsageError(f"detection {name} is between 0 and 1, not {v!r}")
        if not isinstance(self.max_detections, int) or self.max_detections < 1:
            raise UsageError(f"max_detections must be a positive integer, not {self.max_detections!r}")
        want = 2 if self.layout == "boxes-scores" else 1
        if self.outputs and (len(self.outputs) != want and self.layout != "auto" or len(self.outputs) > 2):
            raise UsageError(f"layout {self.layout} reads {want} output(s); outputs names {list(self.outputs)}")


@dataclass(frozen=True)
class Segmentation:
    """How to read a segmentation map for ``validate(task="segmentation")``; see the module docstring."""

    threshold: float = 0.5  # foreground where the probability is at least this (binary maps)
    output: str | None = None  # None: the first output of rank 3 or 4
    class_axis: int = 1  # multi-class maps: 1 for [N, C, H, W], -1 for [N, H, W, C]

    def check(self) -> None:
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            raise UsageError(f"mask threshold is a probability between 0 and 1, not {self.threshold!r}")
        if self.class_axis not in (1, -1, 3):
            raise UsageError(f"class_axis is 1 ([N, C, H, W]) or -1 ([N, H, W, C]), not {self.class_axis!r}")


def options_for(task: str, options: Any) -> Detection | Segmentation | None:
    """The checked options of ``task`` (defaults when ``options`` is None); None for the other tasks."""
    want: type[Detection] | type[Segmentation] | None = {"detection": Detection, "segmentation": Segmentation}.get(task)
    if want is None:
        if options is not None:
            raise UsageError(f"task_options are for task='detection' or 'segmentation', not {task!r}")
        return None
    checked = want() if options is None else options
    if not isinstance(checked, want):
        raise UsageError(f"task {task!r} takes edgeops.validate.{want.__name__} options, "
                         f"not a {type(checked).__name__}")
    checked.check()
    return checked


def comparison(options: Detection | Segmentation,
               pairs: list[tuple[str, str]]) -> DetectionComparison | SegmentationComparison:
    """The accumulator for ``options``' task over the paired outputs (reference name, candidate name);
    which outputs it reads is decided on the first chunk, from the shapes the reference gives."""
    if isinstance(options, Detection):
        return DetectionComparison(options, pairs)
    return SegmentationComparison(options, pairs)


def failures(gates: Any, metrics: dict[str, Any] | None) -> list[str]:
    """One line per task gate (``min_detection_recall``, ``min_detection_precision``, ``min_mask_iou``)
    missed; a value that is not a finite number misses its gate."""
    if metrics is None:
        return []
    out = []
    for gate, key, what in (("min_detection_recall", "recall", "detection recall"),
                            ("min_detection_precision", "precision", "detection precision"),
                            ("min_mask_iou", "mask_iou", "mask IoU")):
        limit = getattr(gates, gate, None)
        if limit is None or key not in metrics or at_least(metrics[key], limit):
            continue
        nonfinite = metrics.get("nonfinite") or 0
        if key == "mask_iou":
            why = f" (worst sample {shown(metrics['min_sample_iou'], 4)})"
        else:
            why = (f" ({metrics['matched']} of the reference's {metrics['reference_detections']} boxes matched by "
                   f"the candidate's {metrics['candidate_detections']} at IoU >= {metrics['match_iou']:g})")
            if not nonfinite and not math.isfinite(metrics[key]):
                none = "reference" if key == "recall" else "candidate"
                why = (f": the {none} made no detections at score >= {metrics['score_threshold']:g}, so "
                       f"{key} is undefined")
        tail = f"; the candidate gave {nonfinite} NaN/inf value(s)" if nonfinite else ""
        out.append(f"{what} {shown(metrics[key], 4)} < {limit:.10g} required{why}{tail}")
    return out


# -- detection ----------------------------------------------------------------------------------


def _pick_outputs(options: Detection, pairs: list[tuple[str, str]],
                  shapes: dict[str, tuple[Any, ...]]) -> tuple[str, list[str]]:
    """``(layout, [reference output names])`` with the layout resolved."""
    names = [r for r, _ in pairs]
    for n in options.outputs:
        if n not in names:
            raise UsageError(f"detection output {n!r} is not an output of the reference ({', '.join(names)})")
    layout = options.layout
    if layout == "auto" and len(options.outputs) == 2:
        layout = "boxes-scores"
    if layout == "boxes-scores":
        chosen = list(options.outputs)
        if not chosen:
            boxes = [n for n in names if len(shapes[n]) == 3 and shapes[n][2] == 4]
            others = [n for n in names if n not in boxes[:1] and len(shapes[n]) in (2, 3)]
            if len(boxes) < 1 or len(others) < 1:
                raise DataError("layout boxes-scores needs a boxes output [N, boxes, 4] and a scores output "
                                f"[N, boxes, C] or [N, boxes]; the model has {_shapes(names, shapes)}")
            chosen = [boxes[0], others[0]]
        return layout, chosen
    chosen = list(options.outputs) or [n for n in names if len(shapes[n]) == 3][:1]
    if not chosen:
        raise DataError(f"a YOLO-style detection head is one output [N, boxes, 4 + classes] (or [N, 4 + classes, "
                        f"boxes]); the model has {_shapes(names, shapes)}; for a two-output head give "
                        "layout boxes-scores")
    shape = shapes[chosen[0]]
    if len(shape) != 3:
        raise DataError(f"detection output {chosen[0]!r} has shape {_shape(shape)}; a YOLO-style head is "
                        "[N, boxes, 4 + classes] or [N, 4 + classes, boxes]")
    if layout == "auto":
        a, b = shape[1], shape[2]
        layout = "yolo-transposed" if isinstance(a, int) and isinstance(b, int) and a < b else "yolo"
    return layout, chosen


def _shape(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join("?" if d is None or not isinstance(d, int) else str(d) for d in shape) + "]"


def _shapes(names: list[str], shapes: dict[str, tuple[Any, ...]]) -> str:
    return ", ".join(f"{n} {_shape(shapes[n])}" for n in names)


def decode(options: Detection, layout: str, arrays: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """Per sample ``(boxes xyxy [K, 4], scores [K], classes [K])`` after the score threshold and NMS."""
    if layout == "boxes-scores":
        boxes, scores = (np.asarray(a, dtype=np.float64) for a in arrays)
        if scores.ndim == 2:
            scores = scores[:, :, None]
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[:2] != boxes.shape[:2]:
            raise DataError(f"layout boxes-scores reads boxes [N, boxes, 4] and scores [N, boxes, C] or "
                            f"[N, boxes]; got {list(boxes.shape)} and {list(arrays[1].shape)}")
        fmt = options.box_format or "xyxy"
    else:
        a = np.asarray(arrays[0], dtype=np.float64)
        if layout == "yolo-transposed":
            a = a.transpose(0, 2, 1)
        if a.shape[2] < 5:
            raise DataError(f"a YOLO-style row is 4 box values and at least one class score; {layout} reads "
                            f"{a.shape[2]} values per box from {list(arrays[0].shape)} (the other layout, or "
                            "boxes-scores, may fit)")
        boxes, scores = a[:, :, :4], a[:, :, 4:]
        fmt = options.box_format or "xywh"
    if fmt == "xywh":
        c, half = boxes[..., :2], boxes[..., 2:] / 2
        boxes = np.concatenate([c - half, c + half], axis=-1)
    out: list[tuple[np.ndarray, ...]] = []
    for b, s in zip(boxes, scores):
        cls = np.argmax(np.where(np.isnan(s), -np.inf, s), axis=1)
        best = s[np.arange(s.shape[0]), cls]
        keep = np.flatnonzero(best >= options.score_threshold)  # NaN scores are never kept
        keep = keep[np.argsort(-best[keep], kind="stable")[:PRE_NMS]]
        b, best, cls = b[keep], best[keep], cls[keep]
        kept = nms(b, best, None if options.class_agnostic else cls, options.nms_iou, options.max_detections)
        out.append((b[kept], best[kept], cls[kept]))
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` [A, 4] with every one in ``b`` [B, 4]; NaN boxes give NaN."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None, iou: float, limit: int) -> np.ndarray:
    """Indices kept by greedy NMS (``boxes`` sorted by descending score), per class unless ``classes`` is None."""
    order = np.arange(len(boxes))
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        overlap = box_iou(boxes[i:i + 1], boxes[rest])[0]
        drop = overlap > iou
        if classes is not None:
            drop &= classes[rest] == classes[i]
        order = rest[~drop]
    return np.asarray(keep, dtype=np.int64)


def match(ref: tuple[np.ndarray, ...], cand: tuple[np.ndarray, ...], match_iou: float,
          class_agnostic: bool) -> list[float]:
    """IoUs of the matched pairs: each candidate box (highest score first) takes the unmatched reference
    box of its class with the highest IoU, if that is at least ``match_iou``."""
    rb, _, rc = ref
    cb, _, cc = cand
    if not len(rb) or not len(cb):
        return []
    ious = box_iou(cb, rb)
    if not class_agnostic:
        ious = np.where(cc[:, None] == rc[None, :], ious, -1.0)
    ious = np.nan_to_num(ious, nan=-1.0)
    taken = np.zeros(len(rb), dtype=bool)
    found = []
    for row in ious:  # candidates are sorted by descending score already
        row = np.where(taken, -1.0, row)
        j = int(np.argmax(row))
        if row[j] >= match_iou:
            taken[j] = True
            found.append(float(row[j]))
    return found


class DetectionComparison:
    """Accumulates matched boxes of the reference and the candidate over chunks of samples."""

    def __init__(self, options: Detection, pairs: list[tuple[str, str]]):
        self.options = options
        self.layout, self.outputs = options.layout, list(options.outputs)
        self._pairs = pairs
        self._cand = dict(pairs)
        self._started = False
        self.ref_count = self.cand_count = self.samples = self.nonfinite = 0
        self.ious: list[float] = []
        self.sample_recall: list[float] = []

    def update(self, ref_out: dict[str, np.ndarray], cand_out: dict[str, np.ndarray]) -> None:
        if not self._started:
            shapes = {r: ref_out[r].shape for r, _ in self._pairs}
            self.layout, self.outputs = _pick_outputs(self.options, self._pairs, shapes)
            self._started = True
        cand_arrays = [cand_out[self._cand[n]] for n in self.outputs]
        self.nonfinite += sum(int(a.size - np.count_nonzero(np.isfinite(a))) for a in cand_arrays)
        ref = decode(self.options, self.layout, [ref_out[n] for n in self.outputs])
        cand = decode(self.options, self.layout, cand_arrays)
        for r, c in zip(ref, cand):
            found = match(r, c, self.options.match_iou, self.options.class_agnostic)
            self.ious += found
            self.ref_count += len(r[0])
            self.cand_count += len(c[0])
            self.sample_recall.append(len(found) / len(r[0]) if len(r[0]) else math.nan)
        self.samples += len(ref)

    def summary(self) -> dict[str, Any]:
        matched, nan = len(self.ious), math.nan
        per = np.asarray(self.sample_recall)
        per = per[np.isfinite(per)]
        o = self.options
        recall = matched / self.ref_count if self.ref_count else nan
        precision = matched / self.cand_count if self.cand_count else nan
        if self.nonfinite:  # a candidate that gives NaN/inf fails the detection gates (edgeops._gates)
            recall = precision = nan
        return {
            "task": "detection", "layout": self.layout, "outputs": self.outputs,
            "box_format": o.box_format or ("xyxy" if self.layout == "boxes-scores" else "xywh"),
            "score_threshold": o.score_threshold, "nms_iou": o.nms_iou, "match_iou": o.match_iou,
            "class_agnostic": o.class_agnostic,
            "reference_detections": self.ref_count, "candidate_detections": self.cand_count, "matched": matched,
            "recall": recall, "precision": precision,
            "mean_matched_iou": float(np.mean(self.ious)) if self.ious else nan,
            "min_sample_recall": float(per.min()) if per.size else nan,
            "samples_with_reference_boxes": int(per.size),
            "nonfinite": self.nonfinite,
        }


# -- segmentation -------------------------------------------------------------------------------


class SegmentationComparison:
    """Accumulates mask intersections and unions of the reference and the candidate over chunks."""

    def __init__(self, options: Segmentation, pairs: list[tuple[str, str]]):
        self.options = options
        names = [r for r, _ in pairs]
        if options.output is not None and options.output not in names:
            raise UsageError(f"segmentation output {options.output!r} is not an output of the reference "
                             f"({', '.join(names)})")
        self._pairs = pairs
        self.output: str | None = options.output
        self.candidate_output: str | None = None
        self.kind: str | None = None  # "binary" or "multiclass", decided on the first chunk
        self.logits = False
        self.classes = 0
        self.inter: np.ndarray | None = None  # per class (index 0: foreground of a binary map)
        self.union: np.ndarray | None = None
        self.sample_iou: list[np.ndarray] = []
        self.agree = self.pixels = self.nonfinite = 0

    def _labels(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        if self.kind == "binary":
            if a.ndim == 4:
                a = a[:, 0] if self.options.class_axis == 1 else a[..., 0]
            if self.logits:
                with np.errstate(over="ignore"):
                    a = 1.0 / (1.0 + np.exp(-a))
            return (a >= self.options.threshold).astype(np.int64)  # NaN: background
        return np.argmax(np.nan_to_num(a, nan=-np.inf), axis=self.options.class_axis)

    def update(self, ref_out: dict[str, np.ndarray], cand_out: dict[str, np.ndarray]) -> None:
        if self.candidate_output is None:
            self._choose({r: ref_out[r].shape for r, _ in self._pairs})
        assert self.output is not None and self.candidate_output is not None
        ref, cand = ref_out[self.output], cand_out[self.candidate_output]
        self.nonfinite += int(cand.size - np.count_nonzero(np.isfinite(cand)))
        if self.kind is None:
            c = 1 if ref.ndim == 3 else ref.shape[self.options.class_axis]
            self.kind = "binary" if c == 1 else "multiclass"
            self.classes = 2 if c == 1 else c
            finite = ref[np.isfinite(ref)]
            self.logits = self.kind == "binary" and bool(finite.size) and bool(finite.min() < 0 or finite.max() > 1)
            size = 1 if self.kind == "binary" else c
            self.inter, self.union = np.zeros(size, np.int64), np.zeros(size, np.int64)
        r, c = self._labels(ref), self._labels(cand)
        n = r.shape[0]
        r, c = r.reshape(n, -1), c.reshape(n, -1)
        self.agree += int(np.count_nonzero(r == c))
        self.pixels += r.size
        assert self.inter is not None and self.union is not None
        classes = [1] if self.kind == "binary" else range(self.classes)
        inter = np.stack([np.count_nonzero((r == k) & (c == k), axis=1) for k in classes], axis=1)
        union = np.stack([np.count_nonzero((r == k) | (c == k), axis=1) for k in classes], axis=1)
        self.inter += inter.sum(axis=0)
        self.union += union.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
        # a sample's IoU: the mean over the classes either map shows; both empty: they agree (1)
        shown_in = (union > 0).sum(axis=1)
        self.sample_iou.append(np.where(shown_in > 0, np.nansum(per, axis=1) / np.maximum(shown_in, 1), 1.0))

    def _choose(self, shapes: dict[str, tuple[int, ...]]) -> None:
        names = list(shapes)
        chosen = self.output or next((n for n in names if len(shapes[n]) in (3, 4)), None)
        if chosen is None or len(shapes[chosen]) not in (3, 4):
            raise DataError(f"a segmentation map is [N, H, W], [N, 1, H, W] or [N, C, H, W] (class_axis -1: "
                            f"[N, H, W, C]); the model gives {_shapes(names, shapes)}")
        self.output, self.candidate_output = chosen, dict(self._pairs)[chosen]

    def summary(self) -> dict[str, Any]:
        nan = math.nan
        per = np.concatenate(self.sample_iou) if self.sample_iou else np.zeros(0)
        iou = nan
        if self.inter is not None and self.union is not None:
            present = self.union > 0
            iou = float(np.mean(self.inter[present] / self.union[present])) if present.any() else 1.0
        if self.nonfinite:
            iou = nan  # a candidate that gives NaN/inf fails the IoU gate, whatever its argmax/threshold reads
        return {
            "task": "segmentation", "output": self.output, "candidate_output": self.candidate_output,
            "kind": self.kind, "threshold": self.options.threshold if self.kind == "binary" else None,
            "logits": self.logits, "classes": self.classes,
            "mask_iou": iou,
            "mean_sample_iou": float(per.mean()) if per.size else nan,
            "min_sample_iou": float(per.min()) if per.size else nan,
            "pixel_agreement": self.agree / self.pixels if self.pixels else nan,
            "nonfinite": self.nonfinite,
        }

