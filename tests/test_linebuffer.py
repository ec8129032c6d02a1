"""The generated kernels' schedule and layout (pipeline/model/linebuffer.py), checked on the CPU.

``emulate`` runs a layout's row operations exactly as kernels/chain.cuh does: rings addressed by
``row mod rows`` and ``column - base``, padding filled just before a consumer reads it, ReLU/LRN in
place, NaN in every slot nothing wrote. A ring too small, an evicted row still read, or a table
off by one gives NaN or a wrong value against the float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_strategies import chains
from pipeline.core import reference
from pipeline.core.networks import Layer, Shape, load_network
from pipeline.model.linebuffer import LOAD, STORE, ChainError, chain_layout, check_fits, performed_macs_per_image
from pipeline.model.pyramid import useful_macs


def emulate(layout, x: np.ndarray, params) -> np.ndarray:
    """One image (C, H, W) through the layout's blocks, float64, as the kernel computes it."""
    layers, rings, shapes = layout.layers, layout.rings, layout.shapes
    out = np.full((shapes[-1].channels, shapes[-1].height, shapes[-1].width), np.nan)
    for ops in layout.ops:
        for t in range(len(layout.tiles_x)):
            store = [np.full((r.rows, r.cols, r.channels), np.nan) for r in rings]  # fresh shared memory

            def at(k, r, c):
                return store[k][r % rings[k].rows, c - layout.col_base[k][t]]

            def put(k, r, c, v):
                store[k][r % rings[k].rows, c - layout.col_base[k][t]] = v

            for op in ops:
                k = op.ring
                clo, chi = layout.col_computed[k][t]
                if op.kind == LOAD:
                    for r in range(op.lo, op.hi):
                        for c in range(clo, chi):
                            put(0, r, c, x[:, r, c])
                elif op.kind == STORE:
                    for r in range(op.lo, op.hi):
                        for c in range(clo, chi):
                            out[:, r, c] = at(k, r, c)
                else:
                    j, layer = k - 1, layers[rings[k].layer]
                    h, w = shapes[rings[j].map].height, shapes[rings[j].map].width
                    s, p, kk = layer.stride, layer.pad, layer.kernel
                    pclo, pchi = layout.plan_x.read_padded[rings[j].consumer][t]
                    pad = -np.inf if layout.pad_values[j] == "neg_inf" else 0.0
                    for r in range(op.lo * s - p, (op.hi - 1) * s - p + kk):
                        for c in range(pclo, pchi):
                            if not (0 <= r < h and 0 <= c < w):
                                put(j, r, c, np.full(rings[j].channels, pad))
                    for r in range(op.lo, op.hi):
                        for c in range(clo, chi):
                            win = np.stack([np.stack([at(j, r * s - p + ky, c * s - p + kx) for kx in range(kk)], -1)
                                            for ky in range(kk)], -2)  # (C, k, k)  # fmt: skip
                            if layer.type == "conv":
                                wt, b = params[layer.name]
                                g, cing = layer.groups, wt.shape[1]
                                coutg = wt.shape[0] // g
                                v = np.concatenate([np.einsum("oikl,ikl->o", wt[gi * coutg:(gi + 1) * coutg],
                                                              win[gi * cing:(gi + 1) * cing]) for gi in range(g)]) + b
                            else:
                                v = win.max(axis=(1, 2))
                            put(k, r, c, v)
                    for pi in rings[k].pointwise:
                        pl = layers[pi]
                        band = store[k][[r % rings[k].rows for r in range(op.lo, op.hi)]][:, [c - layout.col_base[k][t] for c in range(clo, chi)]]
                        chw = band.transpose(2, 0, 1)
                        chw = reference.relu(chw) if pl.type == "relu" else reference.lrn(chw, pl.local_size, pl.alpha, pl.beta, pl.k)
                        for ri, r in enumerate(range(op.lo, op.hi)):
                            for ci, c in enumerate(range(clo, chi)):
                                put(k, r, c, chw[:, ri, ci])
    return out


def _check(layers, in_shape, tile, strategy, seed=0):
    rng = np.random.default_rng(seed)
    params = reference.random_params(layers, in_shape, rng)
    x = rng.standard_normal((in_shape.channels, in_shape.height, in_shape.width))
    layout = chain_layout(layers, in_shape, tile, strategy, "fp32")
    got = emulate(layout, x, params)
    want = reference.forward(layers, x, params)
    assert np.isfinite(got).all(), "a value was read from a slot nothing wrote (ring too small or evicted)"
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    return layout


@pytest.mark.parametrize("strategy", ["reuse", "recompute"])
@pytest.mark.parametrize("tile", [1, 2, (2, 3), (3, 5)])
def test_alexnet_front_small_input(strategy, tile):
    net = load_network("alexnet")
    _check(net.group("conv1", "pool2")[:], Shape(3, 67, 59), tile, strategy)


@pytest.mark.parametrize("strategy", ["reuse", "recompute"])
@pytest.mark.parametrize("tile", [1, (1, 3), (2, 2)])
def test_vgg_e_first5_small_input(strategy, tile):
    net = load_network("vgg_e")
    layers = tuple(Layer(l.name, l.type, min(l.out_channels, 6) if l.type == "conv" else 0, l.kernel, l.stride,
                         l.pad, l.groups) for l in net.group("conv1_1", "relu3_1"))  # fmt: skip
    _check(layers, Shape(3, 20, 17), tile, strategy)


def test_reuse_computes_each_row_once_per_strip():
    """reuse: MACs = useful x the x-recompute of the strips only; recompute computes more."""
    net = load_network("vgg_e")
    layers = net.group("conv1_1", "relu3_1")
    reuse = chain_layout(layers, net.input, (1, 8), "reuse", "fp16")
    recompute = chain_layout(layers, net.input, (1, 8), "recompute", "fp16")
    useful = useful_macs(layers, net.input)
    assert 1.0 < performed_macs_per_image(reuse) / useful < 1.3
    assert performed_macs_per_image(recompute) > 3 * performed_macs_per_image(reuse)


def test_layout_bytes_and_refusal():
    net = load_network("vgg_e")
    layers = net.group("conv1_1", "relu3_1")
    fp16 = chain_layout(layers, net.input, (1, 8), "reuse", "fp16")
    assert fp16.smem_bytes == sum(-(-r.values * 2 // 16) * 16 for r in fp16.rings)
    assert [r.offset_bytes for r in fp16.rings] == sorted(r.offset_bytes for r in fp16.rings)
    with pytest.raises(ChainError, match="more than the 232448 allowed"):
        check_fits(chain_layout(layers, net.input, (1, 28), "reuse", "fp32"), 232448)
    with pytest.raises(ChainError, match="must start with a conv"):
        chain_layout(net.group("relu1_1", "pool1"), Shape(64, 224, 224), 1, "reuse", "fp32")
    with pytest.raises(ChainError, match="pad 0"):
        chain_layout((Layer("p", "maxpool", kernel=3, stride=2, pad=1),), Shape(4, 9, 9), 1, "reuse", "fp32")


@st.composite
def cases(draw):
    layers, shape = draw(chains(max_channels=7, max_side=21, max_out_per_group=5))
    tile = draw(st.sampled_from([1, 2, (1, 3), (2, 1), (3, 2)]))
    return layers, shape, tile, draw(st.sampled_from(["reuse", "recompute"]))


@settings(max_examples=25, deadline=None)
@given(cases())
def test_random_chains(case):
    layers, in_shape, tile, strategy = case
    _check(layers, in_shape, tile, strategy)


def test_tf32_rounding_matches_cvt_rna():
    """round_to_precision("tf32") keeps 10 mantissa bits, nearest, ties away from zero (cvt.rna)."""
    from kernels.api import round_to_precision

    one = np.float32(1.0)
    ulp = np.float32(2.0**-10)
    x = np.array([1 + ulp / 2, -(1 + ulp / 2), 1 + ulp / 2 - 2**-20, 3.0, 1 + 3 * ulp / 2], np.float32)
    want = np.array([1 + ulp, -(1 + ulp), one, 3.0, 1 + 2 * ulp], np.float32)
    np.testing.assert_array_equal(round_to_precision(x, "tf32"), want)


def test_fragment_order_packing():
    """pack_conv_weights puts each lane's B fragment values where chain.cuh's k16_step loads them."""
    from kernels.chain import pack_conv_weights

    w = np.random.default_rng(0).standard_normal((40, 6, 3, 3)).astype(np.float32)
    groups, coutg, cing, k, kk, kkp, nt = 2, 20, 6, 3, 18, 32, 3  # n_tiles(20) = 3, one co tile
    for prec, halves, per_lane in (("fp16", 1, 4), ("tf32", 2, 2)):
        packed = pack_conv_weights(w, groups, prec).reshape(groups, 1, k, kkp // 16, halves, nt, 32, per_lane)
        for g, ky, step, half, j, lane in np.ndindex(groups, k, kkp // 16, halves, nt, 32):
            gq, tq = lane >> 2, lane & 3
            ks = ([step * 16 + 2 * tq, step * 16 + 2 * tq + 1, step * 16 + 8 + 2 * tq, step * 16 + 9 + 2 * tq]
                  if prec == "fp16" else [step * 16 + half * 8 + tq, step * 16 + half * 8 + tq + 4])  # fmt: skip
            co = j * 8 + gq
            want = [w[g * coutg + co, kq % cing, ky, kq // cing] if co < coutg and kq < kk else 0.0 for kq in ks]
            np.testing.assert_array_equal(packed[g, 0, ky, step, half, j, lane], want)
