"""Where a variant's time goes, phase by phase: the ``phases`` stage (GPU).

The same layer vocabulary for both kinds of variant, so they stack side by side in the report:

- ``lbl``: one kernel per layer (a conv carries its ReLU). Each kernel is timed alone with CUDA
  events inside the forward pass, median over many passes.
- fused: one kernel. Built once more with ``-DPHASE_TIMING=1``: thread 0 of every block reads the
  SM clock after each barrier that ends a phase (kernels/fused.cu, ``enum Phase``), and the cycles
  are summed over all blocks. That build is checked against the timed kernel's output and timed
  too, so the report states how much the marks perturb the kernel.

Shares of the summed time are scaled to the timed (uninstrumented) median, so a phase's
``us_per_image`` is its part of the number the speed figures show. Cycles summed over blocks give
the phase mix, not a critical path: blocks run concurrently on different SMs.
"""

import re
import time
from typing import Any, Sequence

import numpy as np

from pipeline.core.gpu import REPO

FUSED_SOURCE = REPO / "kernels" / "fused.cu"
PHASE_DEFINE = (("PHASE_TIMING", 1),)
WARM_S = 0.5  # GPU time before any timing: from idle the SM clock needs a while to ramp up


def fused_phase_names(source: str | None = None) -> tuple[str, ...]:
    """Phase names from ``enum Phase { PH_SHIFT, PH_CONV1, ..., NPHASE }`` in a fused kernel's
    source text (default kernels/fused.cu), lower case without the prefix: the kernel is the one
    place they are defined."""
    text = FUSED_SOURCE.read_text() if source is None else source
    m = re.search(r"enum\s+Phase\s*\{([^}]*)\}", text)
    if m is None:
        raise ValueError("kernels/fused.cu has no `enum Phase { ... }`: phase timing cannot name its counters")
    names = [n.strip() for n in m.group(1).split(",") if n.strip()]
    if not names or names[-1] != "NPHASE" or not all(n.startswith("PH_") for n in names[:-1]):
        raise ValueError(f"enum Phase must list PH_* names and end with NPHASE, got {names}")
    return tuple(n[3:].lower() for n in names[:-1])


def phase_rows(names: Sequence[str], amounts: Sequence[float], us_per_image: float) -> list[dict]:
    """One row per phase: its share of the summed amounts and that share of ``us_per_image``."""
    a = np.asarray(amounts, dtype=np.float64)
    if a.shape != (len(names),):
        raise ValueError(f"{len(names)} phase names but {a.size} amounts")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
        raise ValueError(f"phase amounts must be finite, non-negative and not all zero: {a.tolist()}")
    share = a / a.sum()
    return [{"phase": n, "amount": float(x), "share": float(s), "us_per_image": float(s * us_per_image)}
            for n, x, s in zip(names, a, share)]  # fmt: skip


def _warm(fn, seconds: float = WARM_S, at_least: int = 3) -> None:
    """Run ``fn(i)`` until ``seconds`` of GPU time have passed: clocks ramp up from idle."""
    import cupy

    t0, i = time.perf_counter(), 0
    while i < at_least or time.perf_counter() - t0 < seconds:
        fn(i)
        i += 1
        if i % 8 == 0:
            cupy.cuda.get_current_stream().synchronize()
    cupy.cuda.get_current_stream().synchronize()


def _median_us(fn, launches: int) -> float:
    """Median of ``launches`` CUDA-event timings of ``fn(i)`` on the current stream (us), warm."""
    import cupy

    stream = cupy.cuda.get_current_stream()
    _warm(fn)
    ev = [cupy.cuda.Event() for _ in range(launches + 1)]
    ev[0].record(stream)
    for i in range(launches):
        fn(i)
        ev[i + 1].record(stream)
    ev[-1].synchronize()
    return float(np.median([cupy.cuda.get_elapsed_time(ev[i], ev[i + 1]) * 1e3 for i in range(launches)]))


def lbl_phases(fwd: Any, inputs: list, launches: int) -> dict:
    """Per-kernel CUDA-event medians of an lbl Forward, inside complete forward passes."""
    import cupy

    stream = cupy.cuda.get_current_stream()
    n = len(fwd.step_layers)
    _warm(lambda i: fwd(inputs[i % len(inputs)]))
    per_step = [[] for _ in range(n)]
    for r in range(launches):
        x = inputs[r % len(inputs)]
        ev = [cupy.cuda.Event() for _ in range(n + 1)]
        ev[0].record(stream)
        for i in range(n):
            fwd.run_step(i, x)
            ev[i + 1].record(stream)
        ev[-1].synchronize()
        for i in range(n):
            per_step[i].append(cupy.cuda.get_elapsed_time(ev[i], ev[i + 1]) * 1e3)
    med = [float(np.median(t)) for t in per_step]
    return {"method": "CUDA events around each kernel, median over passes", "names": list(fwd.step_layers),
            "amounts": med, "amount_unit": "us_per_batch"}  # fmt: skip


def fused_phases(variant: str, batch: int, height: int, width: int, params: dict, inputs: list, launches: int,
                 reference_out) -> dict:  # fmt: skip
    """Phase cycles of the fused variant's instrumented build, summed over all blocks of
    ``launches`` passes; its output is compared with the timed kernel's (``reference_out``)."""
    import cupy

    from kernels.api import make_forward

    from kernels.registry import VARIANTS
    from pipeline.core.reference import compare

    names = fused_phase_names((REPO / VARIANTS[variant].source).read_text())  # fused.cu or fused_tc.cu
    inst = make_forward(variant, batch, height, width, params=params, cubin=None, defines=PHASE_DEFINE)
    max_rel_diff = compare(inst.decode(inst(inputs[0])), inst.decode(reference_out))["max_abs_error_scaled"]
    counters = cupy.ndarray((len(names) + 1,), cupy.uint64, inst.module.get_global("fused_phase_cycles"))
    instrumented_us = _median_us(lambda i: inst(inputs[i % len(inputs)]), launches)
    counters.fill(0)
    for r in range(launches):
        inst(inputs[r % len(inputs)])
    cupy.cuda.get_current_stream().synchronize()
    c = counters.get()
    blocks = int(c[-1])
    expected_blocks = int(np.prod(inst.grid)) * launches
    if blocks != expected_blocks:
        raise RuntimeError(f"{variant}: {blocks} blocks reported phase cycles, {expected_blocks} were launched")
    return {"method": "SM clock marks after each phase's barrier, summed over blocks (-DPHASE_TIMING=1 build)",
            "names": list(names), "amounts": [float(v) for v in c[:-1]], "amount_unit": "sm_cycles",
            "blocks": blocks, "instrumented_us_per_batch_median": instrumented_us,
            "instrumented_max_rel_diff": max_rel_diff}  # fmt: skip


def measure_phases(variant: str, batch: int, height: int = 227, width: int = 227, cubin: str | None = None,
                   launches: int = 30, seed: int = 0) -> dict:  # fmt: skip
    """The ``phases.json`` record of one variant and batch (lbl or fused; see the module docstring)."""
    from kernels.api import make_forward
    from kernels.registry import variant as lookup

    v = lookup(variant)
    strategy = v.strategy
    if not strategy.own_kernels:  # vendor runs PyTorch's kernels: no phases of ours
        raise ValueError(f"phases: {variant!r} is a {strategy!r} variant; phases exist for the project's own kernels")
    if v.generated:  # one loop over row operations: no per-layer kernels (lbl) nor phase counters (fused)
        raise ValueError(f"phases: {variant!r} is generated; phases exist for the hand-written kernels only")
    fwd = make_forward(variant, batch, height, width, cubin=cubin, seed=seed)
    inputs = [fwd.random_input(seed + i) for i in range(3)]
    timed_us = _median_us(lambda i: fwd(inputs[i % len(inputs)]), launches)
    if strategy == "lbl":
        part = lbl_phases(fwd, inputs, launches)
    else:
        ref = fwd(inputs[0]).copy()
        part = fused_phases(variant, batch, height, width, fwd.params, inputs, launches, ref)
    res: dict[str, Any] = {
        "variant": variant, "strategy": strategy, "batch": batch, "height": height, "width": width,
        "cubin": str(cubin), "launches": launches, "us_per_batch_median": timed_us,
        "us_per_image_median": timed_us / batch,
        **{k: v for k, v in part.items() if k not in ("names", "amounts")},
    }  # fmt: skip
    if "instrumented_us_per_batch_median" in part:
        res["instrumented_over_timed"] = part["instrumented_us_per_batch_median"] / timed_us
    res["phases"] = phase_rows(part["names"], part["amounts"], timed_us / batch)
    return res


if __name__ == "__main__":  # only under Snakemake's script: directive
    from pipeline.stages.job import network_input_hw, run_stage, single_path

    def body(sm, v):
        height, width = network_input_hw(sm.wildcards.network)
        return measure_phases(v.name, int(sm.wildcards.batch), height, width, single_path(sm.input.get("cubin")),
                              launches=int(sm.params.launches))  # fmt: skip

    run_stage(snakemake, body, gpu=True)  # noqa: F821
