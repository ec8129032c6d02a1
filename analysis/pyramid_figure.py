"""The pyramid of one tile, drawn from the model (figure ``pyramid`` of analysis/model_figures.py).

For one fusion group and tile size, each map of the group (its input and every conv/max-pool
output; ReLU and LRN work in place) is drawn as the region one interior tile needs, rows x columns
in that map's own pixels, in an oblique view so the regions stack into the paper's pyramid. Beside
it, the neighbouring tile to the right: their overlap is what *recompute* computes again (or, for
the group input, reads again), and the part of it that *reuse* keeps on chip, the K - S columns the
next layer's window needs (the paper's BL buffer), is marked inside it. Every number comes from
pipeline/model/costs.py: regions from ``tile_ranges``, kept bytes from ``onchip_buffers``, totals
from ``group_costs``; nothing here computes geometry of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.patches import Patch, Polygon
from matplotlib.transforms import blended_transform_factory

from analysis import style
from pipeline.core.networks import load_network
from pipeline.core.tiles import parse_tile
from pipeline.model.costs import (
    conv_macs_per_pixel,
    group_costs,
    group_input_shape,
    group_shapes,
    onchip_buffers,
    tile_ranges,
)

# oblique view: a region's rows recede up and to the right
DEPTH_SCALE, DEPTH_ANGLE = 0.45, math.radians(35)
TILE_COLOR, NEIGHBOUR_COLOR = "#c6dbef", "#f0f0f0"
REDO_COLOR, KEEP_COLOR = "#fdae6b", "#2171b5"
KB = 1e3


@dataclass(frozen=True)
class Level:
    """One map of the pyramid: what one tile and its right neighbour need of it."""

    name: str
    channels: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    next_cols: tuple[int, int]
    keep_cols: int  # K - S of the layer that reads this map (0 for the group output)
    keep_bytes: int  # what reuse keeps of it on chip for the next tile in x (onchip_buffers)
    redo_macs: int  # MACs recompute spends again on the overlap (0 for the input and pools)
    stride: int  # input pixels per pixel of this map (product of the strides before it)

    @property
    def height(self) -> int:
        return self.rows[1] - self.rows[0]

    @property
    def width(self) -> int:
        return self.cols[1] - self.cols[0]

    @property
    def overlap(self) -> int:
        return max(0, self.cols[1] - self.next_cols[0])


def pyramid_levels(network: str, first: str, last: str, tile: int, bytes_per_value: int = 4,
                   index: int = 1) -> list[Level]:  # fmt: skip
    """The maps of group ``first..last`` as tile (``index``, ``index``) and its right neighbour need
    them, group input first (pipeline/model/costs.py's ``tile_ranges`` and ``onchip_buffers``)."""
    net = load_network(network)
    layers = net.group(first, last)
    in_shape = group_input_shape(net, first)
    shapes = group_shapes(layers, in_shape)
    rows, cols = tile_ranges(layers, in_shape, tile)
    i = min(index, len(rows) - 1)
    j = min(index, len(cols) - 2) if len(cols) > 1 else 0
    nxt = cols[j + 1] if len(cols) > 1 else [(b, b) for _, b in cols[j]]  # one tile: no neighbour
    kept = {b.level: b.reuse_values * bytes_per_value
            for b in onchip_buffers(layers, in_shape, tile, "reuse", ("x",))}  # BL only: the x-neighbour's share
    levels, names = [], ["group input"]
    # a map is named by the layer that made it, plus the in-place layers applied to it
    for li, layer in enumerate(layers):
        if layer.is_spatial:
            names.append(layer.name)
        else:
            names[-1] += f" + {layer.name}"
    spatial_out = [0] + [li + 1 for li, layer in enumerate(layers) if layer.is_spatial]
    strides = [math.prod(layer.stride for layer in layers[:level] if layer.is_spatial) for level in spatial_out]
    for n, level in enumerate(spatial_out):
        last_inplace = spatial_out[n + 1] - 1 if n + 1 < len(spatial_out) else len(layers)
        reader = layers[last_inplace] if last_inplace < len(layers) else None
        keep = max(0, reader.kernel - reader.stride) if reader is not None and reader.is_spatial else 0
        maker = layers[level - 1] if level else None
        ov = max(0, cols[j][level][1] - nxt[level][0])
        redo = 0
        if maker is not None and maker.type == "conv":
            h = rows[i][level][1] - rows[i][level][0]
            redo = h * ov * conv_macs_per_pixel(maker, shapes[level - 1].channels)
        levels.append(Level(names[n], shapes[level].channels, rows[i][level], cols[j][level], nxt[level], keep,
                            kept.get(last_inplace, 0), redo, strides[n]))
    return levels


def _oblique(c: float, r: float) -> tuple[float, float]:
    return c + DEPTH_SCALE * math.cos(DEPTH_ANGLE) * r, DEPTH_SCALE * math.sin(DEPTH_ANGLE) * r


def _region(ax, c0, c1, h, base, **kw) -> None:
    pts = [_oblique(c, r) for c, r in ((c0, 0), (c1, 0), (c1, h), (c0, h))]
    ax.add_patch(Polygon([(x, y + base) for x, y in pts], closed=True, **kw))


def _cols(n: int) -> str:
    return "column" if n == 1 else "columns"


def _kb(b: float) -> str:
    return f"{b / KB:.1f} KB" if b < 100 * KB else f"{b / KB:.0f} KB"


def pick_tile(pyramids: pd.DataFrame) -> tuple[str, str, str, int] | None:
    """(group, first, last, tile) to draw: the first group at the middle of its square tile sizes,
    or the largest that cuts the map into at least three tiles a side (so the tile has neighbours)."""
    p = pyramids.dropna(subset=["tile", "group"]) if not pyramids.empty else pyramids
    if p.empty:
        return None
    group = p["group"].iloc[0]
    g = p[p["group"] == group]
    tiles = sorted({t for t in (parse_tile(str(x).removesuffix(".0")) for x in g["tile"]) if isinstance(t, int)})
    if not tiles:
        return None
    side = pd.to_numeric(g.get("out_w", pd.Series(dtype=float)), errors="coerce").min()
    inner = [t for t in tiles if math.isfinite(side) and -(-side // t) >= 3]  # an interior tile exists
    tile = tiles[len(tiles) // 2]
    if inner and tile not in inner:
        tile = inner[-1]
    return group, g["first_layer"].iloc[0], g["last_layer"].iloc[0], tile


def draw_pyramid(pyramids: pd.DataFrame, out_svg: Path, network: str) -> None:
    """The pyramid of one interior tile of the network's first fusion group, with its right
    neighbour: regions (rows x cols, bytes), their overlap, what reuse keeps and recompute redoes."""
    title = f"The pyramid of one tile (model) - {network}"
    pick = pick_tile(pyramids) if "first_layer" in pyramids else None
    if pick is None:
        style.placeholder(out_svg, title, "no pyramid results from the model")
        return
    group, first, last, tile = pick
    bpv = int(pyramids["bytes_per_value"].dropna().iloc[0]) if "bytes_per_value" in pyramids and \
        pyramids["bytes_per_value"].notna().any() else 4
    levels = pyramid_levels(network, first, last, tile, bpv)
    depth = max(_oblique(0, lv.height * lv.stride)[1] for lv in levels)
    gap = 0.45 * depth + 2
    slot = depth + gap
    n = len(levels)
    geo = []  # per level, in input pixels (one pixel of a map is ``stride`` wide): tile, next tile, depth
    for lv in levels:
        centre = (lv.cols[0] + lv.cols[1]) / 2
        geo.append(((lv.cols[0] - centre) * lv.stride, (lv.cols[1] - centre) * lv.stride,
                    (lv.next_cols[0] - centre) * lv.stride, (lv.next_cols[1] - centre) * lv.stride,
                    lv.height * lv.stride))
    xmin = min(min(g[0], g[2]) for g in geo)
    xmax = max(_oblique(max(g[1], g[3]), g[4])[0] for g in geo)
    data_h = n * slot + 0.4 * gap
    # the pyramid panel is about 3.7 in wide; make the figure as tall as its drawing, plus text
    height = min(11.0, max(3.8, 3.7 * data_h / (xmax - xmin + 4) + 2.2))
    fig, axes = style.figure(n_cols=2, height_in=height, gridspec_kw={"width_ratios": [0.9, 1.1], "wspace": 0.02})
    ax, tx = axes[0, 0], axes[0, 1]
    tx.set_axis_off()
    for k, (lv, (c0, c1, n0, n1, h)) in enumerate(zip(levels, geo)):
        base, s = k * slot, lv.stride
        _region(ax, n0, n1, h, base, facecolor=NEIGHBOUR_COLOR, edgecolor="#737373", ls="--", lw=0.9, zorder=2)
        _region(ax, c0, c1, h, base, facecolor=TILE_COLOR, edgecolor="#08519c", lw=1.1, alpha=0.9, zorder=3)
        if lv.overlap:
            _region(ax, n0, c1, h, base, facecolor=REDO_COLOR, edgecolor="#d94801", lw=0.8, hatch="///",
                    alpha=0.85, zorder=4)
        if lv.keep_cols and lv.overlap:
            _region(ax, c1 - min(lv.keep_cols, lv.overlap) * s, c1, h, base, facecolor=KEEP_COLOR,
                    edgecolor="#08306b", lw=0.8, zorder=5)
        if lv.width <= 32:  # small maps: show their own pixels as a grid on the tile's region
            for c in range(1, lv.width):
                ax.plot(*zip(*[(x, y + base) for x, y in (_oblique(c0 + c * s, 0), _oblique(c0 + c * s, h))]),
                        color="#08519c", lw=0.3, alpha=0.6, zorder=6)
            for r in range(1, lv.height):
                ax.plot(*zip(*[(x, y + base) for x, y in (_oblique(c0, r * s), _oblique(c1, r * s))]),
                        color="#08519c", lw=0.3, alpha=0.6, zorder=6)
    ax.set_xlim(xmin - 2, xmax + 2)
    ax.set_ylim(-gap * 0.4, n * slot)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.75 / height, bottom=0.02)
    to_text = blended_transform_factory(tx.transAxes, ax.transData)
    for k, lv in enumerate(levels):
        region = lv.height * lv.width * lv.channels * bpv
        line1 = (f"{lv.name}: {lv.height} x {lv.width} px x {lv.channels} ch = {_kb(region)}"
                 + (f"  (1 px = {lv.stride} input px)" if lv.stride > 1 else ""))
        if lv.overlap:
            ov_bytes = lv.height * lv.overlap * lv.channels * bpv
            redo = ("reads it again" if k == 0 else f"spends {lv.redo_macs / 1e6:.1f} M MACs on it again"
                    if lv.redo_macs else "pools it again (no MACs)")
            line2 = f"overlap {lv.overlap} {_cols(lv.overlap)} ({_kb(ov_bytes)}): recompute {redo}"
            line3 = (f"reuse keeps K-S = {lv.keep_cols} {_cols(lv.keep_cols)} ({_kb(lv.keep_bytes)}), "
                     "never makes the rest again" if lv.keep_cols
                     else "reuse keeps none (K = S): the next layer reads no column twice")
            text = f"{line1}\n{line2}\n{line3}"
        else:
            text = f"{line1}\n(group output: tiles do not overlap)" if k == n - 1 else f"{line1}\nno overlap"
        y = k * slot + depth * 0.35
        tx.text(0.0, y, text, transform=to_text, va="center", ha="left", fontsize=8.5, linespacing=1.25)
    net = load_network(network)
    layers, in_shape = net.group(first, last), group_input_shape(net, first)
    # at the pyramids' own bytes per value, as the labels above (the model may run at 2 B/value)
    rec = group_costs(layers, in_shape, tile, "recompute", bytes_per_value=bpv)
    reuse = group_costs(layers, in_shape, tile, "reuse", bytes_per_value=bpv)
    handles = [Patch(facecolor=TILE_COLOR, edgecolor="#08519c", label="one tile's region"),
               Patch(facecolor=NEIGHBOUR_COLOR, edgecolor="#737373", ls="--", label="the next tile's region (in x)"),
               Patch(facecolor=REDO_COLOR, edgecolor="#d94801", hatch="///", label="overlap: recompute does it twice"),
               Patch(facecolor=KEEP_COLOR, edgecolor="#08306b", label="K - S columns reuse keeps on chip (BL)")]
    legend = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=2, frameon=False,
                        fontsize=9)
    fig.suptitle(f"{title}: group {group} ({first}..{last}), {tile}x{tile} output tile\n"
                 f"tile (1, 1) and its right neighbour; input at the bottom, every map drawn in input pixels",
                 fontsize=12)
    fig.text(0.5, style.y_below(fig, legend), f"Per image ({rec.tiles_per_image} tiles): recompute performs "
             f"{rec.extra_macs_per_image / 1e6:.0f} M extra MACs ({rec.recompute_factor:.2f}x the useful "
             f"{rec.useful_macs_per_image / 1e6:.0f} M); reuse in x and y performs none and holds "
             f"{_kb(reuse.onchip_reuse_bytes)} of reuse buffers (BL + BT) beside {_kb(reuse.onchip_tile_bytes)} "
             "of tile buffers.", ha="center", va="top", fontsize=9, color="#444444", wrap=True)
    style.save(fig, out_svg)
