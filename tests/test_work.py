"""kernels/work.py: the fused kernel's executed work, against the pyramid model and recorded ncu counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernels.registry import TILE_SIZES
from kernels.work import fused_work
from pipeline.model import group_costs, group_input_shape, output_tiles
from pipeline.networks import Shape, load_network

ARCHIVE = Path(__file__).resolve().parents[1] / "reports" / "archive"


def model_macs(tile: int, strategy: str, height: int, width: int) -> float:
    """Useful + extra MACs of the pyramid as the plan models the kernels (reuse in y, balanced)."""
    net = load_network("alexnet")
    layers = net.group("conv1", "pool2")
    in_shape = group_input_shape(net, "conv1")
    in_shape = Shape(in_shape.channels, height, width)
    c = group_costs(layers, in_shape, tile, strategy, ("y",), 4, split="balanced")
    return c.useful_macs_per_image + c.extra_macs_per_image


def tiles(n: int, t: int) -> list[tuple[int, int]]:
    return [(a, b - a) for a, b in output_tiles(n, t, "balanced")]


def test_balanced_tiles_match_the_kernel():
    assert tiles(13, 4) == [(0, 4), (4, 3), (7, 3), (10, 3)]
    assert tiles(11, 4) == [(0, 4), (4, 4), (8, 3)]
    assert tiles(13, 2) == [(0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 1)]


@pytest.mark.parametrize("strategy", ["reuse", "recompute"])
@pytest.mark.parametrize("tile", TILE_SIZES)
@pytest.mark.parametrize("hw", [(227, 227), (231, 199)])
def test_kernel_work_without_padding_is_the_models_pyramid(strategy, tile, hw):
    """Two independent descriptions of the same pyramid: the kernel's loops and the model."""
    w = fused_work(tile, strategy, *hw)
    assert w.exact_macs == model_macs(tile, strategy, *hw)
    assert 0 < w.padding_macs < 0.5 * w.exact_macs


def recorded_profiles():
    """Genuine ncu kernel-replay FLOPs of the fused kernels in the archived runs."""
    found = []
    for p in sorted(ARCHIVE.glob("*/*/alexnet/fused-*/b*/profile.json")):
        prof = json.loads(p.read_text())
        if prof.get("available") and prof.get("kernels"):
            found.append(pytest.param(p, id=f"{p.parts[-5]}-{p.parts[-3]}-{p.parts[-2]}"))
    return found


@pytest.mark.parametrize("profile", recorded_profiles())
def test_counted_flops_match_nsight_compute(profile):
    prof = json.loads(profile.read_text())
    batch = int(profile.parent.name[1:])
    strategy, tile = profile.parts[-3].split("-")[1], int(profile.parts[-3].rsplit("t", 1)[1])
    measured = prof["kernels"][0]["flops"] / batch
    counted = fused_work(tile, strategy).flops
    # ncu also counts ~3 FLOPs per LRN output inside the SFU helpers' range fix-ups
    assert counted <= measured < counted * 1.003


def test_recorded_profiles_exist():
    assert len(recorded_profiles()) >= 16  # two cards x four fused variants x four batches


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="reuse' or 'recompute"):
        fused_work(4, "lbl")
