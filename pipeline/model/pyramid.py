"""Tile-by-tile pyramid executor: a fused group computed on the CPU exactly as a fused kernel would.

This proves the tiling (regions, halos, padding at borders, clipped edge tiles, what the reuse
buffers must hold) before any CUDA exists, and counts the MACs and buffer sizes that the
analytical model (``pipeline/model/costs.py``) predicts. Every layer step calls the float64 reference
layer functions (``pipeline/core/reference.py``) on a cropped input region that is padded by hand
(zeros for conv, -inf for max pool, only where the region leaves the map), with ``pad=0``.

Geometry is separable: the rows a tile needs depend only on the tile's rows, and likewise for
columns, so each axis is planned on its own (``AxisPlan``) and a tile's region at every map is the
product of a row range and a column range. Ranges are half-open ``(lo, hi)`` in map coordinates.

Maps are numbered 0..n for a group of n layers: map 0 is the group input, map i+1 the output of
layer i, map n the group output.

Strategies (``run_pyramid``):

- ``recompute``: every tile computes its whole pyramid from the input; at map i it computes the
  bounding box of what the tile needs (``need`` of the box of map i+1, clipped to the map).
- ``reuse``: along each axis in ``reuse_axes`` the tiles are walked in order and every map keeps
  what earlier tiles computed; step j computes only the band ``[E_i(j-1), E_i(j))`` beyond the
  previous end, so along that axis no value is computed twice. With ``("x", "y")`` the tiles go in
  raster order (the paper's left buffer + row buffers across the map width); with ``("y",)`` each
  column strip of tiles is walked top to bottom and the overlaps between strips are recomputed.

"Useful" work (``useful_macs``): the region of each map that the whole output depends on, as a
bounding box (the pyramid of one tile covering the whole output); it excludes rows/columns cut by
floor rounding. ``reuse`` on both axes computes exactly this box, each value once. When every
window is contiguous (kernel >= stride, pad < kernel, true of AlexNet and VGG) the box is exactly
the set of values the output depends on. Otherwise (e.g. a 1x1 conv with stride 2) the box also
holds rows no output reads; a layer-by-layer pass and a contiguous buffer compute them too, but
small recompute tiles can skip those between tiles and so do fewer MACs than the box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core import reference
from pipeline.core.strategy import FUSED_STRATEGIES
from pipeline.core.networks import Layer, Shape, output_shape

Range = tuple[int, int]  # half-open [lo, hi) along one axis of one map
AXES = ("x", "y")
FUSABLE_TYPES = ("conv", "relu", "lrn", "maxpool")


@dataclass(frozen=True)
class PyramidResult:
    """What one run of the executor produced and what it cost.

    output: the full output map (C, H, W) of the group's last layer.
    performed_macs: MACs actually computed (conv layers only), summed over tiles as computed.
    macs_by_layer: the same per layer of the group (0 for relu/lrn/maxpool).
    tiles: number of output tiles.
    peak_buffer_values: the largest number of values held on chip at one time, by this
        convention: the moment counted is the end of each tile, when its whole pyramid has been
        computed and before anything is evicted; a value is held from when it is computed (or, for
        the group input, loaded) until the last tile that reads it is done. Charged: the maps
        that feed a conv or max pool (tile region + reuse buffers) and the group's output tile;
        relu and LRN act in place on their producer's buffer, so the maps they feed are not
        charged. This is ``model.onchip_buffers``' convention, and for recompute the two agree
        exactly; for reuse the executor's number is the live set of this schedule (the first
        tile of a strip holds its whole pyramid), not the model's steady-state buffer sizes.
        Multiply by bytes per value for on-chip bytes.
    peak_values_by_map: each map's own peak of held values (maps 0..n, uncharged maps included,
        map n = the output tile), each taken at its own worst tile.
    input_values_loaded: values of the group input read from DRAM (reuse reads each one once).
    """

    output: np.ndarray
    performed_macs: int
    macs_by_layer: tuple[int, ...]
    tiles: int
    peak_buffer_values: int
    peak_values_by_map: tuple[int, ...]
    input_values_loaded: int


@dataclass(frozen=True)
class AxisPlan:
    """Per-axis schedule: for map i and tile step j, what is computed and what layer i reads.

    computed[i][j]: range of map i computed (map 0: loaded) at step j.
    read[i][j] (i < n): range of map i that layer i reads at step j, clipped to the map.
    read_padded[i][j] (i < n): the same range before clipping; the part outside the map is padding.
    """

    computed: tuple[tuple[Range, ...], ...]
    read: tuple[tuple[Range, ...], ...]
    read_padded: tuple[tuple[Range, ...], ...]


def tile_ranges(extent: int, tile: int) -> list[Range]:
    """Split ``extent`` output pixels into tiles of ``tile``; the last one is clipped."""
    if tile < 1:
        raise ValueError(f"tile size must be >= 1, got {tile}")
    return [(lo, min(lo + tile, extent)) for lo in range(0, extent, tile)]


def _window(layer: Layer) -> tuple[int, int, int]:
    """(kernel, stride, pad) along one axis; relu and LRN are 1x1/1 in space."""
    return (layer.kernel, layer.stride, layer.pad) if layer.is_spatial else (1, 1, 0)


def _is_empty(r: Range) -> bool:
    return r[1] <= r[0]


def need(layer: Layer, out: Range, in_extent: int) -> tuple[Range, Range]:
    """Input range that output range ``out`` of ``layer`` reads: (padded, clipped to the map).

    Output o reads padded-input positions [o*s - pad, o*s - pad + k); everything outside
    [0, in_extent) is padding. An empty output range reads nothing.
    """
    if _is_empty(out):
        return (0, 0), (0, 0)
    k, s, p = _window(layer)
    padded = (out[0] * s - p, (out[1] - 1) * s - p + k)
    lo = min(max(padded[0], 0), in_extent)
    return padded, (lo, max(min(padded[1], in_extent), lo))


def plan_axis(layers: Sequence[Layer], extents: Sequence[int], tiles: Sequence[Range], reuse: bool) -> AxisPlan:
    """Plan one axis: ``extents`` are the n+1 map sizes along it, ``tiles`` the output tiles.

    Without reuse, step j computes at map i the box that tile j needs (backwards from the tile).
    With reuse, E_i(j) is the end of the region of map i that tiles 0..j need; step j computes
    ``[E_i(j-1), E_i(j))`` and reads only what that band of map i+1 needs, so the overlap rows of
    map i+1 are kept, not recomputed, and map i is not re-read for them.
    """
    n = len(layers)
    steps = len(tiles)
    computed: list[list[Range]] = [[(0, 0)] * steps for _ in range(n + 1)]
    computed[n] = list(tiles)
    if reuse:
        box = [(0, 0)] * (n + 1)
        box[n] = (0, extents[n])
        for i in range(n - 1, -1, -1):
            box[i] = need(layers[i], box[i + 1], extents[i])[1]
        ends = [[0] * steps for _ in range(n + 1)]
        ends[n] = [hi for _, hi in tiles]
        for i in range(n - 1, -1, -1):
            for j in range(steps):
                prefix = (box[i + 1][0], ends[i + 1][j])
                ends[i][j] = box[i][0] if _is_empty(prefix) else need(layers[i], prefix, extents[i])[1][1]
            for j in range(steps):
                computed[i][j] = (ends[i][j - 1] if j else box[i][0], ends[i][j])
    else:
        for i in range(n - 1, -1, -1):
            for j in range(steps):
                computed[i][j] = need(layers[i], computed[i + 1][j], extents[i])[1]
    read = [[need(layers[i], computed[i + 1][j], extents[i]) for j in range(steps)] for i in range(n)]
    return AxisPlan(
        computed=tuple(tuple(c) for c in computed),
        read=tuple(tuple(r[1] for r in row) for row in read),
        read_padded=tuple(tuple(r[0] for r in row) for row in read),
    )


def _last_read_step(plan: AxisPlan, i: int, extent: int) -> np.ndarray:
    """For each position of map i along the axis: the last step whose layer-i read covers it, or -1."""
    last = np.full(extent, -1, dtype=np.int64)
    for j, (lo, hi) in enumerate(plan.read[i]):
        last[lo:hi] = j
    return last


def _run_layer_on_region(layer: Layer, region: np.ndarray, params: reference.Params) -> np.ndarray:
    """A layer on an already padded (C, h, w) region: the reference function with pad=0."""
    if layer.type == "conv":
        w, b = params[layer.name]
        return reference.conv2d(region, w, b, layer.stride, 0, layer.groups)
    if layer.type == "maxpool":
        return reference.maxpool(region, layer.kernel, layer.stride, 0)
    return reference.apply_layer(layer, region, params)


def _schedule(n_ty: int, n_tx: int, axes: frozenset[str]) -> list[tuple[object, int, int, int]]:
    """(scope, step within scope, ty, tx) in visiting order; buffers live for one scope."""
    if axes == {"x", "y"}:
        return [(0, ty * n_tx + tx, ty, tx) for ty in range(n_ty) for tx in range(n_tx)]
    if axes == {"y"}:
        return [(tx, ty, ty, tx) for tx in range(n_tx) for ty in range(n_ty)]
    if axes == {"x"}:
        return [(ty, tx, ty, tx) for ty in range(n_ty) for tx in range(n_tx)]
    return [((ty, tx), 0, ty, tx) for ty in range(n_ty) for tx in range(n_tx)]


def _last_step_map(ly: np.ndarray, lx: np.ndarray, n_tx: int, axes: frozenset[str]) -> np.ndarray:
    """Step (within its scope) after which a held position of a map is evicted; -1: never read."""
    if axes == {"x", "y"}:  # tiles reading (r, c) form a product set: the last in raster order
        return np.where((ly[:, None] >= 0) & (lx[None, :] >= 0), ly[:, None] * n_tx + lx[None, :], -1)
    if axes == {"y"}:
        return np.broadcast_to(ly[:, None], (ly.size, lx.size))
    if axes == {"x"}:
        return np.broadcast_to(lx[None, :], (ly.size, lx.size))
    return np.zeros((ly.size, lx.size), dtype=np.int64)


def _validate(layers: Sequence[Layer], x: np.ndarray, tile: int, strategy: str, reuse_axes) -> frozenset[str]:
    if not layers:
        raise ValueError("run_pyramid: empty fusion group")
    bad = [l.name for l in layers if l.type not in FUSABLE_TYPES]
    if bad:
        raise ValueError(f"run_pyramid: layers {bad} cannot be tiled; fusable types: {FUSABLE_TYPES}")
    if x.ndim != 3:
        raise ValueError(f"run_pyramid: x must be one image (C, H, W), got shape {x.shape}")
    if not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"run_pyramid: tile must be an integer >= 1, got {tile!r}")
    if strategy not in FUSED_STRATEGIES:
        raise ValueError(f"run_pyramid: strategy {strategy!r}; expected one of {FUSED_STRATEGIES}")
    axes = frozenset(reuse_axes)
    if strategy == "reuse" and (not axes or not axes <= set(AXES)):
        raise ValueError(f"run_pyramid: reuse_axes must be a non-empty subset of {AXES}, got {reuse_axes!r}")
    return axes if strategy == "reuse" else frozenset()


def run_pyramid(
    layers: Sequence[Layer],
    x: np.ndarray,
    params: reference.Params,
    tile: int,
    strategy: str,
    reuse_axes: Sequence[str] = ("x", "y"),
) -> PyramidResult:
    """Compute a fused group on one image (C, H, W) tile by tile; see the module docstring.

    ``tile`` is the side T of a square output tile of the last layer (edge tiles clipped; a T
    larger than the map gives one tile along that axis). The executor checks itself as it goes:
    every value a layer reads must be held (evicted values are overwritten with NaN, so a buffer
    that is too small shows up as a wrong output), no value is computed twice while held, and
    every output value is written exactly once.
    """
    x = np.asarray(x, dtype=np.float64)
    axes = _validate(layers, x, tile, strategy, reuse_axes)
    n = len(layers)
    shapes = [Shape(*x.shape)]
    for layer in layers:
        shapes.append(output_shape(layer, shapes[-1]))
    tiles_y = tile_ranges(shapes[n].height, tile)
    tiles_x = tile_ranges(shapes[n].width, tile)
    py = plan_axis(layers, [s.height for s in shapes], tiles_y, "y" in axes)
    px = plan_axis(layers, [s.width for s in shapes], tiles_x, "x" in axes)

    stores = [np.full((s.channels, s.height, s.width), np.nan) for s in shapes[:n]]
    held = [np.zeros((s.height, s.width), dtype=bool) for s in shapes[:n]]
    last_step = [
        _last_step_map(_last_read_step(py, i, shapes[i].height), _last_read_step(px, i, shapes[i].width),
                       len(tiles_x), axes)
        for i in range(n)
    ]
    charged = [layers[i].is_spatial for i in range(n)] + [True]  # maps 0..n; n: the output tile
    output = np.full((shapes[n].channels, shapes[n].height, shapes[n].width), np.nan)
    written = np.zeros((shapes[n].height, shapes[n].width), dtype=bool)
    macs_by_layer = [0] * n
    peak_by_map = [0] * (n + 1)
    peak_total = 0
    loaded = 0
    scope_now: object = None

    for scope, step, ty, tx in _schedule(len(tiles_y), len(tiles_x), axes):
        if scope != scope_now:
            assert not any(h.any() for h in held), "buffers must be empty when a new scope starts"
            scope_now = scope
        (r0, r1), (c0, c1) = py.computed[0][ty], px.computed[0][tx]
        assert not held[0][r0:r1, c0:c1].any(), "input value loaded twice while held"
        stores[0][:, r0:r1, c0:c1] = x[:, r0:r1, c0:c1]
        held[0][r0:r1, c0:c1] = True
        loaded += shapes[0].channels * max(r1 - r0, 0) * max(c1 - c0, 0)

        for i, layer in enumerate(layers):
            (o_r0, o_r1), (o_c0, o_c1) = py.computed[i + 1][ty], px.computed[i + 1][tx]
            if o_r1 <= o_r0 or o_c1 <= o_c0:
                continue
            (rr0, rr1), (rc0, rc1) = py.read[i][ty], px.read[i][tx]
            (pr0, pr1), (pc0, pc1) = py.read_padded[i][ty], px.read_padded[i][tx]
            assert held[i][rr0:rr1, rc0:rc1].all(), f"layer {layer.name} reads values not held"
            pad_value = -np.inf if layer.type == "maxpool" else 0.0
            region = np.full((shapes[i].channels, pr1 - pr0, pc1 - pc0), pad_value)
            region[:, rr0 - pr0 : rr1 - pr0, rc0 - pc0 : rc1 - pc0] = stores[i][:, rr0:rr1, rc0:rc1]
            out = _run_layer_on_region(layer, region, params)
            assert out.shape == (shapes[i + 1].channels, o_r1 - o_r0, o_c1 - o_c0), (layer.name, out.shape)
            if layer.type == "conv":  # counted on what was computed: out values x (C/groups)*k*k
                macs_by_layer[i] += out.size * (shapes[i].channels // layer.groups) * layer.kernel**2
            if i + 1 == n:
                assert not written[o_r0:o_r1, o_c0:o_c1].any(), "output value written twice"
                output[:, o_r0:o_r1, o_c0:o_c1] = out
                written[o_r0:o_r1, o_c0:o_c1] = True
            else:
                assert not held[i + 1][o_r0:o_r1, o_c0:o_c1].any(), f"{layer.name}: value computed twice while held"
                stores[i + 1][:, o_r0:o_r1, o_c0:o_c1] = out
                held[i + 1][o_r0:o_r1, o_c0:o_c1] = True

        values = [shapes[i].channels * int(held[i].sum()) for i in range(n)]
        (t_r0, t_r1), (t_c0, t_c1) = tiles_y[ty], tiles_x[tx]
        values.append(shapes[n].channels * (t_r1 - t_r0) * (t_c1 - t_c0))
        peak_by_map = [max(p, v) for p, v in zip(peak_by_map, values)]
        peak_total = max(peak_total, sum(v for v, c in zip(values, charged) if c))

        for i in range(n):
            evict = held[i] & (last_step[i] <= step)
            stores[i][:, evict] = np.nan
            held[i] &= ~evict

    assert written.all(), "some output values were never computed"
    return PyramidResult(
        output=output,
        performed_macs=sum(macs_by_layer),
        macs_by_layer=tuple(macs_by_layer),
        tiles=len(tiles_y) * len(tiles_x),
        peak_buffer_values=peak_total,
        peak_values_by_map=tuple(peak_by_map),
        input_values_loaded=loaded,
    )


def useful_macs(layers: Sequence[Layer], in_shape: Shape) -> int:
    """MACs of the useful region (module docstring): one tile covering the whole output.

    Equals ``count_macs`` of the group minus the conv outputs that floor rounding leaves unread.
    """
    shapes = [in_shape]
    for layer in layers:
        shapes.append(output_shape(layer, shapes[-1]))
    n = len(layers)
    rows = plan_axis(layers, [s.height for s in shapes], [(0, shapes[n].height)], reuse=False)
    cols = plan_axis(layers, [s.width for s in shapes], [(0, shapes[n].width)], reuse=False)
    total = 0
    for i, layer in enumerate(layers):
        (r0, r1), (c0, c1) = rows.computed[i + 1][0], cols.computed[i + 1][0]
        out = Shape(shapes[i + 1].channels, r1 - r0, c1 - c0)
        if layer.type == "conv":
            total += out.values * (shapes[i].channels // layer.groups) * layer.kernel * layer.kernel
    return total
