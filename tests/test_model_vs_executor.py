"""The analytical model against the CPU pyramid executor: same MACs, tiles and input loads.

The executor (pipeline/model/pyramid.py) actually computes every tile and counts what it computed; the
model (pipeline/model/costs.py) predicts the same counts from geometry alone. Random small chains,
including kernels smaller than their stride and clipped, non-square maps.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.model import pyramid as P
from pipeline.core import reference as R
from pipeline.model.costs import group_costs, group_shapes
from pipeline.core.networks import Layer, NetworkError, Shape

VARIANTS = [("recompute", ()), ("reuse", ("x", "y")), ("reuse", ("y",)), ("reuse", ("x",))]


@st.composite
def small_chains(draw):
    """A chain of 1-4 layers on a small non-square map, with a valid tile size."""
    layers = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "relu", "lrn"]))
        if kind == "conv":
            k = draw(st.integers(1, 4))
            layers.append(Layer(f"c{i}", "conv", out_channels=draw(st.integers(1, 2)), kernel=k,
                                stride=draw(st.integers(1, 3)), pad=draw(st.integers(0, k - 1))))
        elif kind == "maxpool":
            layers.append(Layer(f"p{i}", "maxpool", kernel=draw(st.integers(1, 3)), stride=draw(st.integers(1, 3))))
        else:
            layers.append(Layer(f"x{i}", kind, local_size=3))
    in_shape = Shape(draw(st.integers(1, 2)), draw(st.integers(8, 20)), draw(st.integers(8, 20)))
    try:
        out = group_shapes(layers, in_shape)[-1]
    except NetworkError:
        out = None
    tile = draw(st.integers(1, 5))
    return tuple(layers), in_shape, out, tile


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=small_chains(), seed=st.integers(0, 2**16))
def test_model_matches_executor(case, seed):
    layers, in_shape, out, tile = case
    if out is None:
        return  # the chain does not fit its map; nothing to compare
    tile = min(tile, out.height, out.width)
    rng = np.random.default_rng(seed)
    params = R.random_params(layers, in_shape, rng)
    x = rng.standard_normal((in_shape.channels, in_shape.height, in_shape.width))
    for strategy, axes in VARIANTS:
        res = P.run_pyramid(layers, x, params, tile, strategy, axes or ("x", "y"))
        c = group_costs(layers, in_shape, tile, strategy, axes, bytes_per_value=1)
        assert c.performed_macs_per_image == res.performed_macs, (strategy, axes)
        assert c.tiles_per_image == res.tiles
        assert c.input_read_bytes_per_image == res.input_values_loaded, (strategy, axes)
    assert c.useful_macs_per_image == P.useful_macs(layers, in_shape)


def test_alexnet_front_reduced_channels_matches_executor():
    """AlexNet conv1..pool2 geometry at full 227x227 size, channels cut so the executor is quick."""
    layers = (
        Layer("conv1", "conv", out_channels=2, kernel=11, stride=4),
        Layer("relu1", "relu"),
        Layer("pool1", "maxpool", kernel=3, stride=2),
        Layer("conv2", "conv", out_channels=2, kernel=5, pad=2),
        Layer("pool2", "maxpool", kernel=3, stride=2),
    )
    in_shape = Shape(1, 227, 227)
    rng = np.random.default_rng(0)
    params = R.random_params(layers, in_shape, rng)
    x = rng.standard_normal((1, 227, 227))
    for strategy, axes in [("recompute", ()), ("reuse", ("y",))]:
        res = P.run_pyramid(layers, x, params, 4, strategy, axes or ("x", "y"))
        c = group_costs(layers, in_shape, 4, strategy, axes)
        assert c.performed_macs_per_image == res.performed_macs
