"""Analytical model of fused-layer pyramids (Alwani et al., MICRO 2016) as pure functions.

A fusion group is a run of consecutive layers (conv, relu, lrn, maxpool). Its output map is cut
into square tiles of T x T output pixels; each tile needs a *pyramid* of ever larger regions of
the earlier maps. Because neighbouring pyramids overlap, the overlap is either recomputed (each
tile computes its whole pyramid) or reused (kept on chip). This module answers, for a group, a
tile size and a strategy: how many MACs are performed, how many on-chip bytes are needed and how
many DRAM bytes per image move, compared with layer-by-layer execution.

Geometry is separable: every region is a product of a row range and a column range, and each axis
is handled on its own. That makes non-square maps and clipped edge tiles exact, and it lets us
count recompute MACs exactly as (sum over tiles of rows) x (sum over tiles of columns) without
enumerating the 2-D tiles. The conventions (what counts as a MAC, which buffers are on chip,
what layer-by-layer moves) are written down in docs/model.md.
"""

from dataclasses import asdict, dataclass
from typing import Iterable, Literal, Sequence

import pandas as pd

from pipeline.core.strategy import FUSED_STRATEGIES
from pipeline.core.networks import Layer, Network, Shape, output_shape
from pipeline.core.tiles import Tile, tile_sides

Strategy = Literal["reuse", "recompute"]
AXES: tuple[str, ...] = ("x", "y")
FUSABLE_TYPES: tuple[str, ...] = ("conv", "relu", "lrn", "maxpool")
LBL_CONVENTIONS: tuple[str, ...] = ("separate", "merged", "pool_on_load")

Range = tuple[int, int]  # half-open [start, end) along one axis, in data coordinates


# ----------------------------------------------------------------------------------- shapes


def group_input_shape(network: Network, first: str, input_shape: Shape | None = None) -> Shape:
    """Shape of the map that enters layer ``first`` (the group's input)."""
    return network.shapes(input_shape)[network.index(first)]


def group_shapes(layers: Sequence[Layer], in_shape: Shape) -> list[Shape]:
    """The group's input shape followed by every layer's output shape (len(layers) + 1)."""
    _check_fusable(layers)
    shapes = [in_shape]
    for layer in layers:
        shapes.append(output_shape(layer, shapes[-1]))
    return shapes


def _check_fusable(layers: Sequence[Layer]) -> None:
    if not layers:
        raise ValueError("a fusion group needs at least one layer")
    bad = [l.name for l in layers if l.type not in FUSABLE_TYPES]
    if bad:
        raise ValueError(
            f"layers {', '.join(bad)} cannot be fused; allowed types: {', '.join(FUSABLE_TYPES)}"
        )


def validate_tile(
    network: Network, first: str, last: str, tile: Tile, input_shape: Shape | None = None
) -> None:
    """Raise ValueError (one line, naming the allowed range) when ``tile`` cannot tile the group."""
    layers = network.group(first, last)
    out = group_shapes(layers, group_input_shape(network, first, input_shape))[-1]
    _validate_tile_for(out, tile, f"{network.name} {first}..{last}")


def _validate_tile_for(out: Shape, tile: Tile, what: str) -> None:
    if isinstance(tile, tuple):
        ok = len(tile) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in tile)
        if ok and 1 <= tile[0] <= out.height and 1 <= tile[1] <= out.width:
            return
        raise ValueError(
            f"tile {tile!r} cannot tile {what} (output {out.height}x{out.width}); "
            f"allowed: (rows, cols) with rows 1..{out.height} and cols 1..{out.width}"
        )
    limit = min(out.height, out.width)
    if not isinstance(tile, int) or isinstance(tile, bool) or not 1 <= tile <= limit:
        raise ValueError(
            f"tile {tile!r} cannot tile {what} (output {out.height}x{out.width}); "
            f"allowed: integers 1..{limit}"
        )


# ----------------------------------------------------------------------------------- pyramid


@dataclass(frozen=True)
class LayerTile:
    """One layer of a pyramid for an interior tile (nominal sides, before clipping).

    ``in_tile`` is the side of the input region the layer reads for one output tile of
    ``out_tile``; ``in_step`` is the distance between neighbouring tiles' input regions;
    ``in_overlap = in_tile - in_step`` is what neighbours share (recomputed or reused).
    ``in_tile_hw`` is the largest input region any real tile reads once clipped to the map
    (border tiles read padding, not data, and edge tiles are clipped).
    """

    layer: str
    type: str
    out_tile: int
    out_step: int
    in_tile: int
    in_step: int
    in_overlap: int
    in_tile_hw: tuple[int, int]


def _back(layer: Layer, rng: Range, in_size: int) -> Range:
    """Input data range a layer reads to produce output range ``rng`` (clipped: padding is not data)."""
    a, b = rng
    if not layer.is_spatial:
        return a, b
    lo = a * layer.stride - layer.pad
    hi = (b - 1) * layer.stride - layer.pad + layer.kernel
    return max(0, lo), min(in_size, hi)


SPLITS: tuple[str, ...] = ("clipped", "balanced")


def output_tiles(n_out: int, tile: int, split: str = "clipped") -> list[Range]:
    """How an output side of ``n_out`` pixels is cut into tiles of side ``tile``.

    clipped:  tiles of ``tile`` pixels, the last one clipped (13, T=4 -> 4,4,4,1; the paper).
    balanced: the same number of tiles, sizes as even as possible (13, T=4 -> 4,3,3,3), larger
              first, as the GPU kernels cut the map (kernels/fused.cu, tile_start/tile_size).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if split == "clipped":
        return [(s, min(s + tile, n_out)) for s in range(0, n_out, tile)]
    count = -(-n_out // tile)
    base, extra = divmod(n_out, count)
    starts = [i * base + min(i, extra) for i in range(count + 1)]
    return list(zip(starts[:-1], starts[1:]))


def axis_ranges(
    layers: Sequence[Layer], sizes: Sequence[int], tile: int, split: str = "clipped"
) -> list[list[Range]]:
    """Per output tile along one axis, the data range at every level (level 0 = group input).

    ``sizes`` are the extents along this axis of the group input and of every layer output.
    Returns ``ranges[tile_index][level]`` with ``len(layers) + 1`` levels.
    """
    n_out = sizes[-1]
    result = []
    for out_range in output_tiles(n_out, tile, split):
        levels: list[Range] = [out_range]
        for i in range(len(layers) - 1, -1, -1):
            levels.append(_back(layers[i], levels[-1], sizes[i]))
        result.append(levels[::-1])
    return result


def tile_ranges(
    layers: Sequence[Layer], in_shape: Shape, tile: Tile, split: str = "clipped"
) -> tuple[list[list[Range]], list[list[Range]]]:
    """(rows, cols): per tile row / tile column, the data range at every level of the pyramid."""
    shapes = group_shapes(layers, in_shape)
    _validate_tile_for(shapes[-1], tile, f"{layers[0].name}..{layers[-1].name}")
    tile_h, tile_w = tile_sides(tile)
    rows = axis_ranges(layers, [s.height for s in shapes], tile_h, split)
    cols = axis_ranges(layers, [s.width for s in shapes], tile_w, split)
    return rows, cols


def pyramid(layers: Sequence[Layer], in_shape: Shape, tile: int) -> tuple[LayerTile, ...]:
    """The pyramid of a T x T output tile, one entry per layer in network order.

    Going backwards, a conv/maxpool with kernel K and stride S turns an output side t into an
    input side (t-1)*S+K and an output step s into an input step s*S; relu/lrn pass both through.
    """
    rows, cols = tile_ranges(layers, in_shape, tile)
    side, step = tile, tile
    out: list[LayerTile] = []
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.is_spatial:
            in_side, in_step = (side - 1) * layer.stride + layer.kernel, step * layer.stride
        else:
            in_side, in_step = side, step
        hw = (_max_len(rows, i), _max_len(cols, i))
        out.append(LayerTile(layer.name, layer.type, side, step, in_side, in_step, in_side - in_step, hw))
        side, step = in_side, in_step
    return tuple(out[::-1])


def _max_len(ranges: list[list[Range]], level: int) -> int:
    return max(r[level][1] - r[level][0] for r in ranges)


def _sum_len(ranges: list[list[Range]], level: int) -> int:
    return sum(r[level][1] - r[level][0] for r in ranges)


def _span_len(ranges: list[list[Range]], level: int) -> int:
    """Bounding box of the tiles' ranges: what is computed once when the axis is reused.

    A contiguous span, like a layer-by-layer pass or a row buffer: when a kernel is smaller than
    its stride, positions inside the span that no output reads are still computed (as
    pipeline/model/pyramid.py does). Ranges are clipped to the map, so the span never exceeds it.
    """
    return max(r[level][1] for r in ranges) - min(r[level][0] for r in ranges)


# ----------------------------------------------------------------------------------- costs


def conv_macs_per_pixel(layer: Layer, in_channels: int) -> int:
    """MACs of one conv output pixel across all output channels (padding taps included)."""
    return layer.out_channels * (in_channels // layer.groups) * layer.kernel * layer.kernel


def weight_values(layer: Layer, in_channels: int) -> int:
    """Weights plus biases of a conv layer (zero for every other type)."""
    if layer.type != "conv":
        return 0
    return layer.out_channels * (in_channels // layer.groups) * layer.kernel**2 + layer.out_channels


def lbl_kernels(layers: Sequence[Layer], convention: str) -> list[tuple[int, int]]:
    """Split a group into the kernels of a layer-by-layer execution, as (first, last) indices.

    separate:     every layer is its own pass (relu, lrn, pool each read and write a map).
    merged:       relu/lrn/pool run inside the preceding conv's pass (the FPGA-style unit).
    pool_on_load: relu/lrn run in the preceding conv's pass; a max pool runs while the *next*
                  conv loads its input, so the pre-pool map is what goes to DRAM. A pool with
                  no conv after it in the group stays with the preceding pass.
    """
    if convention not in LBL_CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; allowed: {', '.join(LBL_CONVENTIONS)}")
    starts = []
    for i, layer in enumerate(layers):
        prev = layers[i - 1] if i else None
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if i == 0 or convention == "separate":
            starts.append(i)
        elif convention == "merged":
            if layer.type == "conv":
                starts.append(i)
        elif layer.type == "conv" and prev.type != "maxpool":
            starts.append(i)
        elif layer.type == "maxpool" and nxt is not None and nxt.type == "conv":
            starts.append(i)
    ends = [s - 1 for s in starts[1:]] + [len(layers) - 1]
    return list(zip(starts, ends))


def lbl_dram_values(layers: Sequence[Layer], in_shape: Shape, convention: str) -> int:
    """Feature-map values one image moves layer by layer: each pass reads its input, writes its output."""
    shapes = group_shapes(layers, in_shape)
    return sum(shapes[a].values + shapes[b + 1].values for a, b in lbl_kernels(layers, convention))


@dataclass(frozen=True)
class GroupCosts:
    """Model outputs for one (group, tile, strategy, reuse_axes); sizes per image unless noted."""

    tile: Tile
    strategy: str
    reuse_axes: str
    tiles_per_image: int
    out_h: int
    out_w: int
    useful_macs_per_image: int
    lbl_macs_per_image: int
    performed_macs_per_image: int
    extra_macs_per_image: int
    recompute_factor: float
    onchip_bytes: int
    onchip_tile_bytes: int
    onchip_reuse_bytes: int
    dram_bytes_per_image_fused: int
    input_read_bytes_per_image: int
    dram_bytes_per_image_lbl: int
    dram_bytes_per_image_lbl_merged: int
    dram_bytes_per_image_lbl_pool_on_load: int
    weight_bytes: int


def _normalize_axes(strategy: str, reuse_axes: Iterable[str]) -> tuple[str, ...]:
    if strategy not in FUSED_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; allowed: {', '.join(FUSED_STRATEGIES)}")
    if strategy == "recompute":
        return ()
    axes = tuple(sorted(set(reuse_axes)))
    if not axes or not set(axes) <= set(AXES):
        raise ValueError(f"reuse_axes {tuple(reuse_axes)!r}: give a non-empty subset of ('x', 'y')")
    return axes


def group_costs(
    layers: Sequence[Layer],
    in_shape: Shape,
    tile: Tile,
    strategy: str,
    reuse_axes: Iterable[str] = ("x", "y"),
    bytes_per_value: int = 4,
    split: str = "clipped",
) -> GroupCosts:
    """MACs, on-chip bytes and DRAM bytes of one fused group executed tile by tile.

    Along a reused axis every value is computed once (the union of the tiles' ranges); along a
    recomputed axis each tile computes its whole clipped range, so the count is the sum over
    tiles. Both are exact, edge tiles included. ``split`` says how the output map is cut into
    tiles (see ``output_tiles``). See docs/model.md for the buffer conventions.
    """
    axes = _normalize_axes(strategy, reuse_axes)
    shapes = group_shapes(layers, in_shape)
    rows, cols = tile_ranges(layers, in_shape, tile, split)
    reuse_y, reuse_x = "y" in axes, "x" in axes
    n = len(layers)

    def span(ranges: list[list[Range]], level: int, reused: bool) -> int:
        return _span_len(ranges, level) if reused else _sum_len(ranges, level)

    useful = performed = lbl_macs = 0
    for i, layer in enumerate(layers):
        if layer.type != "conv":
            continue
        per_px = conv_macs_per_pixel(layer, shapes[i].channels)
        out = shapes[i + 1]
        lbl_macs += per_px * out.height * out.width
        useful += per_px * _span_len(rows, i + 1) * _span_len(cols, i + 1)
        performed += per_px * span(rows, i + 1, reuse_y) * span(cols, i + 1, reuse_x)

    buffers = onchip_buffers(layers, in_shape, tile, strategy, axes)
    tile_vals = sum(b.tile_values for b in buffers)
    reuse_vals = sum(b.reuse_values for b in buffers)
    bpv = bytes_per_value
    in_read = span(rows, 0, reuse_y) * span(cols, 0, reuse_x) * shapes[0].channels
    weights = sum(weight_values(l, shapes[i].channels) for i, l in enumerate(layers))
    out_shape = shapes[-1]
    return GroupCosts(
        tile=tile,
        strategy=strategy,
        reuse_axes=",".join(axes),
        tiles_per_image=len(rows) * len(cols),
        out_h=out_shape.height,
        out_w=out_shape.width,
        useful_macs_per_image=useful,
        lbl_macs_per_image=lbl_macs,
        performed_macs_per_image=performed,
        extra_macs_per_image=performed - useful,
        recompute_factor=performed / useful if useful else 1.0,
        onchip_bytes=(tile_vals + reuse_vals) * bpv,
        onchip_tile_bytes=tile_vals * bpv,
        onchip_reuse_bytes=reuse_vals * bpv,
        dram_bytes_per_image_fused=(shapes[0].values + shapes[n].values) * bpv,
        input_read_bytes_per_image=in_read * bpv,
        dram_bytes_per_image_lbl=lbl_dram_values(layers, in_shape, "separate") * bpv,
        dram_bytes_per_image_lbl_merged=lbl_dram_values(layers, in_shape, "merged") * bpv,
        dram_bytes_per_image_lbl_pool_on_load=lbl_dram_values(layers, in_shape, "pool_on_load") * bpv,
        weight_bytes=weights * bpv,
    )


@dataclass(frozen=True)
class Buffer:
    """One on-chip buffer of a tile engine, in values: a tile buffer and its reuse buffers.

    ``level`` is the map the buffer holds: the input of ``layer`` (or the group output when
    ``layer`` is "output"); ``is_group_input`` marks the map that comes from DRAM.
    """

    layer: str
    level: int
    is_group_input: bool
    tile_values: int
    reuse_values: int


def onchip_buffers(
    layers: Sequence[Layer],
    in_shape: Shape,
    tile: Tile,
    strategy: str,
    reuse_axes: Iterable[str] = ("x", "y"),
) -> list[Buffer]:
    """The buffers of one tile engine, one per conv/maxpool input plus the group's output tile.

    Tile buffers: the input tile of every conv/maxpool plus the group's output tile, all
    instantiated at once (relu/lrn work in place). Along a recomputed axis a buffer spans the
    largest clipped pyramid range; along a reused axis only the steady-state window
    step*S + (K - S), the older K - S lines coming from the reuse buffers. Reuse buffers
    (the paper's BL/BT) keep K - S lines per conv/maxpool input: BT across the whole map width
    when x is reused too (the paper), else across the strip's tile width (a GPU block walking
    a column strip); BL spans the tile buffer's height.
    """
    axes = _normalize_axes(strategy, reuse_axes)
    reuse_y, reuse_x = "y" in axes, "x" in axes
    shapes = group_shapes(layers, in_shape)
    rows, cols = tile_ranges(layers, in_shape, tile)
    tile_h, tile_w = tile_sides(tile)
    step_y, step_x = tile_h, tile_w
    steps = [(0, 0)] * len(layers)
    for i in range(len(layers) - 1, -1, -1):  # output step (rows, cols) of every layer
        steps[i] = (step_y, step_x)
        if layers[i].is_spatial:
            step_y, step_x = step_y * layers[i].stride, step_x * layers[i].stride
    buffers = []
    for i, layer in enumerate(layers):
        if not layer.is_spatial:
            continue
        c, h_map, w_map = shapes[i].channels, shapes[i].height, shapes[i].width
        keep = max(0, layer.kernel - layer.stride)
        window_y, window_x = (s * layer.stride + keep for s in steps[i])
        h = min(h_map, window_y) if reuse_y else _max_len(rows, i)
        w = min(w_map, window_x) if reuse_x else _max_len(cols, i)
        reuse = 0
        if reuse_y:
            reuse += c * min(keep, h_map) * (w_map if reuse_x else w)
        if reuse_x:
            reuse += c * min(keep, w_map) * h
        buffers.append(Buffer(layer.name, i, i == 0, c * h * w, reuse))
    out = shapes[-1]
    out_vals = out.channels * min(tile_h, out.height) * min(tile_w, out.width)
    buffers.append(Buffer("output", len(layers), False, out_vals, 0))
    return buffers


# ----------------------------------------------------------------------------------- table


def model_table(
    network: Network,
    groups: dict[str, tuple[str, str]],
    tile_sizes: Sequence[int],
    bytes_per_value: int = 4,
    input_shape: Shape | None = None,
    reuse_axes_options: Sequence[Sequence[str]] = (("x", "y"), ("y",)),
) -> pd.DataFrame:
    """Tidy table: one row per (group, tile, strategy, reuse_axes); units are in the column names.

    Recompute rows have reuse_axes ""; reuse rows appear once per entry of
    ``reuse_axes_options`` ("x,y" is the paper's scheme, "y" the GPU column-strip scheme).
    A tile size that cannot tile a group raises ValueError (see ``validate_tile``).
    """
    rows = []
    for gname, (first, last) in groups.items():
        layers = network.group(first, last)
        in_shape = group_input_shape(network, first, input_shape)
        for tile in tile_sizes:
            validate_tile(network, first, last, tile, input_shape)
            variants = [("recompute", ())] + [("reuse", tuple(a)) for a in reuse_axes_options]
            for strategy, axes in variants:
                costs = group_costs(layers, in_shape, tile, strategy, axes, bytes_per_value)
                rows.append(
                    {"network": network.name, "group": gname, "first_layer": first,
                     "last_layer": last, "bytes_per_value": bytes_per_value, **asdict(costs)}
                )
    return pd.DataFrame(rows)


def write_model_table(
    network_name: str, groups: dict[str, Sequence[str]], tile_sizes: Sequence[int],
    out_csv: str, bytes_per_value: int = 4,
) -> pd.DataFrame:
    """Load a network by name, build its model table and write it as CSV (the Snakemake entry)."""
    from pathlib import Path

    from pipeline.core.networks import load_network

    table = model_table(
        load_network(network_name), {g: (fl[0], fl[1]) for g, fl in groups.items()},
        list(tile_sizes), bytes_per_value,
    )
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table
