"""The pyramid figure draws the model's geometry, not its own: regions, overlaps, kept columns and
bytes all come from pipeline/model/costs.py (tile_ranges, pyramid, onchip_buffers)."""

from __future__ import annotations

import pandas as pd

from analysis.pyramid_figure import pick_tile, pyramid_levels
from pipeline.core.networks import load_network
from pipeline.model.costs import group_input_shape, model_table, onchip_buffers, pyramid


def test_alexnet_levels_are_the_models_regions():
    net = load_network("alexnet")
    layers, shape = net.group("conv1", "pool2"), group_input_shape(net, "conv1")
    levels = pyramid_levels("alexnet", "conv1", "pool2", 4)
    assert [lv.name for lv in levels] == ["group input", "conv1 + relu1 + norm1", "pool1", "conv2 + relu2 + norm2",
                                          "pool2"]
    assert [(lv.height, lv.width) for lv in levels] == [(115, 115), (27, 27), (13, 13), (9, 9), (4, 4)]
    assert [lv.channels for lv in levels] == [3, 96, 96, 256, 256]
    assert [lv.stride for lv in levels] == [1, 4, 8, 8, 16]
    # the overlap with the next tile is the recompute pyramid's overlap at the layer that reads the map
    pyr = {p.layer: p.in_overlap for p in pyramid(layers, shape, 4)}
    assert [lv.overlap for lv in levels] == [pyr["conv1"], pyr["pool1"], pyr["conv2"], pyr["pool2"], 0]
    assert [lv.overlap for lv in levels] == [51, 11, 5, 1, 0]
    # reuse keeps K - S columns of each map, the model's BL buffer for the neighbour in x
    assert [lv.keep_cols for lv in levels] == [7, 1, 4, 1, 0]
    bl = {b.level: b.reuse_values * 4 for b in onchip_buffers(layers, shape, 4, "reuse", ("x",))}
    assert [lv.keep_bytes for lv in levels] == [bl[0], bl[3], bl[4], bl[7], 0]
    # recompute spends again, on the overlap, the conv MACs of each pixel there
    assert levels[1].redo_macs == 27 * 11 * (96 * 3 * 11 * 11)
    assert levels[3].redo_macs == 9 * 1 * (256 * 48 * 5 * 5)
    assert levels[0].redo_macs == levels[2].redo_macs == levels[4].redo_macs == 0


def test_vgg_levels_follow_the_group():
    levels = pyramid_levels("vgg_e", "conv1_1", "relu3_1", 8)
    assert levels[0].width == 52 and levels[-1].width == 8 and levels[-1].name == "conv3_1 + relu3_1"
    assert [lv.keep_cols for lv in levels] == [2, 2, 0, 2, 2, 0, 2, 0]  # 3x3/1 convs keep 2, 2x2/2 pools 0


def test_the_tile_drawn_has_neighbours():
    def table(net, group, tiles):
        return model_table(load_network(net), {"g": group}, tiles)

    assert pick_tile(table("alexnet", ("conv1", "pool2"), [1, 2, 3, 4, 5, 7, 13]))[3] == 4
    assert pick_tile(table("vgg_e", ("conv1_1", "relu3_1"), [1, 2, 4, 7, 8, 14, 28, 56]))[3] == 8
    assert pick_tile(table("vgg_e", ("conv1_1", "relu3_1"), [8, 56]))[3] == 8  # 56 is one tile: no neighbour
    assert pick_tile(pd.DataFrame(columns=["group", "tile"])) is None


def test_caption_bytes_follow_the_tables_bytes_per_value(tmp_path):
    """At 2 B/value the caption's reuse and tile buffers are the 2-byte model's, as the labels are."""
    from analysis.pyramid_figure import _kb, draw_pyramid
    from pipeline.model.costs import group_costs

    net = load_network("alexnet")
    svg = tmp_path / "p.svg"
    draw_pyramid(model_table(net, {"g": ("conv1", "pool2")}, [2, 4, 7], bytes_per_value=2), svg, "alexnet")
    text = svg.read_text()
    layers, shape = net.group("conv1", "pool2"), group_input_shape(net, "conv1")
    two, four = (group_costs(layers, shape, 4, "reuse", bytes_per_value=b) for b in (2, 4))
    # the caption wraps: its numbers may land in separate text lines
    assert f"beside {_kb(two.onchip_tile_bytes)} of tile buffers" in text
    assert f"beside {_kb(four.onchip_tile_bytes)} of tile buffers" not in text
    assert _kb(two.onchip_reuse_bytes) in text
