"""Verify stage: each variant on fresh random inputs and weights against the float64 reference.

A variant that fails raises :class:`VerificationError`, so its Snakemake rule fails and it never
reaches measurement or the report.
"""

import logging

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_RTOL = 1e-4


class VerificationError(AssertionError):
    """A variant's output differs from the float64 reference by more than the tolerance."""


def verify(variant: str, batch: int, height: int = 227, width: int = 227, cubin: str | None = None,
           seed: int = 0, rtol: float = DEFAULT_RTOL) -> dict:  # fmt: skip
    """Run ``variant`` once on fresh random data and compare with ``pipeline.core.reference.forward``.

    Tolerance: every output is an FP32 chain of two dot products (K = 363 for conv1, K = 1200 for
    conv2), LRN (a pow) and max. Rounding in a K-term FP32 sum grows like sqrt(K) * 2^-24 for
    random signs (about 2e-6 at K = 1200) and at worst K * 2^-24 = 7e-5; LRN and the second conv
    pass the relative error on with a gain of order one. ``rtol`` = 1e-4 on the relative L2 error
    is therefore above any correct FP32 ordering of the sums (TF32 would land near 3e-4 and fail,
    as it should), while a wrong index, a missed halo or an unwritten tile gives errors of order
    1e-2..1. The max abs error (scaled by max |ref|) must stay below 10 * rtol, so a few bad
    pixels cannot hide in the norm. Outputs are poisoned with NaN first: an unwritten element
    fails as non-finite.
    """
    from kernels.api import make_forward

    fwd = make_forward(variant, batch, height, width, params=None, cubin=cubin, seed=seed)
    x = fwd.random_input(seed + 1)
    res = check_forward(fwd, x, reference_output(fwd, x), rtol)
    res.update({"batch": int(batch), "height": int(height), "width": int(width), "seed": int(seed),
                "cubin": str(cubin) if cubin else None})  # fmt: skip
    log.info("verify %s b%d %dx%d: %s", variant, batch, height, width, res)
    if not res["passed"]:
        raise VerificationError(
            f"variant {variant!r} failed verification at batch {batch}, {height}x{width}: "
            f"rel L2 error {res['rel_l2_error']:.3g} (rtol {rtol:g}), max abs error/max|ref| "
            f"{res['max_abs_error_scaled']:.3g}, {res['nonfinite_outputs']} non-finite outputs"
        )
    return res


def reference_output(fwd, x) -> np.ndarray:
    """The float64 reference of ``fwd``'s layers on the input ``x`` with ``fwd``'s weights."""
    import cupy

    from pipeline.core.reference import forward as ref_forward

    ref_params = {k: (w.astype(np.float64), b.astype(np.float64)) for k, (w, b) in fwd.params.items()}
    return ref_forward(fwd.layers, cupy.asnumpy(x).astype(np.float64), ref_params)


def check_forward(fwd, x, ref: np.ndarray, rtol: float = DEFAULT_RTOL) -> dict:
    """Run ``fwd`` once on ``x`` into a NaN-poisoned output and judge it against ``ref`` (see
    :func:`verify` for the tolerance): the comparison record with ``passed``."""
    import cupy

    from pipeline.core.reference import compare

    fwd.output.fill(cupy.nan)
    out = fwd(x)
    cupy.cuda.get_current_stream().synchronize()
    res = compare(cupy.asnumpy(out), ref)
    res.update({"variant": fwd.variant.name, "rtol": float(rtol), "output_shape": list(fwd.output_shape),
                "kernels": list(fwd.kernels)})  # fmt: skip
    res["passed"] = bool(
        res["nonfinite_outputs"] == 0 and res["rel_l2_error"] <= rtol and res["max_abs_error_scaled"] <= 10 * rtol
    )
    return res


if __name__ == "__main__":  # only under Snakemake's script: directive
    import os

    from pipeline.stages.job import network_input_hw, run_stage, single_path

    def body(sm, v):
        height, width = network_input_hw(sm.wildcards.network)
        seed = int.from_bytes(os.urandom(4), "little")  # fresh inputs and weights every run; recorded
        return verify(v.name, int(sm.params.batch), height, width, single_path(sm.input.get("cubin")), seed,
                      float(sm.params.rtol))  # fmt: skip

    run_stage(snakemake, body, gpu=True)  # noqa: F821
