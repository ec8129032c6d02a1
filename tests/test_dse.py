"""Tests of the fusion-granularity design-space exploration."""

from __future__ import annotations

import pytest

from pipeline.model.dse import explore, fusable_units, pareto_mask, partitions, whole_map
from pipeline.model.costs import group_costs, group_input_shape
from pipeline.core.networks import load_network


@pytest.fixture(scope="module")
def vgg():
    return load_network("vgg_e")


@pytest.fixture(scope="module")
def alexnet():
    return load_network("alexnet")


def test_fusable_units_follow_the_papers_convention(vgg, alexnet):
    assert fusable_units(vgg) == [
        ("conv1_1", "relu1_1"), ("conv1_2", "pool1"), ("conv2_1", "relu2_1"),
        ("conv2_2", "pool2"), ("conv3_1", "relu3_1"),
    ]
    assert fusable_units(alexnet)[:2] == [("conv1", "pool1"), ("conv2", "pool2")]
    assert fusable_units(alexnet)[-1] == ("conv5", "pool5")  # stops before fc6


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_partitions_are_all_compositions(n):
    parts = partitions(n)
    assert len(parts) == 2 ** (n - 1) == len(set(parts))
    assert all(sum(p) == n and min(p) >= 1 for p in parts)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_explore_rows_and_names(vgg, n):
    df = explore(vgg, n)
    assert len(df) == 2 ** (n - 1)
    assert df["partition"].is_unique
    assert (df["n_groups"] == df["partition"].str.count(r"\|") + 1).all()
    if n == 5:
        assert "conv1_1+conv1_2 | conv2_1 | conv2_2+conv3_1" in set(df["partition"])


def test_pareto_set_is_non_dominated(vgg, alexnet):
    for net, strategy in [(vgg, "reuse"), (alexnet, "recompute"), (alexnet, "reuse")]:
        df = explore(net, 5, strategy=strategy)
        pts = list(zip(df["onchip_bytes"], df["dram_bytes_per_image"]))
        front = df[df["pareto"]]
        assert len(front) >= 1
        for _, r in front.iterrows():
            a, b = r["onchip_bytes"], r["dram_bytes_per_image"]
            assert not any(c <= a and d <= b and (c < a or d < b) for c, d in pts)
        for _, r in df[~df["pareto"]].iterrows():  # every other point is dominated by someone
            a, b = r["onchip_bytes"], r["dram_bytes_per_image"]
            assert any(c <= a and d <= b and (c < a or d < b) for c, d in pts)


def test_pareto_mask_small_case():
    assert pareto_mask([(1, 5), (2, 2), (3, 3), (5, 1), (2, 2)]) == [True, True, False, True, True]


def test_scores_are_sums_over_groups(vgg):
    df = explore(vgg, 5).set_index("partition")
    fully = df.loc["conv1_1+conv1_2+conv2_1+conv2_2+conv3_1"]
    none = df.loc["conv1_1 | conv1_2 | conv2_1 | conv2_2 | conv3_1"]
    layers = vgg.group("conv1_1", "relu3_1")
    c = group_costs(layers, vgg.input, 1, "reuse")
    assert fully["onchip_bytes"] == c.onchip_bytes
    assert fully["dram_bytes_per_image"] == c.dram_bytes_per_image_fused
    # no fusion: each unit reads its input and writes its (pooled) output = layer-by-layer merged
    assert none["dram_bytes_per_image"] == c.dram_bytes_per_image_lbl_merged
    units = [("conv1_1", "relu1_1"), ("conv1_2", "pool1"), ("conv2_1", "relu2_1"),
             ("conv2_2", "pool2"), ("conv3_1", "relu3_1")]
    total = sum(
        group_costs(vgg.group(a, b), group_input_shape(vgg, a), 1, "reuse").onchip_bytes for a, b in units
    )
    assert none["onchip_bytes"] == total
    # fully fused moves the least: VGG first five (3*224*224 + 256*56*56) * 4 bytes
    assert df["dram_bytes_per_image"].min() == fully["dram_bytes_per_image"] == (3 * 224 * 224 + 256 * 56 * 56) * 4


def test_tile_policy_callable(alexnet):
    df = explore(alexnet, 2, tile=whole_map, strategy="recompute")
    assert set(df["tiles"]) == {"13", "27,13"}
    assert (df["extra_macs_per_image"] == 0).all()
    rec1 = explore(alexnet, 2, tile=1, strategy="recompute")
    assert (rec1["extra_macs_per_image"] > 0).all()


def test_bad_unit_count(alexnet):
    with pytest.raises(ValueError, match="allowed 1..5"):
        explore(alexnet, 6)
