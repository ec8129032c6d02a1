"""The program Nsight Compute profiles: build one Forward, warm up, run ONE pass in an NVTX range.

    python pipeline/stages/profile_target.py --variant lbl --batch 8 --cubin results/h100/build/lbl.cubin

Why a separate program: ncu replays what runs between the NVTX push and pop, so everything
else (module load, allocation, random inputs, warm-up) must happen outside that range. Warm-up
also fills CuPy's memory pool, so the measured pass allocates from the pool instead of calling
cudaMalloc inside the range (range replay saves and restores device memory it knows of).

The range is a push/pop range named ``measure`` in NVTX's default domain (ncu filter
``--nvtx-include measure/``; in ncu's filter syntax ``/`` separates nested push/pop ranges, so
the variant is not put into the range name; ncu.py records it in profile.json instead).

``--factory module:function`` swaps the Forward builder (default ``kernels.api:make_forward``);
``pipeline.stages.profile_target:make_selftest_forward`` is a tiny two-kernel pass with known FLOPs
and bytes, used by the tests and to record the parser fixtures.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script by ncu, from any working directory
    sys.path.insert(0, str(ROOT))

RANGE_NAME = "measure"

_SELFTEST_SRC = r"""
extern "C" __global__ void selftest_ffma(const float* __restrict__ x, float* __restrict__ y,
                                          float a, float b, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = __fmaf_rn(x[i], a, b);        // 1 FFMA: 2 FLOPs per element
}
extern "C" __global__ void selftest_fmul(const float* __restrict__ y, float* __restrict__ z,
                                          long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) z[i] = __fmul_rn(y[i], y[i]);        // 1 FMUL: 1 FLOP per element
}
"""


class SelftestForward:
    """Two elementwise kernels over a (batch, 1, H, W) float32 map: y = x*a + b, z = y*y.

    Exactly 3 FLOPs per pixel (one FFMA counted twice, one FMUL) and, when the map is larger
    than L2, about 4 x 4 bytes of DRAM traffic per pixel: known answers for the ncu tests.
    """

    kernels = ("selftest_ffma", "selftest_fmul")

    def __init__(self, batch: int, height: int, width: int, seed: int = 0):
        import cupy

        self._cp = cupy
        mod = cupy.RawModule(code=_SELFTEST_SRC)
        self._ffma = mod.get_function("selftest_ffma")
        self._fmul = mod.get_function("selftest_fmul")
        self.input_shape = (batch, 1, height, width)
        self.output_shape = self.input_shape
        self.n = batch * height * width
        self.useful_macs_per_image = 0
        self.flops_per_image = 3 * height * width
        self.seed = seed

    def random_input(self, seed: int = 0):
        rng = self._cp.random.default_rng(seed)
        return rng.standard_normal(self.input_shape, dtype=self._cp.float32)

    def __call__(self, x):
        import numpy as np

        cp = self._cp
        y = cp.empty_like(x)
        z = cp.empty_like(x)
        threads = 256
        blocks = (self.n + threads - 1) // threads
        n = np.int64(self.n)
        self._ffma((blocks,), (threads,), (x, y, np.float32(1.5), np.float32(0.25), n))
        self._fmul((blocks,), (threads,), (y, z, n))
        return z


def make_selftest_forward(variant, batch, height=227, width=227, params=None, cubin=None, seed=0):
    """Same signature as ``kernels.api.make_forward``; ``variant``, ``params``, ``cubin`` unused."""
    return SelftestForward(batch, height, width, seed)


def load_factory(spec: str):
    """``"module:function"`` -> the function (the Forward builder)."""
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"--factory wants module:function, got {spec!r}")
    return getattr(importlib.import_module(module), name)


@contextlib.contextmanager
def nvtx_range(name: str):
    """A push/pop NVTX range through CuPy (``cupy.cuda.nvtx``); fails loudly if NVTX is absent,
    since a profile without its range would silently measure nothing."""
    from cupy.cuda import nvtx

    if hasattr(nvtx, "available") and not nvtx.available:
        raise RuntimeError("CuPy was built without NVTX; ncu cannot find the measured range")
    nvtx.RangePush(name)
    try:
        yield
    finally:
        nvtx.RangePop()


def run_target(
    variant: str,
    batch: int,
    height: int,
    width: int,
    cubin: str | None,
    warmup: int,
    factory: str = "kernels.api:make_forward",
    seed: int = 0,
    range_name: str = RANGE_NAME,
) -> None:
    """Build, warm up (outside the range), then one synchronised pass inside the range."""
    import cupy

    fwd = load_factory(factory)(variant, batch, height=height, width=width, params=None, cubin=cubin, seed=seed)
    x = fwd.random_input(seed)
    stream = cupy.cuda.get_current_stream()
    for _ in range(max(1, warmup)):
        fwd(x)
    stream.synchronize()
    with nvtx_range(range_name):
        fwd(x)
        stream.synchronize()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--height", type=int, default=227)
    ap.add_argument("--width", type=int, default=227)
    ap.add_argument("--cubin", default=None)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factory", default="kernels.api:make_forward")
    ap.add_argument("--range-name", default=RANGE_NAME)
    a = ap.parse_args(argv)
    run_target(a.variant, a.batch, a.height, a.width, a.cubin, a.warmup, a.factory, a.seed, a.range_name)


if __name__ == "__main__":
    main()
