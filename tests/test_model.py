"""Tests of the analytical pyramid model: hand-checked pyramids, edge tiles, brute-force MAC counts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.model.costs import (
    group_costs,
    group_input_shape,
    group_shapes,
    lbl_kernels,
    model_table,
    pyramid,
    tile_ranges,
    validate_tile,
)
from pipeline.core.networks import Layer, Shape, load_network


@pytest.fixture(scope="module")
def alexnet():
    return load_network("alexnet")


@pytest.fixture(scope="module")
def vgg():
    return load_network("vgg_e")


def _front(net):
    return net.group("conv1", "pool2"), group_input_shape(net, "conv1")


# ------------------------------------------------------------------ pyramids by hand


def test_alexnet_pyramid_t1_by_hand(alexnet):
    # pool2 3x3/2: 1 -> (1-1)*2+3 = 3; relu/lrn keep 3; conv2 5x5/1: (3-1)+5 = 7;
    # pool1 3x3/2: (7-1)*2+3 = 15; conv1 11x11/4: (15-1)*4+11 = 67.
    p = {lt.layer: lt for lt in pyramid(*_front(alexnet), tile=1)}
    assert [p[n].in_tile for n in ("conv1", "pool1", "conv2", "norm2", "pool2")] == [67, 15, 7, 3, 3]
    # steps: 1 at pool2 out, 2 at its input, 2 at conv2 input, 4 at pool1 input, 16 at conv1 input
    assert [p[n].in_step for n in ("conv1", "pool1", "conv2", "pool2")] == [16, 4, 2, 2]
    assert [p[n].in_overlap for n in ("conv1", "pool1", "conv2", "pool2")] == [51, 11, 5, 1]
    assert p["pool2"].out_tile == 1 and p["conv1"].out_tile == 15


def test_alexnet_pyramid_t2_by_hand(alexnet):
    # pool2: (2-1)*2+3 = 5; conv2: 4+5 = 9; pool1: 8*2+3 = 19; conv1: 18*4+11 = 83
    p = {lt.layer: lt for lt in pyramid(*_front(alexnet), tile=2)}
    assert [p[n].in_tile for n in ("conv1", "pool1", "conv2", "pool2")] == [83, 19, 9, 5]
    assert p["conv1"].in_step == 32


def test_vgg_pyramid_t1_by_hand(vgg):
    # conv3_1 3x3: 3; pool2 2x2/2: 6; conv2_2: 8; conv2_1: 10; pool1: 20; conv1_2: 22; conv1_1: 24
    layers = vgg.group("conv1_1", "relu3_1")
    p = {lt.layer: lt for lt in pyramid(layers, vgg.input, 1)}
    sides = [p[n].in_tile for n in ("conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2", "conv3_1")]
    assert sides == [24, 22, 20, 10, 8, 6, 3]
    assert p["pool1"].in_overlap == 20 - 4 and p["conv1_1"].in_step == 4


def test_padding_clips_border_tiles(vgg):
    # conv1_1 has pad 1: the first output row needs input rows -1..1, of which only 0..1 are data.
    layers = vgg.group("conv1_1", "relu1_1")
    rows, cols = tile_ranges(layers, vgg.input, 1)
    assert rows[0][0] == (0, 2) and rows[1][0] == (0, 3) and rows[-1][0] == (222, 224)
    assert len(rows) == len(cols) == 224


def test_clipped_edge_tile(alexnet):
    # T=5 on the 13x13 pool2 output: tiles [0,5), [5,10), [10,13). The last one is clipped:
    # pool2 rows 10..12 -> conv2 out rows [20, 27) -> conv2 in rows [18, 27) (29 clipped: padding)
    # -> conv1 out rows [36, 55) (pool1 3x3/2 over pool1 rows 18..26) -> conv1 in rows [144, 227).
    rows, _ = tile_ranges(*_front(alexnet), tile=5)
    assert [r[-1] for r in rows] == [(0, 5), (5, 10), (10, 13)]
    last = rows[-1]
    assert last[4] == (18, 27)  # conv2 input (= pool1 output)
    assert last[1] == (36, 55)  # conv1 output
    assert last[0] == (144, 227)


def test_non_square_input(alexnet):
    # 231 x 199 input: conv1 (231-11)/4+1 = 56 x 48; pool1 27 x 23; conv2 27 x 23; pool2 13 x 11.
    shape = Shape(3, 231, 199)
    layers = alexnet.group("conv1", "pool2")
    assert group_shapes(layers, shape)[-1] == Shape(256, 13, 11)
    c = group_costs(layers, shape, 4, "recompute")
    assert (c.out_h, c.out_w, c.tiles_per_image) == (13, 11, 4 * 3)
    assert c.lbl_macs_per_image == 56 * 48 * 96 * 3 * 121 + 27 * 23 * 256 * 48 * 25
    # floor pooling never reads conv1's last row (56 -> 27 uses 55) nor last column (48 -> 23
    # uses 47): the fused group need not compute them, so "useful" counts the dependence closure.
    assert c.useful_macs_per_image == 55 * 47 * 96 * 3 * 121 + 27 * 23 * 256 * 48 * 25
    with pytest.raises(ValueError, match=r"allowed: integers 1\.\.11"):
        validate_tile(alexnet, "conv1", "pool2", 12, input_shape=shape)


def test_validate_tile_message(alexnet):
    validate_tile(alexnet, "conv1", "pool2", 13)
    for bad in (0, 14, -1):
        with pytest.raises(ValueError, match=r"1\.\.13"):
            validate_tile(alexnet, "conv1", "pool2", bad)


def test_fc_cannot_be_fused(alexnet):
    with pytest.raises(ValueError, match="cannot be fused"):
        group_costs(alexnet.group("pool5", "fc6"), Shape(256, 13, 13), 1, "recompute")


# ------------------------------------------------------------------ totals by hand


def test_alexnet_macs_and_dram_by_hand(alexnet):
    c = group_costs(*_front(alexnet), tile=1, strategy="reuse")
    conv1 = 55 * 55 * 96 * 3 * 11 * 11
    conv2 = 27 * 27 * 256 * 48 * 5 * 5
    assert c.useful_macs_per_image == c.lbl_macs_per_image == conv1 + conv2 == 329_364_000
    assert c.dram_bytes_per_image_fused == (3 * 227 * 227 + 256 * 13 * 13) * 4
    assert c.weight_bytes == (96 * 3 * 121 + 96 + 256 * 48 * 25 + 256) * 4
    maps = [3 * 227 * 227, 96 * 55 * 55, 96 * 27 * 27, 256 * 27 * 27, 256 * 13 * 13]
    # separate: conv1, relu1, norm1 read+write 55x55x96; pool1; conv2, relu2, norm2; pool2
    separate = (maps[0] + maps[1]) + 2 * 2 * maps[1] + (maps[1] + maps[2]) + (maps[2] + maps[3]) \
        + 2 * 2 * maps[3] + (maps[3] + maps[4])
    assert c.dram_bytes_per_image_lbl == separate * 4
    assert c.dram_bytes_per_image_lbl_merged == (maps[0] + maps[2] + maps[2] + maps[4]) * 4
    # pool1 runs on conv2's load; pool2 has no conv after it and stays with conv2
    assert c.dram_bytes_per_image_lbl_pool_on_load == (maps[0] + maps[1] + maps[1] + maps[4]) * 4


def test_alexnet_recompute_t1_by_hand(alexnet):
    # per axis, 13 tiles: conv2 out 3 rows each (39 in all); conv1 out: 11 + 11*15 + 11 = 187
    c = group_costs(*_front(alexnet), tile=1, strategy="recompute")
    expected = 187**2 * 96 * 3 * 121 + 39**2 * 256 * 48 * 25
    assert c.performed_macs_per_image == expected
    assert c.extra_macs_per_image == expected - 329_364_000


def test_vgg_lbl_conventions(vgg):
    layers = vgg.group("conv1_1", "relu3_1")
    kernels = [[layers[i].name for i in range(a, b + 1)] for a, b in lbl_kernels(layers, "pool_on_load")]
    assert kernels[2] == ["pool1", "conv2_1", "relu2_1"]
    merged = [[layers[i].name for i in range(a, b + 1)] for a, b in lbl_kernels(layers, "merged")]
    assert merged[1] == ["conv1_2", "relu1_2", "pool1"]
    assert len(lbl_kernels(layers, "separate")) == len(layers)


def test_vgg_reuse_buffers_by_hand(vgg):
    # BT: K-S = 2 rows across each conv input's full width; BL: 2 columns over the tile window.
    layers = vgg.group("conv1_1", "relu3_1")
    c = group_costs(layers, vgg.input, 1, "reuse", ("x", "y"))
    bt = 2 * (224 * 3 + 224 * 64 + 112 * 64 + 112 * 128 + 56 * 128)
    # windows step*S + K - S: conv1_1/conv1_2 step 4 -> 6; conv2_1/conv2_2 step 2 -> 4; conv3_1 -> 3
    bl = 2 * (6 * 3 + 6 * 64 + 4 * 64 + 4 * 128 + 3 * 128)
    assert c.onchip_reuse_bytes == (bt + bl) * 4


# ------------------------------------------------------------------ brute force


def _chain(specs):
    """Layers from compact specs: ('c', K, S, P, out_c, groups) | ('p', K, S) | ('r',) | ('n',)."""
    layers = []
    for i, s in enumerate(specs):
        if s[0] == "c":
            layers.append(Layer(f"c{i}", "conv", out_channels=s[4], kernel=s[1], stride=s[2], pad=s[3], groups=s[5]))
        elif s[0] == "p":
            layers.append(Layer(f"p{i}", "maxpool", kernel=s[1], stride=s[2]))
        else:
            layers.append(Layer(f"x{i}", "relu" if s[0] == "r" else "lrn"))
    return tuple(layers)


def _needed(layer, outs, size_h, size_w):
    """Input pixels a layer reads for a set of output pixels, by enumerating kernel taps."""
    if not layer.is_spatial:
        return set(outs)
    need = set()
    for y, x in outs:
        for ky, kx in itertools.product(range(layer.kernel), repeat=2):
            iy, ix = y * layer.stride - layer.pad + ky, x * layer.stride - layer.pad + kx
            if 0 <= iy < size_h and 0 <= ix < size_w:
                need.add((iy, ix))
    return need


def _brute_force_macs(layers, in_shape, tile, mode):
    """Performed conv MACs by enumerating every 2-D tile and every pixel it computes.

    mode: 'recompute' (each tile its whole pyramid), 'xy' (each pixel once), 'y' (each column
    strip of tiles computes the union of its tiles' pyramids; strips recompute each other's halo).
    """
    shapes = group_shapes(layers, in_shape)
    out = shapes[-1]
    tiles = {}
    for ty, tx in itertools.product(range(0, out.height, tile), range(0, out.width, tile)):
        pix = {(y, x) for y in range(ty, min(ty + tile, out.height)) for x in range(tx, min(tx + tile, out.width))}
        per_level = [pix]
        for i in range(len(layers) - 1, -1, -1):
            per_level.append(_needed(layers[i], per_level[-1], shapes[i].height, shapes[i].width))
        tiles[(ty, tx)] = per_level[::-1]
    if mode == "recompute":
        groups = [[k] for k in tiles]
    elif mode == "xy":
        groups = [list(tiles)]
    else:
        groups = [[k for k in tiles if k[1] == tx] for tx in range(0, out.width, tile)]
    total = 0
    for members in groups:
        for i, layer in enumerate(layers):
            if layer.type == "conv":
                computed = set().union(*(tiles[k][i + 1] for k in members))
                per_px = layer.out_channels * (shapes[i].channels // layer.groups) * layer.kernel**2
                total += len(computed) * per_px
    return total


SMALL_CHAINS = [
    [("c", 3, 1, 1, 4, 1), ("r",), ("p", 2, 2), ("c", 3, 1, 1, 4, 2)],
    [("c", 5, 2, 0, 2, 1), ("n",), ("p", 3, 2), ("c", 3, 1, 1, 6, 2), ("p", 3, 2)],
    [("c", 3, 2, 2, 3, 1), ("c", 2, 1, 0, 2, 1)],
]


@pytest.mark.parametrize("specs", SMALL_CHAINS)
@pytest.mark.parametrize("tile", [1, 2, 3])
def test_macs_match_brute_force(specs, tile):
    layers = _chain(specs)
    in_shape = Shape(2, 45, 37)  # non-square, odd sizes: edge tiles are clipped
    for strategy, axes, mode in [("recompute", (), "recompute"), ("reuse", ("x", "y"), "xy"), ("reuse", ("y",), "y")]:
        c = group_costs(layers, in_shape, tile, strategy, axes)
        assert c.performed_macs_per_image == _brute_force_macs(layers, in_shape, tile, mode), (strategy, axes)


@settings(max_examples=40, deadline=None)
@given(
    k1=st.integers(1, 5), s1=st.integers(1, 3), p1=st.integers(0, 2),
    pk=st.integers(2, 3), ps=st.integers(1, 2), size=st.integers(14, 26), tile=st.integers(1, 4),
)
def test_properties_random_chains(k1, s1, p1, pk, ps, size, tile):
    p1 = min(p1, k1 - 1)
    layers = _chain([("c", k1, s1, p1, 3, 1), ("r",), ("p", pk, ps), ("c", 3, 1, 1, 2, 1)])
    in_shape = Shape(2, size, size + 3)
    out = group_shapes(layers, in_shape)[-1]
    tile = min(tile, out.height, out.width)
    rec = group_costs(layers, in_shape, tile, "recompute")
    xy = group_costs(layers, in_shape, tile, "reuse", ("x", "y"))
    y = group_costs(layers, in_shape, tile, "reuse", ("y",))
    assert xy.extra_macs_per_image == 0
    assert 0 <= y.extra_macs_per_image <= rec.extra_macs_per_image
    assert rec.performed_macs_per_image == _brute_force_macs(layers, in_shape, tile, "recompute")
    assert y.performed_macs_per_image == _brute_force_macs(layers, in_shape, tile, "y")
    assert rec.input_read_bytes_per_image >= xy.input_read_bytes_per_image


def test_whole_map_tile_has_no_extra_macs(alexnet, vgg):
    for net, first, last in [(alexnet, "conv1", "pool2"), (vgg, "conv1_1", "relu3_1")]:
        layers = net.group(first, last)
        in_shape = group_input_shape(net, first)
        whole = group_shapes(layers, in_shape)[-1].height
        c = group_costs(layers, in_shape, whole, "recompute")
        assert c.tiles_per_image == 1 and c.extra_macs_per_image == 0
        assert c.performed_macs_per_image == c.lbl_macs_per_image


def test_recompute_extra_shrinks_with_tile(alexnet):
    extra = [group_costs(*_front(alexnet), t, "recompute").extra_macs_per_image for t in (1, 2, 4, 7, 13)]
    assert extra == sorted(extra, reverse=True) and extra[-1] == 0 and extra[0] > 0


def test_model_table_columns_and_rows(alexnet):
    df = model_table(alexnet, {"front": ("conv1", "pool2")}, [1, 4])
    assert len(df) == 2 * 3  # tiles x (recompute, reuse x,y, reuse y)
    for col in ("network", "group", "first_layer", "last_layer", "tile", "strategy", "reuse_axes",
                "tiles_per_image", "useful_macs_per_image", "performed_macs_per_image",
                "extra_macs_per_image", "recompute_factor", "onchip_bytes", "dram_bytes_per_image_fused",
                "dram_bytes_per_image_lbl", "dram_bytes_per_image_lbl_merged", "weight_bytes"):
        assert col in df.columns, col
    assert set(df["reuse_axes"]) == {"", "x,y", "y"}
    assert (df["extra_macs_per_image"] >= 0).all()
    with pytest.raises(ValueError, match="allowed"):
        model_table(alexnet, {"front": ("conv1", "pool2")}, [14])


def test_bytes_per_value_scales_bytes_only(alexnet):
    c4 = group_costs(*_front(alexnet), 2, "reuse", bytes_per_value=4)
    c2 = group_costs(*_front(alexnet), 2, "reuse", bytes_per_value=2)
    assert c4.onchip_bytes == 2 * c2.onchip_bytes and c4.dram_bytes_per_image_lbl == 2 * c2.dram_bytes_per_image_lbl
    assert c4.performed_macs_per_image == c2.performed_macs_per_image


def test_balanced_split_matches_the_kernels_tiling():
    """kernels/fused.cu cuts 13 into 4,3,3,3 (tile_start/tile_size); the clipped split is 4,4,4,1."""
    from pipeline.model.costs import output_tiles

    assert output_tiles(13, 4, "clipped") == [(0, 4), (4, 8), (8, 12), (12, 13)]
    assert output_tiles(13, 4, "balanced") == [(0, 4), (4, 7), (7, 10), (10, 13)]
    assert output_tiles(13, 2, "balanced") == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 13)]
    for n in range(1, 40):
        for t in range(1, n + 1):
            tiles = output_tiles(n, t, "balanced")
            assert len(tiles) == len(output_tiles(n, t, "clipped")) and tiles[-1][1] == n
            sizes = [b - a for a, b in tiles]
            assert max(sizes) - min(sizes) <= 1 and max(sizes) <= t


# ------------------------------------------------------------------ rectangular tiles


def test_rectangular_tile_is_each_axis_on_its_own(alexnet):
    """A (rows, cols) tile cuts rows like T=rows and columns like T=cols; (T, T) is the square T."""
    layers, shape = _front(alexnet)
    rows2, _ = tile_ranges(layers, shape, 2, "balanced")
    _, cols7 = tile_ranges(layers, shape, 7, "balanced")
    assert tile_ranges(layers, shape, (2, 7), "balanced") == (rows2, cols7)
    for strategy, axes in (("reuse", ("y",)), ("recompute", ())):
        square = group_costs(layers, shape, 4, strategy, axes, split="balanced")
        as_pair = group_costs(layers, shape, (4, 4), strategy, axes, split="balanced")
        assert (square.performed_macs_per_image, square.onchip_bytes) == (
            as_pair.performed_macs_per_image, as_pair.onchip_bytes)  # fmt: skip
    wide = group_costs(layers, shape, (2, 7), "reuse", ("y",), split="balanced")
    assert wide.tiles_per_image == 7 * 2
    # reuse in y only: what is recomputed is the x overlap of 2 strips, less than T=4's 4 strips
    assert wide.extra_macs_per_image < group_costs(layers, shape, 4, "reuse", ("y",), split="balanced").extra_macs_per_image


def test_rectangular_tile_validation(alexnet):
    validate_tile(alexnet, "conv1", "pool2", (1, 13))
    for bad in ((0, 3), (2, 14), (2,), (2, 7, 1), (True, 3)):
        with pytest.raises(ValueError, match="cannot tile|rows"):
            validate_tile(alexnet, "conv1", "pool2", bad)


def test_tile_labels_round_trip():
    from pipeline.core.tiles import parse_tile, tile_label

    assert [tile_label(t) for t in (4, (2, 7), (4, 4))] == ["4", "2x7", "4x4"]
    assert [parse_tile(s) for s in ("4", 4, "2x7", " 3x1 ")] == [4, 4, (2, 7), (3, 1)]
    for bad in ("", "x", "2x", "2x7x1", "a", "-1", "2.5"):
        with pytest.raises(ValueError, match="rows x cols"):
            parse_tile(bad)
