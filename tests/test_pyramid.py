"""The tile-by-tile pyramid executor against the layer-by-layer reference, plus its MAC accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.model import pyramid as P
from pipeline.core import reference as R
from pipeline.core.networks import Layer, NetworkError, Shape, load_network, output_shape

RUNS = (("recompute", ("x", "y")), ("reuse", ("x", "y")), ("reuse", ("y",)), ("reuse", ("x",)))


def shapes_of(layers, in_shape: Shape) -> list[Shape]:
    shapes = [in_shape]
    for layer in layers:
        shapes.append(output_shape(layer, shapes[-1]))
    return shapes


def exact_needed(layers, extents: list[int]) -> list[np.ndarray]:
    """Per axis, which positions of every map the whole output depends on (boolean, exact sets)."""
    needed = [np.zeros(e, dtype=bool) for e in extents]
    needed[-1][:] = True
    for i in range(len(layers) - 1, -1, -1):
        k, s, p = (layers[i].kernel, layers[i].stride, layers[i].pad) if layers[i].is_spatial else (1, 1, 0)
        for o in np.flatnonzero(needed[i + 1]):
            for j in range(o * s - p, o * s - p + k):
                if 0 <= j < extents[i]:
                    needed[i][j] = True
    return needed


def exact_useful_macs(layers, in_shape: Shape) -> int:
    """MACs of exactly the conv outputs the final output depends on, counted position by position."""
    shapes = shapes_of(layers, in_shape)
    rows = exact_needed(layers, [s.height for s in shapes])
    cols = exact_needed(layers, [s.width for s in shapes])
    total = 0
    for i, layer in enumerate(layers):
        if layer.type == "conv":
            per_value = (shapes[i].channels // layer.groups) * layer.kernel**2
            total += shapes[i + 1].channels * int(rows[i + 1].sum()) * int(cols[i + 1].sum()) * per_value
    return total


def contiguous_windows(layers) -> bool:
    """No kernel smaller than its stride and no window wholly in padding: exact needs are boxes."""
    return all(l.kernel >= l.stride and l.pad < l.kernel for l in layers if l.is_spatial)


@st.composite
def chains(draw):
    """A random fusable chain of 1-4 layers, an input that fits it, and random parameters."""
    channels = draw(st.integers(1, 4))
    layers = []
    c = channels
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "relu", "lrn", "maxpool"]))
        if kind == "conv":
            groups = draw(st.integers(1, 2)) if c % 2 == 0 else 1
            out_c = groups * draw(st.integers(1, 3))
            layers.append(Layer(f"l{i}", "conv", out_channels=out_c, kernel=draw(st.integers(1, 5)),
                                stride=draw(st.integers(1, 3)), pad=draw(st.integers(0, 2)), groups=groups))
            c = out_c
        elif kind == "maxpool":
            k = draw(st.integers(2, 3))
            layers.append(Layer(f"l{i}", "maxpool", kernel=k, stride=draw(st.integers(1, 2)),
                                pad=draw(st.integers(0, k // 2))))
        elif kind == "lrn":  # a large alpha so the nonlinearity matters
            layers.append(Layer(f"l{i}", "lrn", local_size=draw(st.sampled_from([1, 3, 5])),
                                alpha=draw(st.floats(0.1, 2.0)), beta=0.75, k=draw(st.floats(1.0, 2.0))))
        else:
            layers.append(Layer(f"l{i}", "relu"))
    in_shape = Shape(channels, draw(st.integers(3, 24)), draw(st.integers(3, 24)))
    try:
        out = shapes_of(layers, in_shape)[-1]
    except NetworkError:
        assume(False)
    tile = draw(st.integers(1, max(out.height, out.width) + 1))
    return tuple(layers), in_shape, tile, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(chains())
def test_pyramid_equals_layer_by_layer(case):
    layers, in_shape, tile, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((in_shape.channels, in_shape.height, in_shape.width))
    params = R.random_params(layers, in_shape, rng)
    want = R.forward(layers, x, params)
    useful = P.useful_macs(layers, in_shape)  # the whole-output pyramid as boxes
    exact = exact_useful_macs(layers, in_shape)  # only what the output really depends on
    contiguous = contiguous_windows(layers)
    assert exact <= useful <= sum(R.count_macs(layers, in_shape).values())
    if contiguous:
        assert exact == useful

    macs = {}
    for strategy, axes in RUNS:
        res = P.run_pyramid(layers, x, params, tile, strategy, axes)
        scale = max(np.abs(want).max(), 1.0)
        np.testing.assert_allclose(res.output, want, rtol=1e-12, atol=1e-12 * scale, err_msg=f"{strategy} {axes}")
        assert res.tiles == -(-want.shape[1] // tile) * -(-want.shape[2] // tile)
        macs[strategy, axes] = res.performed_macs
    assert macs["reuse", ("x", "y")] == useful
    assert min(macs.values()) >= exact
    if contiguous:  # with gaps between windows, small recompute tiles skip rows the box holds
        assert useful <= macs["reuse", ("y",)] <= macs["recompute", ("x", "y")]
        assert useful <= macs["reuse", ("x",)] <= macs["recompute", ("x", "y")]
    whole = P.run_pyramid(layers, x, params, max(want.shape[1:]), "recompute")
    assert whole.tiles == 1 and whole.performed_macs == useful


def test_recompute_counts_overlap_by_hand():
    # 1 -> 1 channel 3x3 conv on 6x6: output 4x4; T=2 gives 4 tiles whose 4x4 input windows overlap.
    layers = (Layer("c", "conv", out_channels=1, kernel=3),)
    x = np.arange(36.0).reshape(1, 6, 6)
    params = R.random_params(layers, (1, 6, 6), np.random.default_rng(0))
    res = P.run_pyramid(layers, x, params, 2, "recompute")
    assert res.performed_macs == 16 * 9  # tiles partition the output: no overlap in the last layer
    assert res.input_values_loaded == 4 * 16  # but each tile loads its own 4x4 input window
    chain = layers + (Layer("c2", "conv", out_channels=1, kernel=3),)  # 6x6 -> 4x4 -> 2x2
    res = P.run_pyramid(chain, x, R.random_params(chain, (1, 6, 6), np.random.default_rng(0)), 1, "recompute")
    assert res.macs_by_layer == (4 * 9 * 9, 4 * 9)  # each of 4 tiles recomputes a 3x3 patch of c's output


def test_reuse_buffers_by_hand():
    # 3x3 conv on 1x4x4 -> 2x2, T=1, raster order. Tile (0,0) loads a 3x3 window (9 values);
    # (0,1) loads one new column (3): 11 held, the row buffer (2 rows x 4) + the new column;
    # later tiles drop what no later tile reads, so the input peak is 11. Recompute: one 3x3 window.
    layers = (Layer("c", "conv", out_channels=1, kernel=3),)
    x = np.random.default_rng(1).standard_normal((1, 4, 4))
    params = R.random_params(layers, (1, 4, 4), np.random.default_rng(2))
    reuse = P.run_pyramid(layers, x, params, 1, "reuse")
    assert reuse.peak_buffer_values == 11 + 1  # + the 1x1 output tile
    assert reuse.input_values_loaded == 16
    assert reuse.peak_values_by_map == (11, 1)
    recompute = P.run_pyramid(layers, x, params, 1, "recompute")
    assert recompute.peak_buffer_values == 9 + 1
    assert recompute.input_values_loaded == 4 * 9


def test_pointwise_maps_are_not_charged():
    # conv -> relu -> pool: the pool reads the relu output; the conv output is relu'd in place.
    layers = (Layer("c", "conv", out_channels=2, kernel=3), Layer("r", "relu"), Layer("p", "maxpool", kernel=2, stride=2))
    x = np.random.default_rng(3).standard_normal((1, 10, 10))
    res = P.run_pyramid(layers, x, R.random_params(layers, (1, 10, 10), np.random.default_rng(4)), 2, "recompute")
    # a 2x2 pool tile needs 4x4 conv outputs (2 channels) and a 6x6 input window
    assert res.peak_values_by_map == (36, 32, 32, 8)
    assert res.peak_buffer_values == 36 + 32 + 8  # input, pool input, output tile


ALEXNET = load_network("alexnet")


@pytest.mark.parametrize("tile", [1, 2, 3])
def test_alexnet_conv1_to_pool2_small_input(tile):
    group = ALEXNET.group("conv1", "pool2")
    in_shape = Shape(3, 67, 67)  # conv1 15x15, pool1 7x7, conv2 7x7, pool2 3x3
    rng = np.random.default_rng(tile)
    x = rng.standard_normal((3, 67, 67))
    params = R.random_params(group, in_shape, rng)
    want = R.forward(group, x, params)
    lbl = sum(R.count_macs(group, in_shape).values())
    assert P.useful_macs(group, in_shape) == lbl  # 67 and every pool divide evenly: nothing cut
    results = {run: P.run_pyramid(group, x, params, tile, *run) for run in RUNS[:3]}
    for run, res in results.items():
        np.testing.assert_allclose(res.output, want, rtol=1e-12, atol=1e-12, err_msg=str(run))
    assert results["reuse", ("x", "y")].performed_macs == lbl
    assert results["reuse", ("x", "y")].input_values_loaded == 3 * 67 * 67
    if tile < 3:
        assert results["recompute", ("x", "y")].performed_macs > results["reuse", ("y",)].performed_macs > lbl
    else:
        assert results["recompute", ("x", "y")].performed_macs == lbl  # one tile covers the 3x3 output


@pytest.mark.parametrize("tile", [1, 2, 3])
def test_alexnet_full_size_reduced_channels(tile):
    # the real 227x227 geometry (55 -> 27 -> 27 -> 13), with 8 channels instead of 96/256 for speed
    group = tuple(
        Layer(l.name, l.type, out_channels=8, kernel=l.kernel, stride=l.stride, pad=l.pad, groups=l.groups,
              local_size=l.local_size, alpha=l.alpha, beta=l.beta, k=l.k)
        for l in ALEXNET.group("conv1", "pool2")
    )
    rng = np.random.default_rng(10 + tile)
    x = rng.standard_normal((3, 227, 227))
    params = R.random_params(group, ALEXNET.input, rng)
    want = R.forward(group, x, params)
    lbl = sum(R.count_macs(group, ALEXNET.input).values())
    for strategy, axes in RUNS[:3]:
        res = P.run_pyramid(group, x, params, tile, strategy, axes)
        np.testing.assert_allclose(res.output, want, rtol=1e-12, atol=1e-12, err_msg=f"{strategy} {axes}")
        assert res.tiles == (-(-13 // tile)) ** 2
        if (strategy, axes) == ("reuse", ("x", "y")):
            assert res.performed_macs == lbl
        else:
            assert res.performed_macs > lbl


def test_tile_ranges_clip_the_edge():
    assert P.tile_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert P.tile_ranges(2, 5) == [(0, 2)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "magic"}, "strategy"),
        ({"tile": 0}, "tile"),
        ({"strategy": "reuse", "reuse_axes": ()}, "reuse_axes"),
        ({"strategy": "reuse", "reuse_axes": ("z",)}, "reuse_axes"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    layers = (Layer("c", "conv", out_channels=1, kernel=3),)
    args = {"tile": 1, "strategy": "recompute"} | kwargs
    with pytest.raises(ValueError, match=match):
        P.run_pyramid(layers, np.zeros((1, 5, 5)), R.random_params(layers, (1, 5, 5), np.random.default_rng(0)),
                      args["tile"], args["strategy"], args.get("reuse_axes", ("x", "y")))


def test_rejects_fc_and_batches():
    layers = (Layer("f", "fc", out_channels=2),)
    with pytest.raises(ValueError, match="cannot be tiled"):
        P.run_pyramid(layers, np.zeros((1, 3, 3)), {}, 1, "recompute")
    conv = (Layer("c", "conv", out_channels=1, kernel=1),)
    with pytest.raises(ValueError, match="one image"):
        P.run_pyramid(conv, np.zeros((2, 1, 3, 3)), {}, 1, "recompute")
