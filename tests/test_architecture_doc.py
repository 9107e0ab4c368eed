"""docs/architecture.md's picture of the packages is the code's: neither its arrows nor its layers can rot.

The document holds two fenced blocks this test reads:

* ```` ```layers ````: the picture. One row per box, top layer first: ``[layer] name ──► targets``
  (``·`` for none); rows without a number share the layer above them. After the line that says
  ``foundation``, the names of the foundation: the single-file modules every layer may import.
* ```` ```edges ````: the same arrows as ``a -> b`` lines, one per line.

A box is a top-level module or subpackage of ``edgeops`` (``edgeops`` itself is the facade,
``edgeops/__init__.py``), unless the document names a deeper one (``deploy.store``): a module belongs
to the longest box name that is a prefix of it. The arrows come from :func:`tests.test_import_cycles.import_graph`
(the same rule as the cycle test: every import, lazy ones included, except under ``TYPE_CHECKING``),
lifted to boxes. Arrows into the foundation are not drawn; the foundation may import only itself.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from tests.test_import_cycles import ROOT, cycles, import_graph

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
ARROW = "──►"


def _block(text: str, tag: str) -> list[str]:
    found = re.findall(rf"^```{tag}\n(.*?)^```", text, flags=re.S | re.M)
    assert len(found) == 1, f"docs/architecture.md needs exactly one ```{tag} block, found {len(found)}"
    return [line for line in found[0].splitlines() if line.strip()]


def read_picture(text: str) -> tuple[list[tuple[int, str, set[str]]], set[str]]:
    """``([(layer, box, targets)] top row first, foundation names)`` from the ```layers block."""
    rows: list[tuple[int, str, set[str]]] = []
    foundation: set[str] = set()
    layer, in_foundation = None, False
    for line in _block(text, "layers"):
        if in_foundation:
            foundation |= set(line.split())
        elif "foundation" in line and ARROW not in line:
            in_foundation = True
        else:
            left, sep, right = line.partition(ARROW)
            assert sep, f"a picture row without {ARROW}: {line!r}"
            words = left.split()
            if words[0].isdigit():
                layer = int(words.pop(0))
            assert layer is not None and len(words) == 1, f"a row is [layer] box {ARROW} targets: {line!r}"
            rows.append((layer, words[0], set(right.split()) - {"·"}))
    return rows, foundation


def read_edges(text: str) -> set[tuple[str, str]]:
    edges = set()
    for line in _block(text, "edges"):
        match = re.fullmatch(r"\s*(\S+)\s*->\s*(\S+)\s*", line)
        assert match, f"an edges line is `a -> b`: {line!r}"
        edges.add((match[1], match[2]))
    return edges


def box_of(module: str, boxes: set[str]) -> str:
    """The box a dotted module (``edgeops.deploy.store``) belongs to (see the module docstring)."""
    rel = module.partition(".")[2] or "edgeops"
    parts = rel.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in boxes:
            return ".".join(parts[:n])
    return parts[0]


@functools.lru_cache(maxsize=1)
def _module_graph() -> dict[str, frozenset[str]]:
    return {module: frozenset(targets) for module, targets in import_graph(ROOT).items()}


def code_edges(boxes: set[str]) -> tuple[set[str], set[tuple[str, str]]]:
    """``(every box the code has, every arrow between two different boxes)``."""
    graph = _module_graph()
    found = {box_of(m, boxes) for m in graph}
    edges = {(box_of(a, boxes), box_of(b, boxes)) for a, targets in graph.items() for b in targets}
    return found, {(a, b) for a, b in edges if a != b}


def _diff(label: str, extra: set[tuple[str, str]], missing: set[tuple[str, str]]) -> str:
    lines = [f"  {a} -> {b}   (in the code, not in {label})" for a, b in sorted(extra)]
    lines += [f"  {a} -> {b}   (in {label}, not in the code)" for a, b in sorted(missing)]
    return "\n".join(lines)


def problems(text: str) -> list[str]:
    """Every way the document's picture and edge list differ from the code and from each other."""
    rows, foundation = read_picture(text)
    declared = read_edges(text)
    boxes = {box for _, box, _ in rows}
    found = []
    if len(rows) != len(boxes):
        found.append("a box appears twice in the picture")
    if not foundation or foundation & boxes:
        found.append("the foundation is missing or shares names with the boxes")
    present, actual = code_edges(boxes | foundation)
    if present != boxes | foundation:
        found.append(f"boxes in the picture and packages in edgeops differ: undocumented "
                     f"{sorted(present - boxes - foundation)}, gone {sorted((boxes | foundation) - present)}")
    upward = sorted((a, b) for a, b in actual if a in foundation and b not in foundation)
    if upward:
        found.append(f"the foundation imports a box above it (move the code down): {upward}")
    drawn = {(a, b) for a, b in actual if a not in foundation and b not in foundation}
    if declared != drawn:
        found.append("the ```edges block differs from the code:\n" + _diff("the edges block", drawn - declared,
                                                                            declared - drawn))
    pictured = {(box, t) for _, box, targets in rows for t in targets}
    if pictured != declared:
        found.append("the picture and the ```edges block disagree:\n"
                     + _diff("the picture", declared - pictured, pictured - declared))
    layer = {box: n for n, box, _ in rows}
    if [n for n, _, _ in rows] != sorted(layer.values(), reverse=True):
        found.append("the picture's rows must go from the top layer down")
    up = [(box, t) for n, box, targets in rows for t in sorted(targets) if layer.get(t, n) >= n]
    if up:
        found.append(f"arrows in the picture that do not point to a lower layer: {up}")
    return found


def test_the_documented_arrows_are_the_code_arrows():
    found = problems(DOC.read_text(encoding="utf-8"))
    assert not found, "docs/architecture.md is out of date; redraw it from the code:\n" + "\n".join(found)


def test_the_picture_has_no_cycle_and_the_code_none_between_boxes():
    rows, foundation = read_picture(DOC.read_text(encoding="utf-8"))
    assert not cycles({box: targets for _, box, targets in rows})
    boxes = {box for _, box, _ in rows} | foundation
    _, actual = code_edges(boxes)
    graph: dict[str, set[str]] = {box: set() for box in boxes}
    for a, b in actual:
        graph.setdefault(a, set()).add(b)
    assert not cycles(graph), "two boxes import each other: split one (as deploy.store is) or move code down"


def _planted(text: str, old: str, new: str) -> str:
    assert old in text, f"the document no longer has {old!r}: update this test"
    return text.replace(old, new, 1)


def test_a_planted_difference_is_seen():
    """The reader and the comparison are not vacuous: a wrong arrow, a lost box, an upward arrow all fail."""
    text = DOC.read_text(encoding="utf-8")
    rows, foundation = read_picture(text)
    boxes = {box for _, box, _ in rows}
    assert {"cli", "runtime", "agent", "deploy", "deploy.store", "edgeops"} <= boxes
    assert {"errors", "_io", "_json", "targets"} <= foundation
    assert box_of("edgeops.deploy.store", boxes) == "deploy.store" and box_of("edgeops.deploy.mqtt", boxes) == "deploy"
    assert box_of("edgeops", boxes) == "edgeops" and box_of("edgeops.convert.tflite.ops.conv", boxes) == "convert"

    extra_edge = _planted(text, "runtime -> formats\n", "runtime -> formats\nruntime -> agent\n")
    lost_edge = _planted(text, "runtime -> formats\n", "")
    merged_store = text.replace("deploy.store", "deploy")  # the store drawn inside deploy: a two-way arrow
    for planted in (extra_edge, lost_edge, merged_store):
        assert problems(planted), "a planted difference went unseen"
    assert any("runtime -> agent   (in the edges block" in p for p in problems(extra_edge))
    assert any("runtime -> formats   (in the code" in p for p in problems(lost_edge))
