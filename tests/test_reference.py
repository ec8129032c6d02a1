"""The float64 reference against independent naive loops, hand-computed values and (if present) torch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import reference as R
from pipeline.core.networks import Layer, Shape, load_network

RTOL = 1e-12


# ---- naive loop implementations: deliberately written differently from the vectorised code ----


def naive_conv(x, w, b, stride, pad, groups):
    n, c, h, wd = x.shape
    oc, cg, k, _ = w.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    og = oc // groups
    out = np.zeros((n, oc, ho, wo))
    for bi, o, oy, ox in itertools.product(range(n), range(oc), range(ho), range(wo)):
        g = o // og
        acc = b[o]
        for ci, ky, kx in itertools.product(range(cg), range(k), range(k)):
            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
            if 0 <= iy < h and 0 <= ix < wd:
                acc += x[bi, g * cg + ci, iy, ix] * w[o, ci, ky, kx]
        out[bi, o, oy, ox] = acc
    return out


def naive_maxpool(x, k, stride, pad):
    n, c, h, wd = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.full((n, c, ho, wo), -np.inf)
    for bi, ci, oy, ox, ky, kx in itertools.product(range(n), range(c), range(ho), range(wo), range(k), range(k)):
        iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
        if 0 <= iy < h and 0 <= ix < wd:
            out[bi, ci, oy, ox] = max(out[bi, ci, oy, ox], x[bi, ci, iy, ix])
    return out


def naive_lrn(x, size, alpha, beta, k):
    out = np.empty_like(x)
    c = x.shape[1]
    for ci in range(c):
        lo = ci - (size - 1) // 2
        s = sum(x[:, j] ** 2 for j in range(max(lo, 0), min(lo + size, c)))
        out[:, ci] = x[:, ci] / (k + alpha / size * s) ** beta
    return out


conv_cases = st.tuples(
    st.integers(1, 2),  # batch
    st.integers(1, 2),  # groups
    st.integers(1, 3),  # in channels per group
    st.integers(1, 3),  # out channels per group
    st.integers(1, 5),  # kernel
    st.integers(1, 3),  # stride
    st.integers(0, 2),  # pad
    st.integers(0, 6),  # extra height beyond the kernel
    st.integers(0, 6),  # extra width
)


@settings(max_examples=40, deadline=None)
@given(conv_cases, st.integers(0, 2**32 - 1))
def test_conv2d_matches_naive_loops(case, seed):
    n, g, cg, og, k, s, p, eh, ew = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, g * cg, max(k - 2 * p, 1) + eh, max(k - 2 * p, 1) + ew))
    w = rng.standard_normal((g * og, cg, k, k))
    b = rng.standard_normal(g * og)
    got = R.conv2d(x, w, b, s, p, g)
    np.testing.assert_allclose(got, naive_conv(x, w, b, s, p, g), rtol=RTOL, atol=1e-12)


def test_conv2d_single_image_and_no_bias():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    got = R.conv2d(x, w, None, 2, 1, 2)
    assert got.shape == (6, 4, 3)
    np.testing.assert_allclose(got, naive_conv(x[None], w, np.zeros(6), 2, 1, 2)[0], rtol=RTOL, atol=1e-12)


def test_conv2d_rejects_inconsistent_groups():
    with pytest.raises(ValueError, match="groups"):
        R.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)), None, 1, 0, 2)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 3), st.integers(1, 2), st.integers(0, 1), st.integers(0, 5), st.integers(0, 5),
    st.integers(0, 2**32 - 1),
)
def test_maxpool_matches_naive_loops(k, s, p, eh, ew, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, k + eh, k + ew))
    np.testing.assert_array_equal(R.maxpool(x, k, s, p), naive_maxpool(x, k, s, p))


def test_maxpool_padding_never_wins():
    x = -np.ones((1, 1, 3, 3)) * 5.0  # all negative: zero padding would wrongly win
    assert (R.maxpool(x, 3, 2, 1) == -5.0).all()


def test_maxpool_floor_rounding():
    assert R.maxpool(np.zeros((1, 1, 8, 9)), 3, 2).shape == (1, 1, 3, 4)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(1, 9), st.floats(1e-4, 2.0), st.floats(0.5, 1.0), st.floats(0.5, 2.0),
       st.integers(0, 2**32 - 1))
def test_lrn_matches_naive_loops(size, channels, alpha, beta, k, seed):
    x = np.random.default_rng(seed).standard_normal((2, channels, 3, 2))
    np.testing.assert_allclose(R.lrn(x, size, alpha, beta, k), naive_lrn(x, size, alpha, beta, k), rtol=RTOL)


def test_lrn_hand_computed():
    # one pixel with channels (1, 2, 3); n=3, alpha=3, beta=1, k=1:
    # window sums 0+1+4=5, 1+4+9=14, 4+9+0=13 -> b = 1/(1+5), 2/(1+14), 3/(1+13)
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(R.lrn(x, 3, 3.0, 1.0, 1.0).ravel(), [1 / 6, 2 / 15, 3 / 14], rtol=RTOL)
    # AlexNet's norm1 (5, 1e-4, 0.75, k=2): every window holds all three channels, sum = 14
    want = np.array([1.0, 2.0, 3.0]) / (2.0 + 1e-4 / 5 * 14) ** 0.75
    np.testing.assert_allclose(R.lrn(x, 5, 1e-4, 0.75, 2.0).ravel(), want, rtol=RTOL)


def test_relu_and_fc():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_array_equal(R.relu(x), np.where(x > 0, x, 0.0))
    w, b = rng.standard_normal((5, 12)), rng.standard_normal(5)
    want = np.array([[sum(x[i].ravel()[j] * w[o, j] for j in range(12)) + b[o] for o in range(5)] for i in range(2)])
    got = R.fc(x, w, b)
    assert got.shape == (2, 5, 1, 1)
    np.testing.assert_allclose(got[:, :, 0, 0], want, rtol=RTOL)
    np.testing.assert_allclose(R.fc(x[0], w, b), got[0], rtol=RTOL)


def small_chain():
    return (
        Layer("c1", "conv", out_channels=4, kernel=3, stride=2, pad=1),
        Layer("r1", "relu"),
        Layer("n1", "lrn", local_size=3, alpha=0.5, beta=0.75, k=1.0),
        Layer("p1", "maxpool", kernel=2, stride=1),
        Layer("c2", "conv", out_channels=2, kernel=2, groups=2),
        Layer("f1", "fc", out_channels=3),
    )


def test_forward_composes_the_naive_layers():
    layers = small_chain()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 9, 8))
    params = R.random_params(layers, (2, 9, 8), rng)
    h = naive_conv(x, *params["c1"], 2, 1, 1)
    h = naive_lrn(np.maximum(h, 0), 3, 0.5, 0.75, 1.0)
    h = naive_conv(naive_maxpool(h, 2, 1, 0), *params["c2"], 1, 0, 2)
    w, b = params["f1"]
    want = h.reshape(2, -1) @ w.T + b
    got = R.forward(layers, x, params)
    np.testing.assert_allclose(got[:, :, 0, 0], want, rtol=RTOL)
    np.testing.assert_allclose(R.forward(layers, x[1], params), got[1], rtol=RTOL)


def test_random_params_shapes_dtype_and_scale():
    net = load_network("alexnet")
    group = net.group("conv1", "pool2")
    rng = np.random.default_rng(4)
    params = R.random_params(group, net.input, rng, dtype=np.float32)
    assert set(params) == {"conv1", "conv2"}
    assert params["conv1"][0].shape == (96, 3, 11, 11) and params["conv2"][0].shape == (256, 48, 5, 5)
    assert params["conv2"][0].dtype == np.float32
    assert abs(params["conv2"][0].std() * np.sqrt(48 * 25 / 2) - 1) < 0.05  # He scaling: N(0, 2/fan_in)
    out = R.forward(group, rng.standard_normal((1, 3, 227, 227)), R.random_params(group, net.input, rng))
    assert out.shape == (1, 256, 13, 13)
    assert 0.1 < out.std() < 10  # activations stay O(1) through relu, LRN and pool


def test_count_macs_alexnet():
    net = load_network("alexnet")
    macs = R.count_macs(net.group("conv1", "pool2"), net.input)
    assert macs["conv1"] == 96 * 55 * 55 * 3 * 11 * 11 == 105_415_200
    assert macs["conv2"] == 256 * 27 * 27 * 48 * 5 * 5 == 223_948_800
    assert macs["relu1"] == macs["norm1"] == macs["pool1"] == macs["pool2"] == 0
    assert R.count_macs(net.layers, Shape(3, 227, 227))["fc6"] == 4096 * 256 * 6 * 6


def test_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 13, 11))
    w, b = rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    t = torch.from_numpy
    np.testing.assert_allclose(
        R.conv2d(x, w, b, 2, 1, 2), F.conv2d(t(x), t(w), t(b), stride=2, padding=1, groups=2).numpy(), rtol=1e-10
    )
    np.testing.assert_allclose(R.maxpool(x, 3, 2, 1), F.max_pool2d(t(x), 3, 2, 1).numpy())
    # torch's local_response_norm is Caffe's formula (alpha divided by n, zero-padded window)
    np.testing.assert_allclose(
        R.lrn(x, 5, 1e-1, 0.75, 2.0), F.local_response_norm(t(x), 5, alpha=1e-1, beta=0.75, k=2.0).numpy(), rtol=1e-10
    )
