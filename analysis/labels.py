"""Point labels that do not print over each other, over the points, or past the axes.

matplotlib places an annotation where it is told, so labels of points that sit close together
overlap (two lbl conv kernels at the same throughput, six fused kernels at the same occupancy).
:func:`place_labels` measures each label with the renderer and tries positions around its point,
nearest first, keeping the first one whose box stays inside the axes and clear of every point and
every label already placed; a label that had to move away from its point gets a thin leader line.
Call it after the axes' limits, scales and layout are final (``tight_layout`` moves axes, so do
that first and not again afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.transforms import Bbox

# Offsets tried around a point, in points: distance rings, eight directions each, nearest first.
RADII_PT = (5.0, 12.0, 22.0, 36.0, 55.0, 80.0, 110.0, 150.0, 200.0, 260.0, 330.0)
ANGLES_DEG = (45, -45, 135, -135, 0, 180, 90, -90, 22.5, 67.5, -22.5, -67.5, 112.5, 157.5, -112.5, -157.5)
LEADER_FROM_PT = 10.0  # labels placed further than this from their point get a leader line


@dataclass(frozen=True)
class Label:
    """One label: its text (may hold line breaks), the data point it names, and its colour."""

    text: str
    xy: tuple[float, float]
    color: str = "#262626"


def _box(anchor_px, dx, dy, w, h) -> tuple[Bbox, str, str]:
    """The text box for an offset (dx, dy) in pixels from the anchor, and its alignment."""
    ha = "left" if dx > 0.3 * abs(dy) else "right" if dx < -0.3 * abs(dy) else "center"
    va = "bottom" if dy > 0.3 * abs(dx) else "top" if dy < -0.3 * abs(dx) else "center"
    x = anchor_px[0] + dx
    y = anchor_px[1] + dy
    x0 = x if ha == "left" else x - w if ha == "right" else x - w / 2
    y0 = y if va == "bottom" else y - h if va == "top" else y - h / 2
    return Bbox.from_bounds(x0, y0, w, h), ha, va


def _pad(box: Bbox, pad: float) -> Bbox:
    return Bbox.from_extents(box.x0 - pad, box.y0 - pad, box.x1 + pad, box.y1 + pad)


def _plan(sizes, anchors, taken0, inner, pad, px_per_pt, order) -> tuple[dict, int]:
    """Place the labels in ``order`` (indices), each at the nearest free position: {index: (box, dx,
    dy, ha, va, r, overlaps)} and the number of overlaps left where no position was free."""
    taken, plan, left = list(taken0), {}, 0
    for i in order:
        (w, h), anchor = sizes[i], anchors[i]
        best = None
        for r in RADII_PT:
            for a in ANGLES_DEG:
                dx = r * px_per_pt * math.cos(math.radians(a))
                dy = r * px_per_pt * math.sin(math.radians(a))
                box, ha, va = _box(anchor, dx, dy, w, h)
                inside = inner.containsx(box.x0) and inner.containsx(box.x1) and inner.containsy(box.y0) \
                    and inner.containsy(box.y1)
                hits = sum(_pad(box, pad).overlaps(t) for t in taken)
                score = (not inside, hits, r)
                if best is None or score < best[0]:
                    best = (score, box, dx, dy, ha, va, r)
                if inside and hits == 0:
                    break
            if best[0][0] is False and best[0][1] == 0:
                break
        (outside, hits, _), *placed = best
        left += hits + outside
        plan[i] = (*placed, hits + outside)
        taken.append(placed[0])
    return plan, left


def place_labels(ax, labels: Sequence[Label], obstacles: Sequence[tuple[float, ...]] = (), fontsize: float = 9,
                 marker_pt: float = 8.0, pad_pt: float = 2.5, avoid: Sequence[Bbox] = ()) -> list:
    """Annotate ``ax`` with ``labels`` so that no two overlap and none covers a point or leaves the axes.

    ``obstacles`` are data points to keep clear (every plotted point, labelled or not), each a
    square of ``marker_pt`` points, or of its own size in points given as a third value; ``avoid`` are extra boxes in display pixels (a legend, a
    note). Labels are placed one by one, each at the nearest free position, in the order given; where
    that leaves a label with no free position, other orders are tried too (the stuck labels first, the
    largest first, the reverse), and the order leaving the fewest overlaps wins: a label with few
    places to go takes one before a label that has others. Where no order places them all, the labels
    are tried 0.5 and 1 point smaller. Returns the annotations.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72.0
    pad = pad_pt * px_per_pt
    frame = ax.get_window_extent(renderer)
    inner = Bbox.from_extents(frame.x0 + pad, frame.y0 + pad, frame.x1 - pad, frame.y1 - pad)
    half = marker_pt * px_per_pt / 2
    taken = [_pad(b, 0) for b in avoid]
    for x, y, *size in obstacles:
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        px, py = ax.transData.transform((x, y))
        r = size[0] * px_per_pt / 2 if size else half
        taken.append(Bbox.from_extents(px - r, py - r, px + r, py + r))
    anchors = [ax.transData.transform(lab.xy) for lab in labels]
    given = list(range(len(labels)))
    best = None
    for size in (fontsize, fontsize - 0.5, fontsize - 1.0):  # a crowded figure's labels a little smaller
        sizes = []
        for lab in labels:
            probe = ax.text(0, 0, lab.text, fontsize=size)
            ext = probe.get_window_extent(renderer)
            probe.remove()
            sizes.append((ext.width, ext.height))
        plan, left = _plan(sizes, anchors, taken, inner, pad, px_per_pt, given)
        if left:
            stuck = [i for i in given if plan[i][-1]]
            for order in (stuck + [i for i in given if i not in stuck],
                          sorted(given, key=lambda i: -sizes[i][0] * sizes[i][1]), given[::-1]):  # fmt: skip
                other, other_left = _plan(sizes, anchors, taken, inner, pad, px_per_pt, order)
                if other_left < left:
                    plan, left = other, other_left
        if best is None or left < best[1]:
            best = (plan, left, size)
        if not left:
            break
    plan, _, fontsize = best
    out = []
    for i, lab in enumerate(labels):
        _, dx, dy, ha, va, r, _ = plan[i]
        arrow = dict(arrowstyle="-", color=lab.color, lw=0.6, shrinkA=0, shrinkB=3) if r > LEADER_FROM_PT else None
        out.append(ax.annotate(lab.text, lab.xy, xytext=(dx / px_per_pt, dy / px_per_pt), textcoords="offset points",
                               ha=ha, va=va, fontsize=fontsize, color=lab.color, arrowprops=arrow, zorder=6,
                               annotation_clip=False))
    return out


def along(xs: Sequence[float], ys: Sequence[float], per_segment: int = 12, size_pt: float = 3.0) -> list[tuple]:
    """Obstacles along a polyline (linear axes), so labels keep off the lines as well as the points."""
    out = []
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), list(zip(xs, ys))[1:]):
        for i in range(per_segment + 1):
            t = i / per_segment
            out.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0), size_pt))
    return out
