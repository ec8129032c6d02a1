"""What every forward pass shares, the hand-written (kernels/api.py) and the generated
(kernels/chain.py) ones: maps stored in a precision, conversions to and from float32, random
weights. Its own module so that both import it and neither the other (kernels.api.make_forward
builds a ChainForward). CuPy is imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core.networks import Layer, Shape

# device storage of maps and weights per precision (bf16 as raw uint16 bits; biases stay float32)
STORAGE_DTYPES = {"fp32": np.float32, "tf32": np.float32, "fp16": np.float16, "bf16": np.uint16}


def torch_precision(precision: str):
    """The torch dtype of a precision's maps and weights, with TF32 allowed in cuDNN and cuBLAS for
    tf32 only (FP32 maps, TF32 products) and off for fp32: how every PyTorch anchor runs it."""
    import torch  # noqa: PLC0415 - optional dependency

    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    return {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def random_params(layers: tuple[Layer, ...], in_shape: Shape, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """He-scaled random weights (float32) from ``seed``, via the reference's generator."""
    from pipeline.core.reference import random_params as ref_random_params

    p = ref_random_params(layers, in_shape, np.random.default_rng(seed))
    return {k: (w.astype(np.float32), b.astype(np.float32)) for k, (w, b) in p.items()}


class StoredMaps:
    """What every forward pass shares: maps stored in the variant's precision (``precision``,
    ``dtype``, ``input_shape``, ``output``), conversions from and to float32, and the checked call."""

    precision: str
    dtype: Any
    input_shape: tuple[int, int, int, int]
    output: Any
    name: str

    def random_input(self, seed: int = 0):
        """Fresh N(0, 1) input of ``input_shape`` on the device in the variant's storage (never zeros)."""
        import cupy

        return self.encode(cupy.random.RandomState(seed).standard_normal(self.input_shape, dtype=cupy.float32))

    def encode(self, a):
        """float32 values (NumPy or CuPy) -> a device array in this variant's storage, rounded to
        nearest even (bf16 as raw uint16 bits: NumPy and CuPy have no bfloat16); tf32: FP32 storage
        holding the values rounded to TF32 (to nearest, ties away: the kernels' cvt.rna), the
        values its products see, so a reference on the decoded input measures the arithmetic."""
        import cupy

        a = cupy.asarray(a, dtype=cupy.float32)
        if self.precision == "bf16":
            return float32_to_bf16_bits(a)
        if self.precision == "tf32":
            return round_to_tf32(a)
        return a.astype(self.dtype)

    def decode(self, a) -> np.ndarray:
        """A device array in this variant's storage -> float32 on the host (exact)."""
        import cupy

        if self.precision == "bf16":
            return cupy.asnumpy(bf16_bits_to_float32(a))
        return cupy.asnumpy(a).astype(np.float32)

    def poison_output(self) -> None:
        """NaN in every output element, so an element no kernel writes fails verification."""
        if self.precision == "bf16":
            self.output.fill(0x7FC0)  # a bf16 quiet NaN
        else:
            import cupy

            self.output.fill(cupy.nan)

    def graph(self, x):
        """A CUDA graph of ``self(x)`` (kernels/graphs.py): a callable that replays the pass on
        CuPy's current stream, writing :attr:`output` as a call would."""
        from kernels.graphs import cupy_graph

        self(x)  # checks the input; anything lazy happens outside the capture
        return cupy_graph(lambda: self._run(x))

    def __call__(self, x):
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"{self.name}: input shape {tuple(x.shape)} != {self.input_shape}")
        if x.dtype != self.dtype:
            raise ValueError(f"{self.name}: input dtype {x.dtype} != {np.dtype(self.dtype)} "
                             f"({self.precision}; Forward.encode converts float32)")
        return self._run(x)


def _to_host(a) -> np.ndarray:
    """float32 host copy of a NumPy or CuPy array (the reference runs on the host)."""
    if hasattr(a, "get"):
        a = a.get()
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def round_to_tf32(a):
    """float32 values (a NumPy or CuPy array) rounded to TF32's 10-bit mantissa, to nearest with
    ties away from zero (the kernels' cvt.rna.tf32), still as float32: on the magnitude bits, add
    half a unit of the 13 dropped bits and clear them."""
    return ((a.view(np.uint32) + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def round_to_precision(a: np.ndarray, precision: str) -> np.ndarray:
    """float32 values rounded to nearest (ties to even; tf32: ties away, as cvt.rna) to the
    precision's storage and back: the numbers a kernel of that precision actually holds (tf32:
    multiplies). fp32 is the identity."""
    a = np.ascontiguousarray(a, np.float32)
    if precision == "fp32":
        return a
    if precision == "fp16":
        return a.astype(np.float16).astype(np.float32)
    if precision == "tf32":
        return round_to_tf32(a)
    if precision == "bf16":
        return bf16_bits_to_float32(float32_to_bf16_bits(a))
    raise ValueError(f"unknown precision {precision!r}")


def float32_to_bf16_bits(a):
    """bf16 bits (uint16) of float32 values, round to nearest even; NumPy or CuPy arrays."""
    xp = _array_module(a)
    u = xp.ascontiguousarray(a, dtype=xp.float32).view(xp.uint32)
    return ((u + xp.uint32(0x7FFF) + ((u >> 16) & xp.uint32(1))) >> 16).astype(xp.uint16)


def bf16_bits_to_float32(bits):
    xp = _array_module(bits)
    return (xp.asarray(bits, dtype=xp.uint16).astype(xp.uint32) << 16).view(xp.float32)


def _array_module(a):
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np
