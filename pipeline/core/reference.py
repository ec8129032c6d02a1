"""NumPy float64 reference of every layer type: the ground truth that every kernel is checked against.

Each layer function takes a batch ``(N, C, H, W)`` and also accepts a single image ``(C, H, W)``
(the result then has the same rank). Everything is vectorised (im2col through
``sliding_window_view`` + matmul), so AlexNet conv1..pool2 at batch 2 runs in about a second on a
laptop core. Conventions follow ``docs/design.md``: floor rounding, ``(in + 2*pad - k)//stride + 1``,
Caffe's across-channel LRN, conv weights ``(out_c, in_c/groups, k, k)``, fc weights ``(out, in)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.core.networks import Layer, Shape, output_shape

Params = dict[str, tuple[np.ndarray, np.ndarray]]


def _batched(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Let a batch function also take one (C, H, W) image: add the batch axis, then drop it again."""

    def wrapper(x: np.ndarray, *args, **kwargs) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            return fn(x[None], *args, **kwargs)[0]
        if x.ndim != 4:
            raise ValueError(f"{fn.__name__}: expected (N, C, H, W) or (C, H, W), got shape {x.shape}")
        return fn(x, *args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _pad_hw(x: np.ndarray, pad: int, value: float) -> np.ndarray:
    """Pad the two spatial axes of an NCHW array; padding belongs to a layer's input."""
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


def _windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Strided k x k windows of an (already padded) array: (..., H_out, W_out, k, k), a view.

    Slicing ``::stride`` of the stride-1 windows yields exactly ``(H - k)//stride + 1`` rows,
    i.e. floor rounding.
    """
    if x.shape[-2] < kernel or x.shape[-1] < kernel:
        raise ValueError(f"a {kernel}x{kernel} window does not fit a {x.shape[-2]}x{x.shape[-1]} map")
    win = sliding_window_view(x, (kernel, kernel), axis=(-2, -1))
    return win[..., ::stride, ::stride, :, :]


@_batched
def conv2d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, pad: int = 0, groups: int = 1
) -> np.ndarray:
    """Grouped 2-D cross-correlation (Caffe/PyTorch conv) with zero padding, by im2col + matmul.

    x: (N, C, H, W); w: (out_c, C/groups, k, k); b: (out_c,) or None. Returns (N, out_c, Ho, Wo).
    """
    n, c, _, _ = x.shape
    out_c, cg, k, k2 = w.shape
    if k != k2:
        raise ValueError(f"conv2d: only square kernels, got {k}x{k2}")
    if c % groups or out_c % groups or cg != c // groups:
        raise ValueError(f"conv2d: x has {c} channels, w is {w.shape}, groups={groups}: inconsistent")
    xp = _pad_hw(x, pad, 0.0).reshape(n, groups, cg, x.shape[2] + 2 * pad, x.shape[3] + 2 * pad)
    win = _windows(xp, k, stride)  # (N, G, Cg, Ho, Wo, k, k)
    ho, wo = win.shape[3], win.shape[4]
    cols = win.transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, groups, ho * wo, cg * k * k)
    wm = w.reshape(groups, out_c // groups, cg * k * k).transpose(0, 2, 1)  # (G, Cg*k*k, Og)
    out = np.matmul(cols, wm[None])  # (N, G, Ho*Wo, Og)
    out = out.transpose(0, 1, 3, 2).reshape(n, out_c, ho, wo)
    if b is not None:
        out = out + np.asarray(b).reshape(1, out_c, 1, 1)
    return out


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), any shape."""
    return np.maximum(x, 0.0)


@_batched
def lrn(x: np.ndarray, local_size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> np.ndarray:
    """Caffe's across-channel LRN: b_c = a_c / (k + alpha/n * sum_{c' in window(c)} a_c'^2)^beta.

    The window of channel c is ``[c - (n-1)//2, c - (n-1)//2 + n)`` (centred for odd n, Caffe's
    ``pre_pad``); channels outside ``[0, C)`` count as zero. It mixes channels only, never space.
    """
    n_ch = x.shape[1]
    pre = (local_size - 1) // 2
    sq = np.pad(x * x, ((0, 0), (pre, local_size - 1 - pre), (0, 0), (0, 0)))
    window_sum = np.zeros_like(x, dtype=np.result_type(x, np.float64))
    for offset in range(local_size):
        window_sum += sq[:, offset : offset + n_ch]
    return x / (k + alpha / local_size * window_sum) ** beta


@_batched
def maxpool(x: np.ndarray, kernel: int, stride: int, pad: int = 0) -> np.ndarray:
    """Max pool with floor rounding; padded positions are -inf so they never win."""
    return _windows(_pad_hw(x, pad, -np.inf), kernel, stride).max(axis=(-2, -1))


@_batched
def fc(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Fully connected layer on the flattened (C*H*W) input; w: (out, C*H*W).

    Returns (N, out, 1, 1) so a chain stays NCHW, matching ``networks.output_shape``.
    """
    out = x.reshape(x.shape[0], -1) @ w.T
    if b is not None:
        out = out + b
    return out[:, :, None, None]


def apply_layer(layer: Layer, x: np.ndarray, params: Params) -> np.ndarray:
    """One layer of a chain on (N, C, H, W) or (C, H, W), with its own stride/pad from ``layer``."""
    if layer.type == "conv":
        w, b = params[layer.name]
        return conv2d(x, w, b, layer.stride, layer.pad, layer.groups)
    if layer.type == "relu":
        return relu(x)
    if layer.type == "lrn":
        return lrn(x, layer.local_size, layer.alpha, layer.beta, layer.k)
    if layer.type == "maxpool":
        return maxpool(x, layer.kernel, layer.stride, layer.pad)
    if layer.type == "fc":
        w, b = params[layer.name]
        return fc(x, w, b)
    raise ValueError(f"layer {layer.name!r}: unknown type {layer.type!r}")


def forward(layers: Sequence[Layer], x: np.ndarray, params: Params) -> np.ndarray:
    """Run a chain layer by layer (the float64 ground truth); keeps x's rank (3 or 4)."""
    for layer in layers:
        x = apply_layer(layer, x, params)
    return x


def _as_shape(in_shape: Shape | Sequence[int]) -> Shape:
    if isinstance(in_shape, Shape):
        return in_shape
    c, h, w = (int(v) for v in in_shape)
    return Shape(c, h, w)


def random_params(
    layers: Sequence[Layer], in_shape: Shape | Sequence[int], rng: np.random.Generator, dtype=np.float64
) -> Params:
    """Random weights and biases for every conv/fc layer, He-scaled: w ~ N(0, 2/fan_in).

    Why the scaling: the GPU check compares *relative* errors, which only mean something when
    activations stay O(1) through the chain; unscaled N(0, 1) weights grow activations by
    ~sqrt(fan_in) per layer (363 for AlexNet conv1, 1200 for conv2). LRN is nonlinear, so the
    scale also picks which regime is tested: with O(1) activations the denominator stays near
    k^beta, as with real images, instead of being dominated by alpha * sum(a^2). fan_in is
    (in_c/groups)*k*k for conv, C*H*W for fc; 2 rather than 1 because relu halves the variance.
    Biases are small (N(0, 0.1^2)) but nonzero, so a kernel that drops them fails.
    """
    shape = _as_shape(in_shape)
    params: Params = {}
    for layer in layers:
        if layer.type == "conv":
            cg = shape.channels // layer.groups
            fan_in = cg * layer.kernel * layer.kernel
            w_shape = (layer.out_channels, cg, layer.kernel, layer.kernel)
        elif layer.type == "fc":
            fan_in = shape.values
            w_shape = (layer.out_channels, fan_in)
        else:
            shape = output_shape(layer, shape)
            continue
        w = rng.standard_normal(w_shape) * np.sqrt(2.0 / fan_in)
        b = rng.standard_normal(layer.out_channels) * 0.1
        params[layer.name] = (w.astype(dtype), b.astype(dtype))
        shape = output_shape(layer, shape)
    return params


def layer_macs(layer: Layer, in_shape: Shape | Sequence[int]) -> int:
    """Multiply-adds of one layer for one image: out_c*Ho*Wo*(C/groups)*k*k (conv), out*in (fc), else 0."""
    shape = _as_shape(in_shape)
    if layer.type == "fc":
        return layer.out_channels * shape.values
    if layer.type != "conv":
        return 0
    out = output_shape(layer, shape)
    return out.values * (shape.channels // layer.groups) * layer.kernel * layer.kernel


def count_macs(layers: Sequence[Layer], in_shape: Shape | Sequence[int]) -> dict[str, int]:
    """MACs per image of every layer, in chain order (name -> MACs; 0 for relu/lrn/maxpool)."""
    shape = _as_shape(in_shape)
    macs: dict[str, int] = {}
    for layer in layers:
        macs[layer.name] = layer_macs(layer, shape)
        shape = output_shape(layer, shape)
    return macs


def compare(out: np.ndarray, ref: np.ndarray) -> dict:
    """Relative L2 error, max abs error scaled by max |ref|, and the count of non-finite outputs."""
    out64 = np.asarray(out, np.float64)
    ref64 = np.asarray(ref, np.float64)
    nonfinite = int(out64.size - np.isfinite(out64).sum())
    diff = np.where(np.isfinite(out64), out64 - ref64, np.inf)
    ref_norm = float(np.linalg.norm(ref64)) or 1.0
    ref_max = float(np.abs(ref64).max()) or 1.0
    return {
        "rel_l2_error": float(np.linalg.norm(diff)) / ref_norm if nonfinite == 0 else float("inf"),
        "max_abs_error_scaled": float(np.abs(diff).max()) / ref_max,
        "nonfinite_outputs": nonfinite,
    }
