"""The generated kernels (kernels/generate.py, kernels/chain.py) against the float64 reference (GPU).

VGG-E's first five convs and AlexNet's front end at their own input size and at an odd one, at
batches 1 and 3, every strategy and precision; then random small chains drawn by hypothesis. Each
run writes a NaN-poisoned output; pipeline.stages.verify.check_forward judges it with the
precision's tolerance (docs/measurement.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_strategies import chains
from pipeline.core.gpu import gpu_skip_reason
from pipeline.core.networks import Shape, load_network

SKIP = gpu_skip_reason()
gpu = [pytest.mark.gpu, pytest.mark.skipif(SKIP is not None, reason=f"needs an NVIDIA GPU: {SKIP}")]
pytestmark = gpu

GROUPS = {"vgg_e": ("conv1_1", "relu3_1"), "alexnet": ("conv1", "pool2")}
SIZES = {"vgg_e": [(224, 224), (227, 195)], "alexnet": [(227, 227), (231, 199)]}
# (strategy, tile) per network and precision; FP32 rings are twice the bytes, so smaller tiles
CASES = {
    ("vgg_e", "fp32"): [("lbl", None), ("reuse", 2), ("recompute", 2)],
    ("vgg_e", "fp16"): [("lbl", None), ("reuse", (1, 8)), ("reuse", (2, 14)), ("recompute", 4)],
    ("vgg_e", "bf16"): [("reuse", (1, 8))],
    ("vgg_e", "tf32"): [("lbl", None), ("reuse", (2, 8))],
    ("alexnet", "tf32"): [("lbl", None), ("reuse", (2, 7))],
    ("alexnet", "fp32"): [("lbl", None), ("reuse", 2), ("recompute", (2, 7))],
    ("alexnet", "fp16"): [("lbl", None), ("reuse", (2, 7)), ("recompute", (2, 7))],
}


@pytest.fixture(scope="module")
def reference_cache():
    cache: dict = {}

    def get(net: str, h: int, w: int, precision: str):
        """(params, float32 input of batch 3, float64 reference of the rounded values)."""
        key = (net, h, w, precision)
        if key not in cache:
            from kernels.api import round_to_precision
            from pipeline.core.reference import forward, random_params

            network = load_network(net)
            layers = network.group(*GROUPS[net])
            shape = Shape(network.input.channels, h, w)
            rng = np.random.default_rng(h * 1000 + w)
            params = {k: (w_.astype(np.float32), b.astype(np.float32))
                      for k, (w_, b) in random_params(layers, shape, rng).items()}  # fmt: skip
            x = rng.standard_normal((3, shape.channels, h, w)).astype(np.float32)
            rp = {k: (round_to_precision(w_, precision).astype(np.float64), b.astype(np.float64))
                  for k, (w_, b) in params.items()}  # fmt: skip
            ref = forward(layers, round_to_precision(x, precision).astype(np.float64), rp)
            cache[key] = (layers, shape, params, x, ref)
        return cache[key]

    return get


def _cases():
    for (net, precision), variants in CASES.items():
        for strategy, tile in variants:
            for h, w in SIZES[net]:
                yield pytest.param(net, precision, strategy, tile, h, w, id=f"{net}-{strategy}-{tile}-{precision}-{h}x{w}")


@pytest.mark.parametrize("net,precision,strategy,tile,h,w", list(_cases()))
def test_generated_matches_reference(net, precision, strategy, tile, h, w, reference_cache):
    from kernels.chain import ChainForward
    from pipeline.stages.verify import check_forward

    layers, shape, params, x, ref = reference_cache(net, h, w, precision)
    for batch in (1, 3):
        fwd = ChainForward(layers, shape, batch, strategy, tile, precision, params=params, name=f"{net}-{strategy}")
        res = check_forward(fwd, fwd.encode(x[:batch]), ref[:batch])
        assert res["passed"], res


@st.composite
def cases(draw):
    """A random chain (tests/chain_strategies.py: channel counts up to 23 per group), a tile, a
    strategy and a precision."""
    layers, shape = draw(chains(max_channels=13, max_side=40, max_out_per_group=23))
    tile = draw(st.sampled_from([1, 2, (1, 3), (2, 1), (3, 2), (4, 8)]))
    strategy = draw(st.sampled_from(["reuse", "recompute", "lbl"]))
    precision = draw(st.sampled_from(["fp32", "tf32", "fp16", "bf16"]))
    return layers, shape, tile, strategy, precision


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_chains(case):
    from kernels.api import round_to_precision
    from kernels.chain import ChainForward
    from pipeline.core.reference import forward, random_params
    from pipeline.stages.verify import check_forward

    layers, shape, tile, strategy, precision = case
    rng = np.random.default_rng(0)
    params = {k: (w.astype(np.float32), b.astype(np.float32)) for k, (w, b) in random_params(layers, shape, rng).items()}
    x = rng.standard_normal((2, shape.channels, shape.height, shape.width)).astype(np.float32)
    fwd = ChainForward(layers, shape, 2, strategy, tile, precision, params=params, name="random")
    rp = {k: (w.astype(np.float64), b.astype(np.float64)) for k, (w, b) in fwd.params.items()}
    ref = forward(layers, round_to_precision(x, precision).astype(np.float64), rp)
    res = check_forward(fwd, fwd.encode(x), ref)
    assert res["passed"], (layers, shape, tile, strategy, precision, res)
