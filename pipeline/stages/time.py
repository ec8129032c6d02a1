"""Time a forward pass with CUDA events, NVML sampled alongside; write ``time.json``.

Method (why each step):
- warm-up launches first, so module load, first-touch allocation and clock ramp-up stay out;
- each forward pass launched as a CUDA graph (``launch: graph``, kernels/graphs.py; one graph
  per input buffer), so the interval is the GPU's work: launched eagerly, a pass of a few small
  kernels (batch 1) waits on Python's launch loop between its kernels and the events would time
  the host. A forward without a ``graph`` method, or whose capture fails (recorded in
  ``graph_error``), is launched eagerly; ``launch`` in time.json says which, and
  ``eager_us_per_batch_calibration`` keeps the eager pass's time beside it;
- back-to-back launches with one CUDA event between consecutive launches (n launches, n+1
  events, one synchronisation at the end): each interval is one launch as the GPU ran it, and
  no host synchronisation gap sits between launches;
- at least ``repeats`` launches and at least ``min_seconds`` of work, because NVML's energy
  counter refreshes only every ~20-100 ms; median and quartiles, not mean, so a stray slow
  launch does not move the result;
- when one batch's input is small next to the L2 cache, the input is rotated among enough
  buffers (over twice the L2 size in all) that each launch reads its input from DRAM, as a
  real pipeline feeding fresh images would; otherwise a small batch would be timed from L2.

Any callable ``fwd(x)`` that launches on the current stream works; ``kernels.api.make_forward``
gives the project's variants (``input_shape``, ``random_input(seed)``, ``useful_macs_per_image``).
The channels-last PyTorch anchor (``vendor-cl``) also times each of its convolutions alone with
cuDNN the same way (``time_convs_alone``, kernels/vendor_convs.py): their sum is a lower bound on
any layer-by-layer pass built from cuDNN's convolutions.
"""

import logging
import math
import time
from typing import Any, Callable

import numpy as np

from pipeline.core import nvml

log = logging.getLogger(__name__)

DEFAULTS = {
    "warmup": 20,
    "repeats": 200,
    "min_seconds": 1.0,
    "rotate_inputs": True,
    "cool_below_c": None,  # wait for the GPU to cool to this before timing (None: do not wait)
    "max_launches": 200_000,
    "launch": "graph",  # graph: replay a CUDA graph of each pass; eager: call the forward
}
LAUNCH_MODES = ("graph", "eager")


def summarize_times_us(times_us: list[float] | np.ndarray, batch: int) -> dict:
    """Median and quartiles per batch and per image (us), plus the spread as a fraction."""
    t = np.asarray(times_us, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no timed launches to summarise")
    q1, med, q3 = (float(v) for v in np.percentile(t, [25, 50, 75]))
    return {
        "launches": int(t.size),
        "us_per_batch_median": med,
        "us_per_batch_q1": q1,
        "us_per_batch_q3": q3,
        "us_per_batch_min": float(t.min()),
        "us_per_batch_mean": float(t.mean()),
        "us_per_image_median": med / batch,
        "us_per_image_q1": q1 / batch,
        "us_per_image_q3": q3 / batch,
        "iqr_over_median": (q3 - q1) / med if med > 0 else float("nan"),
    }


def rotation_buffer_count(
    input_bytes: int,
    l2_bytes: int,
    rotate: bool,
    l2_multiple: float = 2.0,
    max_buffers: int = 256,
) -> int:
    """How many input buffers to cycle through so a launch does not find its input in L2.

    One buffer when rotation is off or one input already exceeds ``l2_multiple`` x L2; else
    enough that the rotated inputs together exceed that (L2 is not a strict LRU, hence the
    margin), capped at ``max_buffers``.
    """
    if input_bytes <= 0:
        raise ValueError(f"input_bytes must be positive, got {input_bytes}")
    if not rotate or l2_bytes <= 0 or input_bytes >= l2_multiple * l2_bytes:
        return 1
    return min(max_buffers, math.ceil(l2_multiple * l2_bytes / input_bytes) + 1)


def launch_count(repeats: int, min_seconds: float, est_us_per_launch: float, max_launches: int) -> int:
    """At least ``repeats`` launches and at least ``min_seconds`` of work, at most ``max_launches``."""
    by_time = math.ceil(min_seconds * 1e6 / est_us_per_launch) if est_us_per_launch > 0 else repeats
    return int(max(1, min(max_launches, max(repeats, by_time))))


def l2_cache_bytes(device_id: int | None = None) -> int:
    """L2 size of the current (or given) CUDA device, from the device attributes."""
    import cupy

    dev = cupy.cuda.Device(device_id)
    try:
        return int(dev.attributes["L2CacheSize"])
    except (KeyError, AttributeError):
        return int(cupy.cuda.runtime.getDeviceProperties(dev.id)["l2CacheSize"])


def _make_inputs(fwd: Any, n: int, seed: int) -> list:
    """``n`` inputs drawn from ``fwd.random_input`` (fresh random data, never zeros)."""
    return [fwd.random_input(seed + i) for i in range(n)]


def calibrate_us_per_launch(step: Callable[[int], Any], max_launches: int, target_s: float = 0.05) -> float:
    """GPU time per launch of ``step(i)`` (pass i) from back-to-back runs of at least ``target_s``
    (x4 launches per try).

    A few launches are not enough: for small kernels the first ones wait on the host, and an
    inflated estimate would make the timed run shorter than ``min_seconds``.
    """
    import cupy

    stream = cupy.cuda.get_current_stream()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    k = 4
    while True:
        start.record(stream)
        for i in range(k):
            step(i)
        stop.record(stream)
        stop.synchronize()
        elapsed_us = cupy.cuda.get_elapsed_time(start, stop) * 1e3
        if elapsed_us >= target_s * 1e6 or k >= max_launches:
            return elapsed_us / k
        k *= 4


def time_forward(
    fwd: Callable,
    batch: int,
    warmup: int = DEFAULTS["warmup"],
    repeats: int = DEFAULTS["repeats"],
    min_seconds: float = DEFAULTS["min_seconds"],
    rotate_inputs: bool = DEFAULTS["rotate_inputs"],
    *,
    use_nvml: bool = True,
    cool_below_c: float | None = None,
    max_launches: int = DEFAULTS["max_launches"],
    seed: int = 0,
    launch: str = DEFAULTS["launch"],
) -> dict:
    """Time ``fwd`` on ``batch`` images; return the flat ``time.json`` record.

    ``use_nvml=False`` (or NVML missing, then recorded in ``nvml_error``) still times with
    events; the energy and power fields are then absent. ``launch``: see the module docstring.
    """
    if launch not in LAUNCH_MODES:
        raise ValueError(f"launch must be one of {LAUNCH_MODES}, got {launch!r}")
    import cupy

    probe = fwd.random_input(seed)
    input_bytes = int(probe.nbytes)
    l2_bytes = l2_cache_bytes()
    n_buffers = rotation_buffer_count(input_bytes, l2_bytes, rotate_inputs)
    inputs = [probe] + _make_inputs(fwd, n_buffers - 1, seed + 1)
    stream = cupy.cuda.get_current_stream()

    def eager(i: int) -> None:
        fwd(inputs[i % n_buffers])

    for i in range(max(1, warmup)):
        eager(i)
    stream.synchronize()
    step, graph_info = eager, {"launch": "eager"}
    if launch == "graph":
        graph_info["eager_us_per_batch_calibration"] = calibrate_us_per_launch(eager, max_launches)
        if not hasattr(fwd, "graph"):
            graph_info["graph_error"] = f"{type(fwd).__name__} has no graph()"
        else:
            try:
                replays = [fwd.graph(x) for x in inputs]
            except Exception as err:  # noqa: BLE001 - recorded; the pass is then timed eagerly
                graph_info["graph_error"] = f"{type(err).__name__}: {err}"
                log.warning("CUDA graph capture failed, timing eager launches: %s", graph_info["graph_error"])
            else:
                def replayed(i: int) -> None:
                    replays[i % n_buffers]()

                step, graph_info["launch"] = replayed, "graph"
                for i in range(max(1, warmup)):
                    step(i)
                stream.synchronize()
    est_us = calibrate_us_per_launch(step, max_launches)
    n = launch_count(repeats, min_seconds, est_us, max_launches)
    n_est = max(1, warmup)

    handle, nvml_error, cool = None, None, {}
    if use_nvml:
        try:
            handle = nvml.device_handle(pci_bus_id=cupy.cuda.Device().pci_bus_id)
            if cool_below_c is not None:
                cool = nvml.wait_for_cool(handle, cool_below_c)
                for i in range(n_est):  # re-warm after the idle wait
                    step(i)
                stream.synchronize()
        except nvml.NvmlUnavailable as err:
            nvml_error, handle = str(err), None

    events = [cupy.cuda.Event() for _ in range(n + 1)]
    sampler = nvml.NvmlSampler(handle) if handle is not None else None
    t0 = time.perf_counter()
    if sampler is not None:
        sampler.__enter__()
    try:
        events[0].record(stream)
        for i in range(n):
            step(i)
            events[i + 1].record(stream)
        events[-1].synchronize()
    finally:
        if sampler is not None:
            sampler.__exit__(None, None, None)
    wall_s = time.perf_counter() - t0
    times_us = [cupy.cuda.get_elapsed_time(events[i], events[i + 1]) * 1e3 for i in range(n)]

    res: dict[str, Any] = {
        "batch": batch,
        "warmup": warmup,
        "repeats_requested": repeats,
        "min_seconds": min_seconds,
        "rotate_inputs": bool(rotate_inputs),
        "input_buffers": n_buffers,
        "input_bytes_per_batch": input_bytes,
        "l2_bytes": l2_bytes,
        "est_us_per_batch_calibration": est_us,
        **graph_info,
        **summarize_times_us(times_us, batch),
        "gpu_busy_s": float(np.sum(times_us) * 1e-6),
        "wall_s": wall_s,
        **cool,
    }
    macs = getattr(fwd, "useful_macs_per_image", None)
    if macs:
        res["useful_macs_per_image"] = int(macs)
        res["useful_gflop_per_s"] = 2.0 * macs * batch / (res["us_per_batch_median"] * 1e-6) / 1e9
    if nvml_error:
        res["nvml_error"] = nvml_error
    if sampler is not None:
        s = sampler.result
        images = n * batch
        res.update(
            {
                "energy_mj_per_image": s["energy_mj"] / images,
                "energy_mj_per_image_power_integral": s["energy_j_power_integral"] * 1e3 / images,
                "energy_mj_total": s["energy_mj"],
                "energy_window_s": s["window_s"],
                **{k: v for k, v in s.items() if k not in ("energy_mj", "window_s")},
            }
        )
        res.update(nvml.device_info(handle))
    return res


# What time.json keeps of each convolution timed alone (the rest of time_forward's record is the
# forward pass's own).
CONV_ALONE_KEYS = ("us_per_image_median", "us_per_image_q1", "us_per_image_q3", "launches", "input_buffers",
                   "useful_gflop_per_s", "launch")


def time_convs_alone(fwd: Any, batch: int, opts: dict) -> list[dict]:
    """Each convolution of a channels-last vendor Forward alone with cuDNN (kernels/vendor_convs.py),
    timed as the forward pass is (warm-up, calibration, back-to-back events, rotated inputs), without
    NVML (energy is the block's); one record per convolution, in network order."""
    from kernels.vendor_convs import convs_alone

    out = []
    for conv in convs_alone(fwd):
        r = time_forward(conv, batch, opts["warmup"], opts["repeats"], opts["min_seconds"], opts["rotate_inputs"],
                         use_nvml=False, max_launches=opts["max_launches"], launch=opts["launch"])  # fmt: skip
        out.append({"layer": conv.name, **{k: r[k] for k in CONV_ALONE_KEYS if k in r}})
    return out


def time_variant(
    variant: str,
    batch: int,
    cubin: str | None,
    height: int = 227,
    width: int = 227,
    forward_params: dict | None = None,
    **timing: Any,
) -> dict:
    """Build the project's Forward for ``variant`` and time it (the ``time`` rule's body); for the
    channels-last PyTorch anchor, also each of its convolutions alone (``convs_alone``)."""
    from kernels.api import make_forward
    from kernels.vendor_convs import times_convs_alone

    fwd = make_forward(variant, batch, height=height, width=width, params=forward_params, cubin=cubin)
    opts = {**DEFAULTS, **{k: v for k, v in timing.items() if v is not None}}
    res = time_forward(
        fwd,
        batch,
        opts["warmup"],
        opts["repeats"],
        opts["min_seconds"],
        opts["rotate_inputs"],
        cool_below_c=opts["cool_below_c"],
        max_launches=opts["max_launches"],
        launch=opts["launch"],
    )
    res.update({"variant": variant, "height": height, "width": width, "cubin": str(cubin),
                "setup_s": float(getattr(fwd, "setup_s", 0.0))})  # compile time, outside the timed passes
    res["kernels"] = ";".join(str(k) for k in getattr(fwd, "kernels", []) or [])
    if times_convs_alone(fwd.variant):  # after the block, so its timing is as it was without them
        res["convs_alone"] = time_convs_alone(fwd, batch, opts)
    return res


class _Wildcards(dict):
    """One batch's wildcards, read as Snakemake's are (``w.batch``, ``w.keys()``, ``w.get``)."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def sweep_batches(sm: Any, body: Callable[[Any, Any], dict]) -> list[dict]:
    """The ``time`` rule's body: one job per variant times all its batches, each into its own
    ``time.json`` (``sm.output.json``, in the order of ``sm.params.batches``), so Python, CuPy and
    the CUDA context start once per variant while every result stays a file of its own.

    The GPU is held for the whole sweep; each batch is written through ``run_stage`` as if it were
    its own job (``sm.wildcards.batch`` set, the verify check, the stamp), so a file reads the same.
    """
    from types import SimpleNamespace

    from pipeline.core.gpus import claim_gpu
    from pipeline.stages.job import run_stage

    outputs = list(sm.output.json)
    batches = [int(b) for b in sm.params.batches]
    if len(outputs) != len(batches):
        raise ValueError(f"{len(outputs)} time.json outputs for {len(batches)} batches {batches}")
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)  # run_stage's own call is then a no-op
    results = []
    with claim_gpu():  # one GPU for the whole sweep (run_stage below does not claim again)
        for batch, out in zip(batches, outputs):
            if f"/b{batch}/" not in f"/{out}":
                raise ValueError(f"{out} is not the time.json of batch {batch}")
            wildcards = _Wildcards({k: getattr(sm.wildcards, k) for k in sm.wildcards.keys()}, batch=str(batch))
            one = SimpleNamespace(wildcards=wildcards, input=sm.input, output=SimpleNamespace(json=out),
                                  log=sm.log, params=sm.params)  # fmt: skip
            log.info("batch %d -> %s", batch, out)
            results.append(run_stage(one, body))
    return results


if __name__ == "__main__":  # only under Snakemake's script: directive
    from pipeline.stages.job import network_input_hw, single_path

    def body(sm, v):
        height, width = network_input_hw(sm.wildcards.network)
        return time_variant(v.name, int(sm.wildcards.batch), single_path(sm.input.get("cubin")), height=height,
                            width=width, **dict(sm.params.timing))  # fmt: skip

    sweep_batches(snakemake, body)  # noqa: F821
