"""The schedule and on-chip layout of a generated pyramid kernel (kernels/generate.py), for any chain.

A generated kernel runs one block per column strip of output tiles (``reuse``) or per output tile
(``recompute``). Every map the block holds (the group input, and the output of each conv or max
pool) lives in shared memory as a **ring of rows**, channels-last. The block walks a list of row
operations, demand-driven from the group output backwards: to compute rows [a, b) of a map, the
rows of the map below that they read are computed first, ``chunk`` rows at a time; each map keeps
only the rows its consumer still reads. So a row is computed once per strip (reuse: the line buffer
of the paper, x overlap between strips recomputed) or once per tile (recompute: each tile its own
pyramid, overlaps recomputed on both axes). ReLU and LRN act in place on their producer's rows.

The geometry is the model's: columns come from ``pyramid.plan_axis`` (x is always recomputed), rows
from ``pyramid.need``. The kernel's tables are emitted from this module, and its shared-memory
layout is this module's, byte for byte: the build passes :attr:`ChainLayout.smem_bytes` as
``EXPECT_SMEM_BYTES`` and the kernel's ``static_assert`` fails the compile if the two disagree.

Rings: each holds the largest row span its consumer reads at once (padding rows included: they
hold the pad value, 0 before a conv and -inf before a max pool) joined with the rows just computed;
columns: the largest padded column span over the strips. Pixel stride padded so that a warp's loads
of neighbouring pixels fall on distinct banks (odd for 4-byte values; 8 + a multiple of 8 for 2-byte
values, which also keeps every pixel 16-byte aligned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.networks import Layer, Shape, output_shape
from pipeline.core.precision import BYTES_PER_VALUE
from pipeline.core.strategy import FUSED_STRATEGIES
from pipeline.core.tiles import Tile, tile_label, tile_sides
from pipeline.model.pyramid import AxisPlan, need, plan_axis, tile_ranges

Range = tuple[int, int]
SMEM_ALIGN_BYTES = 16
BAND_PIXELS = 128  # rows per operation: enough to give every thread of a block work (at most MAX_CHUNK_ROWS)
MAX_CHUNK_ROWS = 4
LOAD, STORE = "load", "store"  # the row operations besides computing a held map


class ChainError(ValueError):
    """A chain, tile or strategy the generated kernels cannot run, in one line."""


@dataclass(frozen=True)
class Ring:
    """One held map: map index (0 = group input), its channels, ring rows x cols x pixel stride.

    ``layer``: the spatial layer that computes it (-1 for the group input); ``pointwise``: the
    relu/lrn layers applied in place after it; ``consumer``: the spatial layer that reads it
    (-1 for the group output, which goes to global memory).
    """

    map: int
    channels: int
    rows: int
    cols: int
    pixel_stride: int
    layer: int
    pointwise: tuple[int, ...]
    consumer: int
    chunk_rows: int
    offset_bytes: int = 0

    @property
    def values(self) -> int:
        return self.rows * self.cols * self.pixel_stride


@dataclass(frozen=True)
class Op:
    """One row operation of a block: load input rows, compute a held map's rows, or store output rows."""

    kind: str  # LOAD, "compute", STORE
    ring: int  # index into ChainLayout.rings (compute: the ring written; load: 0; store: the last)
    lo: int
    hi: int


@dataclass(frozen=True)
class ChainLayout:
    """Everything a generated kernel is built from: geometry, rings, the row operations, the bytes."""

    layers: tuple[Layer, ...]
    shapes: tuple[Shape, ...]
    tile: Tile
    strategy: str
    precision: str
    tiles_y: tuple[Range, ...]
    tiles_x: tuple[Range, ...]
    plan_x: AxisPlan
    rings: tuple[Ring, ...]
    col_base: tuple[tuple[int, ...], ...]  # [ring][strip]: the map column of ring column 0
    col_computed: tuple[tuple[Range, ...], ...]  # [ring][strip]: the columns computed (or loaded)
    ops: tuple[tuple[Op, ...], ...]  # per row of blocks: one list (reuse) or one per tile row (recompute)
    smem_bytes: int

    @property
    def pad_values(self) -> tuple[str, ...]:
        """Per ring, what the padding its consumer reads holds: "zero" (a conv), "neg_inf" (a max
        pool) or "none" (the group output)."""
        return tuple("none" if r.consumer < 0 else "neg_inf" if self.layers[r.consumer].type == "maxpool" else "zero"
                     for r in self.rings)  # fmt: skip

    @property
    def chunks(self) -> tuple[int, ...]:
        """Rows per operation, per ring."""
        return tuple(r.chunk_rows for r in self.rings)

    @property
    def blocks_per_image(self) -> int:
        return len(self.tiles_x) * len(self.ops)


def pixel_stride(channels: int, precision: str) -> int:
    """Values between neighbouring pixels of a ring (see the module docstring). TF32 rings are read
    by ldmatrix too, so where a ring has 16 channels or more its pixels are 16-byte aligned as well
    (a multiple of 4 floats, + 4: eight pixels then fall on distinct bank quads)."""
    if precision == "tf32" and channels >= 16:
        return -(-channels // 4) * 4 + 4
    if BYTES_PER_VALUE[precision] == 4:
        return channels if channels % 2 else channels + 1
    return -(-channels // 8) * 8 + 8


def _largest_span(steps: Sequence[tuple[Range, ...]]) -> int:
    """Largest extent, over steps, of the union of a step's non-empty ranges."""
    best = 0
    for ranges in steps:
        parts = [r for r in ranges if r[1] > r[0]]
        if parts:
            best = max(best, max(hi for _, hi in parts) - min(lo for lo, _ in parts))
    return best


def check_chain(layers: Sequence[Layer], precision: str, strategy: str) -> None:
    if strategy not in FUSED_STRATEGIES:
        raise ChainError(f"strategy {strategy!r}: the generated kernels take {', '.join(FUSED_STRATEGIES)}")
    if precision not in BYTES_PER_VALUE:
        raise ChainError(f"precision {precision!r}: the generated kernels take {', '.join(BYTES_PER_VALUE)}")
    if not layers:
        raise ChainError("an empty group")
    if not layers[0].is_spatial:
        raise ChainError(f"group starts with {layers[0].name!r} ({layers[0].type}); it must start with a conv or a max pool")
    for layer in layers:
        if layer.type not in ("conv", "relu", "lrn", "maxpool"):
            raise ChainError(f"layer {layer.name!r} ({layer.type}) cannot be fused; fusable: conv, relu, lrn, maxpool")
        if layer.type == "maxpool" and layer.pad:
            raise ChainError(f"max pool {layer.name!r} has pad {layer.pad}; the generated kernels take pad 0")


def _rings_skeleton(layers: tuple[Layer, ...], shapes: list[Shape]) -> list[dict]:
    """Held maps in order: the group input, then each spatial layer's output, with their pointwise
    followers and their consumer."""
    rings = [{"map": 0, "layer": -1, "pointwise": []}]
    for i, layer in enumerate(layers):
        if layer.is_spatial:
            rings.append({"map": i + 1, "layer": i, "pointwise": []})
        else:
            rings[-1]["pointwise"].append(i)
    for k, ring in enumerate(rings):
        ring["consumer"] = rings[k + 1]["layer"] if k + 1 < len(rings) else -1
        ring["channels"] = shapes[ring["map"]].channels
        ring["height"] = shapes[ring["map"]].height
    return rings


def _row_ops(layers, rings, tiles: Sequence[Range], start: list[int], chunks: list[int]) -> list[Op]:
    """Demand-driven row operations producing output rows ``tiles`` in order (module docstring).
    ``start[k]``: the first row of ring k this block computes."""
    ops: list[Op] = []
    done = list(start)
    last = len(rings) - 1

    def produce(k: int, upto: int) -> None:
        while done[k] < upto:
            hi = min(done[k] + chunks[k], upto)
            if k == 0:
                ops.append(Op(LOAD, 0, done[0], hi))
            else:
                layer = layers[rings[k]["layer"]]
                produce(k - 1, need(layer, (done[k], hi), rings[k - 1]["height"])[1][1])
                ops.append(Op("compute", k, done[k], hi))
            done[k] = hi

    for lo, hi in tiles:
        produce(last, hi)
        ops.append(Op(STORE, last, lo, hi))
    return ops


def chain_layout(layers: Sequence[Layer], in_shape: Shape, tile: Tile, strategy: str, precision: str,
                 smem_limit_bytes: int | None = None) -> ChainLayout:  # fmt: skip
    """The schedule and shared-memory layout of the generated kernel for one group and tile.

    Rows per operation (``chunk``): enough for BAND_PIXELS pixels, at most MAX_CHUNK_ROWS. With
    ``smem_limit_bytes``, a layout that does not fit starts again from one row per operation and
    grows, one row at a time, the operation with the fewest pixels while the rings still fit (small
    operations leave warps idle); ChainError, in one line, when one row each does not fit.
    """
    layout = _layout(layers, in_shape, tile, strategy, precision)
    if smem_limit_bytes is None or layout.smem_bytes <= smem_limit_bytes:
        return layout
    wanted = list(layout.chunks)
    chunks = [1] * (len(wanted) - 1) + [wanted[-1]]
    layout = _layout(layers, in_shape, tile, strategy, precision, chunks)
    check_fits(layout, smem_limit_bytes)
    while True:
        cols = [max(hi - lo for lo, hi in c) for c in layout.col_computed]
        growable = sorted((chunks[k] * cols[k], k) for k in range(1, len(chunks) - 1) if chunks[k] < wanted[k])
        for _, k in growable:
            trial = _layout(layers, in_shape, tile, strategy, precision,
                            chunks[:k] + [chunks[k] + 1] + chunks[k + 1:])  # fmt: skip
            if trial.smem_bytes <= smem_limit_bytes:
                chunks, layout = list(trial.chunks), trial
                break
        else:
            return layout


def _layout(layers: Sequence[Layer], in_shape: Shape, tile: Tile, strategy: str, precision: str,
            chunks: Sequence[int] | None = None) -> ChainLayout:  # fmt: skip
    layers = tuple(layers)
    check_chain(layers, precision, strategy)
    shapes = [in_shape]
    for layer in layers:
        shapes.append(output_shape(layer, shapes[-1]))
    n = len(layers)
    rows, cols = tile_sides(tile)
    if rows < 1 or cols < 1:
        raise ChainError(f"tile {tile_label(tile)}: sides must be >= 1")
    tiles_y = tuple(tile_ranges(shapes[n].height, rows))
    tiles_x = tuple(tile_ranges(shapes[n].width, cols))
    plan_x = plan_axis(layers, [s.width for s in shapes], tiles_x, reuse=False)
    plan_y = plan_axis(layers, [s.height for s in shapes], tiles_y, reuse=False)  # each tile's rows
    skel = _rings_skeleton(layers, shapes)
    last = len(skel) - 1

    # columns: per ring and strip, what is computed and what the consumer reads (padding included)
    col_base, col_computed, ring_cols = [], [], []
    for ring in skel:
        comp = [plan_x.computed[ring["map"]][t] for t in range(len(tiles_x))]
        reads = [plan_x.read_padded[ring["consumer"]][t] if ring["consumer"] >= 0 else comp[t] for t in range(len(tiles_x))]
        col_base.append(tuple(min(r[0], c[0]) for r, c in zip(reads, comp)))
        col_computed.append(tuple(comp))
        ring_cols.append(_largest_span([(r, c) for r, c in zip(reads, comp)]))
    if chunks is None:
        chunks = [max(1, min(MAX_CHUNK_ROWS, BAND_PIXELS // max(1, c))) for c in ring_cols]
        chunks[last] = rows  # the output is stored one tile row at a time
    chunks = list(chunks)

    if strategy == "reuse":
        op_lists = [_row_ops(layers, skel, tiles_y, [0] * len(skel), chunks)]
    else:
        op_lists = [_row_ops(layers, skel, [tiles_y[j]], [plan_y.computed[r["map"]][j][0] for r in skel], chunks)
                    for j in range(len(tiles_y))]  # fmt: skip

    # ring rows: at each consumer op, the rows it reads (padded) joined with the rows computed so far
    ring_rows = [0] * len(skel)
    for ops in op_lists:
        done = [None] * len(skel)
        for op in ops:
            if op.kind in (LOAD, "compute"):
                k = op.ring
                done[k] = (op.lo if done[k] is None else done[k][0], op.hi)
                ring_rows[k] = max(ring_rows[k], op.hi - op.lo)
                if k >= 1:  # this op reads ring k-1
                    layer = layers[skel[k]["layer"]]
                    padded = need(layer, (op.lo, op.hi), skel[k - 1]["height"])[0]
                    span = max(padded[1], done[k - 1][1]) - padded[0]
                    ring_rows[k - 1] = max(ring_rows[k - 1], span)
            else:
                ring_rows[op.ring] = max(ring_rows[op.ring], op.hi - op.lo)

    bpv = BYTES_PER_VALUE[precision]
    align = lambda b: -(-b // SMEM_ALIGN_BYTES) * SMEM_ALIGN_BYTES  # noqa: E731
    rings, offset = [], 0
    for k, ring in enumerate(skel):
        ps = pixel_stride(ring["channels"], precision)
        rings.append(Ring(ring["map"], ring["channels"], ring_rows[k], ring_cols[k], ps, ring["layer"],
                          tuple(ring["pointwise"]), ring["consumer"], chunks[k], offset))  # fmt: skip
        offset += align(ring_rows[k] * ring_cols[k] * ps * bpv)
    return ChainLayout(layers, tuple(shapes), tile, strategy, precision, tiles_y, tiles_x, plan_x, tuple(rings),
                       tuple(col_base), tuple(col_computed), tuple(tuple(o) for o in op_lists),
                       offset)  # fmt: skip


def performed_macs_per_image(layout: ChainLayout) -> int:
    """Conv MACs the schedule performs per image: every compute op's rows x each strip's columns."""
    total = 0
    for ops in layout.ops:
        for op in ops:
            if op.kind != "compute":
                continue
            ring = layout.rings[op.ring]
            layer = layout.layers[ring.layer]
            if layer.type != "conv":
                continue
            cin = layout.shapes[ring.layer].channels
            per_px = ring.channels * (cin // layer.groups) * layer.kernel**2
            cols = sum(hi - lo for lo, hi in layout.col_computed[op.ring])
            total += per_px * (op.hi - op.lo) * cols
    return total


def check_fits(layout: ChainLayout, smem_limit_bytes: int) -> None:
    """ChainError, in one line, when a block's rings exceed the GPU's shared memory per block."""
    if layout.smem_bytes > smem_limit_bytes:
        first, last = layout.layers[0].name, layout.layers[-1].name
        raise ChainError(
            f"{first}..{last} {layout.strategy} tile {tile_label(layout.tile)} {layout.precision}: the rings need "
            f"{layout.smem_bytes} bytes of shared memory per block, more than the {smem_limit_bytes} allowed; "
            f"take a smaller tile or a 16-bit precision"
        )
