"""kernels/work.py: the fused kernel's executed work, against the pyramid model and recorded ncu counts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kernels.registry import FUSED_TILES
from kernels.work import fused_work
from pipeline.model.costs import group_costs, group_input_shape, output_tiles
from pipeline.core.networks import Shape, load_network
from pipeline.core.tiles import parse_tile

ARCHIVE = Path(__file__).resolve().parents[1] / "reports" / "archive"


def model_macs(tile, strategy: str, height: int, width: int) -> float:
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
@pytest.mark.parametrize("tile", FUSED_TILES)
@pytest.mark.parametrize("hw", [(227, 227), (231, 199)])
def test_kernel_work_without_padding_is_the_models_pyramid(strategy, tile, hw):
    """Two independent descriptions of the same pyramid: the kernel's loops and the model."""
    w = fused_work(tile, strategy, *hw)
    assert w.exact_macs == model_macs(tile, strategy, *hw)
    assert 0 < w.padding_macs < 0.5 * w.exact_macs


def recorded_profiles():
    """Genuine ncu kernel-replay FLOPs of the FP32 fused kernels (fused.cu, whose loops
    kernels/work.py walks) in the archived runs."""
    found = []
    for p in sorted(ARCHIVE.glob("*/*/alexnet/fused-*/b*/profile.json")):
        prof = json.loads(p.read_text())
        if prof.get("available") and prof.get("kernels") and prof["precision"] == "fp32" and prof.get("impl", "") != "gen":
            found.append(pytest.param(p, id=f"{p.parts[-6]}-{p.parts[-3]}-{p.parts[-2]}"))
    return found


@pytest.mark.parametrize("profile", recorded_profiles())
def test_counted_flops_match_nsight_compute(profile):
    prof = json.loads(profile.read_text())
    batch = int(profile.parent.name[1:])
    strategy, tile = prof["strategy"], parse_tile(prof["tile"])  # the record every result file carries
    # the run's own build report says which register-tile widths it ran (exact_slots: migrated
    # archives record it; builds before EXACT_R ran the coarser ones, every build since the exact ones)
    build = json.loads((profile.parents[4] / "build" / "sm_90" / f"{prof['variant']}.json").read_text())
    measured = prof["kernels"][0]["flops"] / batch
    counted = fused_work(tile, strategy, exact_slots=build.get("exact_slots", True)).flops
    # ncu also counts ~3 FLOPs per LRN output inside the SFU helpers' range fix-ups
    assert counted <= measured < counted * 1.003
    # and the archive's plan carries the same count (analysis joins it for the extra-work table)
    plan = pd.read_csv(profile.parents[4] / "plan.csv").set_index(["variant", "batch"])
    assert plan.loc[(prof["variant"], batch), "kernel_counted_flops_per_image"] == counted


def test_recorded_profiles_exist():
    assert len(recorded_profiles()) >= 16  # two cards x four fused variants x four batches
    exact = {json.loads((p.parents[4] / "build" / "sm_90" / f"{p.parts[-3]}.json").read_text()).get("exact_slots", True)
             for p in (q.values[0] for q in recorded_profiles())}
    assert exact == {False, True}  # builds before and after exact-width register tiles


def test_exact_slots_only_drop_padding():
    """EXACT_R changes which register-tile widths run, never the pyramid's own work."""
    for tile in FUSED_TILES:
        old, new = fused_work(tile, "reuse", exact_slots=False), fused_work(tile, "reuse")
        assert new.exact_macs == old.exact_macs and new.gemm_macs <= old.gemm_macs


def test_wide_tile_executes_less_than_t4():
    """The 2x7 strips overlap less in x: fewer conv1 MACs than T=4, measured 26.5 vs 31.8 us (perf-notes 13)."""
    t4, wide = fused_work(4, "reuse"), fused_work((2, 7), "reuse")
    assert wide.conv1_exact_macs < 0.8 * t4.conv1_exact_macs
    assert wide.gemm_macs < 0.85 * t4.gemm_macs


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="reuse' or 'recompute"):
        fused_work(4, "lbl")
