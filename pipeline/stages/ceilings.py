"""Empirical roofline ceilings, once per GPU: DRAM and L2 bandwidth, FP32 FMA and tensor-core peaks.

Why measure: datasheet rates assume boost clocks and ideal access; the roofline plots place each
variant against what this card actually sustains. Each ceiling is the median of ``repeats``
CUDA-event-timed launches of a kernel from ``kernels/ceilings.cu`` after a warm-up, written
beside the datasheet value computed from the device attributes (so the report can show both):

- DRAM: SM-driven copy of a buffer many times the L2 size; bytes = read + written. A
  cudaMemcpy device-to-device copy is timed as a cross-check.
- L2: repeated L2-only reads (``ld.global.cg``) of a buffer a quarter of the L2 size.
- FP32: 8 independent FFMA chains per thread, 2 FLOPs per FFMA.
- tensor cores, per 16-bit precision (fp16, bf16; FP32 accumulation): ``MMA_CHAINS`` independent
  register-resident ``mma.sync.m16n8k16`` chains per warp, ``MMA_FLOPS`` each. This is the
  instruction the project's 16-bit kernels issue (kernels/tc.cuh), so it is their ceiling; on Hopper
  the vendor libraries' wgmma can go faster. Needs sm_80 or newer; older cards record None.
- datasheet: SMs x SM clock x FP32 lanes per SM x 2; memory bus width x memory clock x 2 (DDR).
"""

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
CEILINGS_CU = ROOT / "kernels" / "ceilings.cu"

# FP32 lanes (CUDA cores) per SM by compute capability (CUDA C++ Programming Guide, throughput
# table). Unknown architectures give no datasheet FP32 value rather than a guess.
FP32_LANES_PER_SM = {
    (7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
    (9, 0): 128, (10, 0): 128, (10, 3): 128, (12, 0): 128,
}

# The compute ceiling of each precision's kernels: the ceilings.json key that holds it (analysis
# draws each variant against the one of its own precision).
COMPUTE_CEILING_KEYS = {"fp32": "fp32_flop_per_s", "tf32": "tc_tf32_flop_per_s", "fp16": "tc_fp16_flop_per_s",
                        "bf16": "tc_bf16_flop_per_s"}  # fmt: skip
# Tensor-core microbenchmarks of kernels/ceilings.cu, by precision, and the FLOPs of one mma of each
# (TF32: m16n8k8, half the k of m16n8k16).
MMA_ENTRIES = {"tf32": "ceil_mma_tf32", "fp16": "ceil_mma_fp16", "bf16": "ceil_mma_bf16"}
MMA_CHAINS = 8  # independent mma chains per warp: ceilings.cu's MMA_CHAINS (a test checks they agree)
MMA_FLOPS = 2 * 16 * 8 * 16  # one m16n8k16: 16x8 outputs, each a 16-term dot product, 2 FLOPs per MAC
MMA_FLOPS_BY_PRECISION = {"tf32": MMA_FLOPS // 2, "fp16": MMA_FLOPS, "bf16": MMA_FLOPS}
MMA_MIN_CC = (8, 0)  # mma.sync m16n8k16 with fp16/bf16 inputs needs sm_80
MMA_THREADS, MMA_BLOCKS_PER_SM = 256, 4  # ceilings.cu's __launch_bounds__(256, 4): one wave


def datasheet_ceilings(
    sm_count: int | None,
    sm_clock_khz: float | None,
    compute_capability: tuple[int, int] | None,
    mem_bus_width_bits: int | None,
    mem_clock_khz: float | None,
) -> dict:
    """Peak FP32 FLOP/s and DRAM bytes/s from the device's own numbers (None where unknown)."""
    lanes = FP32_LANES_PER_SM.get(tuple(compute_capability)) if compute_capability else None
    fp32 = sm_count * sm_clock_khz * 1e3 * lanes * 2 if sm_count and sm_clock_khz and lanes else None
    dram = mem_bus_width_bits / 8 * mem_clock_khz * 1e3 * 2 if mem_bus_width_bits and mem_clock_khz else None
    return {"datasheet_fp32_flop_per_s": fp32, "datasheet_dram_bytes_per_s": dram,
            "fp32_lanes_per_sm": lanes}


def rate_summary(name: str, work: float, times_ms: list[float]) -> dict:
    """Median rate (work per second) with the rates at the slow and fast quartiles of time."""
    t = np.asarray(times_ms, dtype=np.float64) * 1e-3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {f"{name}": work / med, f"{name}_q1": work / q3, f"{name}_q3": work / q1,
            f"{name}_repeats": int(t.size)}


def _load_module(cubin: str | None):
    import cupy

    if cubin:
        return cupy.RawModule(path=str(cubin))
    return cupy.RawModule(code=CEILINGS_CU.read_text(), options=("--std=c++17",))


def _time_ms(launch, warmup: int, repeats: int) -> list[float]:
    import cupy

    for _ in range(warmup):
        launch()
    cupy.cuda.get_current_stream().synchronize()
    out = []
    for _ in range(repeats):
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        a.record()
        launch()
        b.record()
        b.synchronize()
        out.append(cupy.cuda.get_elapsed_time(a, b))
    return out


def mma_flops(blocks: int, threads: int, iters: int, precision: str = "fp16") -> float:
    """FLOPs of one tensor-core microbenchmark launch: every warp runs ``MMA_CHAINS`` chains of
    ``iters`` mma.sync each (m16n8k16, TF32 m16n8k8)."""
    return float(blocks * (threads // 32)) * iters * MMA_CHAINS * MMA_FLOPS_BY_PRECISION[precision]


def measure_tensor_cores(mod, sms: int, cc: tuple[int, int], sink, iters: int, warmup: int, repeats: int) -> dict:
    """``tc_<precision>_flop_per_s`` (with quartiles) per 16-bit precision; None before sm_80,
    where ceilings.cu compiles the mma kernels to empty bodies, with the reason."""
    keys = {p: COMPUTE_CEILING_KEYS[p] for p in MMA_ENTRIES}
    if tuple(cc) < MMA_MIN_CC:
        why = f"compute capability {cc[0]}.{cc[1]} has no mma.sync for tf32/fp16/bf16 (needs 8.0)"
        return {**dict.fromkeys(keys.values()), "tc_unavailable_reason": why}
    blocks = sms * MMA_BLOCKS_PER_SM
    res: dict = {"tc_mma_iters": int(iters)}
    for precision, entry in MMA_ENTRIES.items():
        kern = mod.get_function(entry)
        t = _time_ms(lambda: kern((blocks,), (MMA_THREADS,), (sink, np.int32(iters))), warmup, repeats)
        res.update(rate_summary(keys[precision], mma_flops(blocks, MMA_THREADS, iters, precision), t))
    return res


def device_numbers() -> dict:
    """SM count, clocks, bus width, L2 from CUDA device attributes; NVML fills what CUDA 13 dropped."""
    import cupy

    dev = cupy.cuda.Device()
    attrs = dev.attributes
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    info = {
        "gpu_name": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "compute_capability": f"{props['major']}.{props['minor']}",
        "sm_count": attrs.get("MultiProcessorCount"),
        "sm_clock_khz": attrs.get("ClockRate") or props.get("clockRate"),
        "mem_clock_khz": attrs.get("MemoryClockRate") or props.get("memoryClockRate"),
        "mem_bus_width_bits": attrs.get("GlobalMemoryBusWidth") or props.get("memoryBusWidth"),
        "l2_bytes": attrs.get("L2CacheSize") or props.get("l2CacheSize"),
    }
    try:
        from pipeline.core import nvml

        d = nvml.device_info(nvml.device_handle(pci_bus_id=dev.pci_bus_id))
        if not info["sm_clock_khz"] and isinstance(d["sm_clock_max_mhz"], int):
            info["sm_clock_khz"] = d["sm_clock_max_mhz"] * 1000
        if not info["mem_clock_khz"] and isinstance(d["mem_clock_max_mhz"], int):
            info["mem_clock_khz"] = d["mem_clock_max_mhz"] * 1000
        if not info["mem_bus_width_bits"] and isinstance(d["memory_bus_width_bits"], int):
            info["mem_bus_width_bits"] = d["memory_bus_width_bits"]
        info.update({k: d[k] for k in ("gpu_uuid", "driver_version", "sm_clock_max_mhz", "mem_clock_max_mhz", "power_limit_w")})
    except Exception as err:  # NVML is optional here: the datasheet values just get fewer inputs
        info["nvml_error"] = str(err)
    return info


def measure_ceilings(
    cubin: str | None = None,
    repeats: int = 20,
    warmup: int = 3,
    dram_bytes: int | None = None,
    fma_iters: int = 65536,
    mma_iters: int = 16384,
) -> dict:
    """Run the microbenchmarks on the current GPU and return the ceilings.json record."""
    import cupy

    info = device_numbers()
    cc = tuple(int(v) for v in info["compute_capability"].split("."))
    mod = _load_module(cubin)
    sms = int(info["sm_count"])
    l2 = int(info["l2_bytes"])
    res = {**info, **datasheet_ceilings(sms, info["sm_clock_khz"], cc, info["mem_bus_width_bits"], info["mem_clock_khz"])}

    # DRAM: copy >= 16x L2 (or 1 GiB), bounded by a quarter of free memory for src+dst.
    free = cupy.cuda.runtime.memGetInfo()[0]
    nbytes = dram_bytes or min(max(16 * l2, 1 << 30), free // 4)
    nbytes -= nbytes % 16
    src = cupy.random.default_rng(0).standard_normal(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    n_vec = np.uint64(nbytes // 16)
    copy = mod.get_function("ceil_copy")
    grid, block = sms * 8, 256
    t = _time_ms(lambda: copy((grid,), (block,), (src, dst, n_vec)), warmup, repeats)
    res.update(rate_summary("dram_bytes_per_s", 2.0 * nbytes, t))
    if not bool(cupy.array_equal(src[-1024:], dst[-1024:])):
        raise RuntimeError("ceil_copy did not copy: the DRAM ceiling is not trustworthy")
    stream = cupy.cuda.get_current_stream()
    t = _time_ms(lambda: cupy.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, nbytes,
                                                       cupy.cuda.runtime.memcpyDeviceToDevice, stream.ptr),
                 warmup, repeats)
    res.update(rate_summary("dram_memcpy_bytes_per_s", 2.0 * nbytes, t))
    res["dram_test_bytes"] = int(nbytes)
    # The ceiling is the best the card sustained by either route.
    res["dram_best_bytes_per_s"] = max(res["dram_bytes_per_s"], res["dram_memcpy_bytes_per_s"])
    del src, dst

    # L2: a buffer of L2/4 read `reps` times per launch.
    l2_buf_bytes = (l2 // 4) - (l2 // 4) % 16
    buf = cupy.random.default_rng(1).standard_normal(l2_buf_bytes // 4, dtype=cupy.float32)
    sink = cupy.zeros(sms * 8 * 256, dtype=cupy.float32)
    reps = 64
    l2k = mod.get_function("ceil_l2_read")
    t = _time_ms(lambda: l2k((sms * 8,), (256,), (buf, np.uint64(l2_buf_bytes // 16), np.int32(reps), sink)),
                 warmup, repeats)
    res.update(rate_summary("l2_bytes_per_s", float(l2_buf_bytes) * reps, t))
    res["l2_test_bytes"] = int(l2_buf_bytes)

    # FP32: 8 FFMA chains x fma_iters per thread, 2048 threads per SM.
    fma = mod.get_function("ceil_fma")
    blocks, threads = sms * 8, 256
    flops = float(blocks * threads) * fma_iters * 8 * 2
    t = _time_ms(lambda: fma((blocks,), (threads,), (sink, np.int32(fma_iters), np.float32(0.999), np.float32(1e-3))),
                 warmup, repeats)
    res.update(rate_summary("fp32_flop_per_s", flops, t))

    res.update(measure_tensor_cores(mod, sms, cc, sink, mma_iters, warmup, repeats))

    for meas, sheet in (("dram_bytes_per_s", "datasheet_dram_bytes_per_s"),
                        ("dram_best_bytes_per_s", "datasheet_dram_bytes_per_s"),
                        ("fp32_flop_per_s", "datasheet_fp32_flop_per_s")):
        res[f"{meas}_fraction_of_datasheet"] = res[meas] / res[sheet] if res.get(sheet) else None
    res["ceilings_source"] = str(cubin) if cubin else str(CEILINGS_CU.relative_to(ROOT)) + " (NVRTC)"
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in res.items()}


if __name__ == "__main__":  # only under Snakemake's script: directive
    from pipeline.stages.job import run_stage

    run_stage(snakemake, lambda sm, v: measure_ceilings(), gpu=True)  # noqa: F821
