"""Verify stage: each variant on fresh random inputs and weights against the float64 reference.

A variant that fails raises :class:`VerificationError`, so its Snakemake rule fails and it never
reaches measurement or the report.
"""

import logging

import numpy as np

log = logging.getLogger(__name__)

# Largest relative L2 error against the float64 reference, per precision (config verify.rtol; the
# max abs error, scaled by max |ref|, may reach 10x). Justified in verify() and docs/measurement.md.
DEFAULT_RTOL = {"fp32": 1e-4, "tf32": 2.5e-3, "fp16": 2.5e-3, "bf16": 2e-2}


class VerificationError(AssertionError):
    """A variant's output differs from the float64 reference by more than the tolerance."""


def verify(variant: str, batch: int, height: int = 227, width: int = 227, cubin: str | None = None,
           seed: int = 0, rtol: float | None = None) -> dict:  # fmt: skip
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

    fp16 and bf16: the reference runs on the input and weights rounded to the precision, so what is
    left is the kernels' own rounding: products are exact and sums FP32 on the tensor cores, but
    five maps are stored in 16 bits (conv1, norm1, conv2, norm2 out and pool2; max pool is exact),
    each rounding relative error at most u (2^-11 fp16, 2^-8 bf16), about u/sqrt(3) RMS for
    round-to-nearest over random data. Passed on with gains of order one, they add up in quadrature
    to about sqrt(5) * u / sqrt(3) = 1.3 u: 6e-4 (fp16), 5e-3 (bf16). ``rtol`` defaults to 4x that
    (``DEFAULT_RTOL``); a wrong index or missed halo is still 1e-2..1 (for bf16, a missed halo at
    the map edge in one tile of 169 would give about 1e-2 but fail the max abs check).

    tf32 (hand-written and generated kernels): maps stay FP32, but every conv rounds its operands
    to TF32's 10-bit mantissa (cvt.rna, u = 2^-11; the reference holds the rounded input and
    weights: ``encode`` and ``Forward.params``), so the rounding budget is fp16's and so is the
    tolerance.
    """
    from kernels.registry import Variant

    rtol = DEFAULT_RTOL[Variant.parse(variant).precision] if rtol is None else rtol
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
    from pipeline.core.reference import forward as ref_forward

    # fwd.params and the decoded input are the values the kernels hold (rounded to 16 bits for
    # fp16/bf16, to TF32 for tf32), so the reference measures the arithmetic, not the rounding of the data
    ref_params = {k: (w.astype(np.float64), b.astype(np.float64)) for k, (w, b) in fwd.params.items()}
    return ref_forward(fwd.layers, fwd.decode(x).astype(np.float64), ref_params)


def check_forward(fwd, x, ref: np.ndarray, rtol: float | None = None) -> dict:
    """Run ``fwd`` once on ``x`` into a NaN-poisoned output and judge it against ``ref`` (see
    :func:`verify` for the tolerance): the comparison record with ``passed``."""
    import cupy

    from pipeline.core.reference import compare

    rtol = DEFAULT_RTOL[fwd.precision] if rtol is None else rtol
    fwd.poison_output()
    out = fwd(x)
    cupy.cuda.get_current_stream().synchronize()
    res = compare(fwd.decode(out), ref)
    res.update({"variant": fwd.name, "rtol": float(rtol), "output_shape": list(fwd.output_shape),
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
