"""Design-space exploration of fusion granularity (Alwani et al., MICRO 2016, Section 5.1 style).

The paper cuts the first layers of a network into consecutive fused groups and plots, for every
cut, the on-chip storage against the off-chip feature-map transfer. We do the same from the
analytical model: the unit of cutting is a *fusable unit* (the paper's convention): a conv layer
together with the relu/lrn/maxpool layers that follow it up to the next conv. N units can be cut
into consecutive groups in 2^(N-1) ways.

Scores per partition (per image):
- on-chip bytes: the SUM over groups of each group's on-chip bytes, because the paper's
  accelerator instantiates every group's hardware (buffers) side by side;
- DRAM bytes: the sum over groups of the group's input map read once plus its output map written
  once (feature maps only; weights are per batch and identical for every partition).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import pandas as pd

from pipeline.model.costs import group_costs, group_input_shape, group_shapes
from pipeline.core.networks import Layer, Network, Shape

TilePolicy = int | Callable[[tuple[Layer, ...], Shape], int]


def fusable_units(network: Network) -> list[tuple[str, str]]:
    """(first, last) layer names of every unit: a conv plus the relu/lrn/maxpool after it.

    Stops at the first fc layer (fc layers are not tiled spatially). Layers before the first conv
    (none in the shipped networks) are not part of any unit.
    """
    units: list[list[str]] = []
    for layer in network.layers:
        if layer.type == "fc":
            break
        if layer.type == "conv":
            units.append([layer.name, layer.name])
        elif units:
            units[-1][1] = layer.name
    return [(a, b) for a, b in units]


def partitions(n: int) -> list[tuple[int, ...]]:
    """All compositions of n into consecutive group sizes (2^(n-1) of them), in binary cut order."""
    if n < 1:
        raise ValueError(f"need at least one unit, got {n}")
    out = []
    for cuts in itertools.product((False, True), repeat=n - 1):
        sizes, run = [], 1
        for cut in cuts:
            if cut:
                sizes.append(run)
                run = 1
            else:
                run += 1
        out.append(tuple(sizes + [run]))
    return out


def _tile_for(policy: TilePolicy, layers: tuple[Layer, ...], in_shape: Shape) -> int:
    return policy(layers, in_shape) if callable(policy) else int(policy)


def pareto_mask(points: Sequence[tuple[float, float]]) -> list[bool]:
    """True where no other point is <= in both coordinates and < in at least one (minimising)."""
    mask = []
    for i, (a, b) in enumerate(points):
        dominated = any(
            (c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(points) if j != i
        )
        mask.append(not dominated)
    return mask


def explore(
    network: Network,
    n_units: int | None = None,
    tile: TilePolicy = 1,
    strategy: str = "reuse",
    reuse_axes: Sequence[str] = ("x", "y"),
    bytes_per_value: int = 4,
    input_shape: Shape | None = None,
) -> pd.DataFrame:
    """One row per way to cut the first ``n_units`` fusable units into fused groups.

    ``tile`` is the tile-size policy: an int (the same output tile side for every group; the
    paper's smallest pyramid is 1 output pixel) or a function (group layers, group input shape)
    -> tile side. Columns: network, partition ("conv1_1+conv1_2 | conv2_1 ..."), n_groups,
    strategy, reuse_axes, tiles, onchip_bytes, dram_bytes_per_image, performed_macs_per_image,
    extra_macs_per_image, pareto.
    """
    units = fusable_units(network)
    n = len(units) if n_units is None else n_units
    if not 1 <= n <= len(units):
        raise ValueError(f"n_units={n_units} for {network.name}: allowed 1..{len(units)} fusable units")
    units = units[:n]
    cache: dict[tuple[int, int], tuple[int, object]] = {}
    rows = []
    for sizes in partitions(n):
        start, names, onchip, dram, performed, extra, tiles = 0, [], 0, 0, 0, 0, []
        for size in sizes:
            key = (start, start + size - 1)
            if key not in cache:
                first, last = units[key[0]][0], units[key[1]][1]
                layers = network.group(first, last)
                in_shape = group_input_shape(network, first, input_shape)
                t = _tile_for(tile, layers, in_shape)
                cache[key] = (t, group_costs(layers, in_shape, t, strategy, reuse_axes, bytes_per_value))
            t, c = cache[key]
            names.append("+".join(u[0] for u in units[key[0] : key[1] + 1]))
            onchip += c.onchip_bytes
            dram += c.dram_bytes_per_image_fused
            performed += c.performed_macs_per_image
            extra += c.extra_macs_per_image
            tiles.append(str(t))
            start += size
        rows.append({
            "network": network.name, "partition": " | ".join(names), "n_groups": len(sizes),
            "strategy": strategy, "reuse_axes": ",".join(sorted(reuse_axes)) if strategy == "reuse" else "",
            "tiles": ",".join(tiles), "bytes_per_value": bytes_per_value, "onchip_bytes": onchip,
            "dram_bytes_per_image": dram, "performed_macs_per_image": performed,
            "extra_macs_per_image": extra,
        })
    df = pd.DataFrame(rows)
    df["pareto"] = pareto_mask(list(zip(df["onchip_bytes"], df["dram_bytes_per_image"])))
    return df


def smallest_pyramid(layers: tuple[Layer, ...], in_shape: Shape) -> int:
    """Tile policy: one output pixel per group (the paper's smallest pyramid)."""
    return 1


def whole_map(layers: tuple[Layer, ...], in_shape: Shape) -> int:
    """Tile policy: the largest square tile of the group's output (no recompute at all)."""
    out = group_shapes(layers, in_shape)[-1]
    return min(out.height, out.width)


def write_dse(network_name: str, out_csv: str, bytes_per_value: int = 4, n_units: int | None = None) -> pd.DataFrame:
    """Run the exploration with the paper's defaults (tile 1, reuse in x and y) and write a CSV."""
    from pathlib import Path

    from pipeline.core.networks import load_network

    df = explore(load_network(network_name), n_units, tile=1, bytes_per_value=bytes_per_value)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    return df
