"""Writes the SYNTHETIC FIXTURE results tree next to this file (run once; outputs are committed).

Every number here is made up to look plausible for AlexNet conv1..pool2 on a datacenter GPU, so
the aggregation and figure tests have all the file formats to chew on. It is a test fixture: it
must never be copied into results/ or reports/archive/, and its GPU is called "SYNTHETIC-GPU" so
it cannot be mistaken for a measurement. It deliberately contains the awkward cases: a profile
that is unavailable, a missing time.json, a failed verification, and an archived run. The files are
in the current schema (``schema_version`` 2, each carrying its variant's record); plan.csv is the
genuine output of pipeline/stages/plan.py (model only, no GPU involved).

    .venv/bin/python tests/data/results_fixture/make_fixture.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kernels.registry import Variant

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 2
ARCH = "sm_90"
GPU = "synthgpu"
GPU_NAME = "SYNTHETIC-GPU (test fixture, not a measurement)"
BATCHES = (1, 16, 128)
VARIANTS = ("lbl", "fused-reuse-t2", "fused-reuse-t4", "fused-recompute-t2", "fused-recompute-t4", "vendor")
MB = 1e6
INPUT_B, OUTPUT_B, WEIGHTS_B = 618_348, 173_056, 1_369_600
USEFUL_MACS = 329.4e6
# layer-by-layer round trips of the intermediates (conv1+relu, lrn1, pool1, conv2+relu, lrn2)
LBL_INTER_B = 1_161_600 * 4 + 279_936 * 2 + 746_496 * 4
L2_BYTES = 50 * 2**20


def strategy(v: str) -> str:
    return str(Variant.parse(v).strategy)


def tile(v: str) -> int | str:
    return Variant.parse(v).tile or ""


def record(v: str) -> dict:
    """What every result file of ``v`` starts with (the stages write the same)."""
    return {"schema_version": SCHEMA_VERSION, **Variant.parse(v).record()}


def extra_macs(v: str) -> float:
    return {2: 190e6, 4: 95e6}.get(tile(v), 0.0) if strategy(v) == "recompute" else 0.0


def measured_dram(v: str, b: int) -> float:
    """Intermediates stay in L2 at small batch; beyond it lbl pays its round trips."""
    spill = min(1.0, max(0.0, (b * 1_161_600 - 0.5 * L2_BYTES) / L2_BYTES))
    extra = LBL_INTER_B * spill * (1.4 if v == "vendor" else 1.0) if v in ("lbl", "vendor") else 0.0
    return (INPUT_B + OUTPUT_B) * 1.03 + WEIGHTS_B / b + extra + (20_000 if "fused" in v else 0)


def us_per_image(v: str, b: int) -> float:
    base = {"lbl": 62, "vendor": 46, "fused-reuse-t2": 44, "fused-reuse-t4": 39,
            "fused-recompute-t2": 81, "fused-recompute-t4": 57}[v]
    return base * (1 + 3.0 / b)


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def kernels_of(v: str, b: int) -> list[dict]:
    flops = 2 * (USEFUL_MACS + extra_macs(v)) * b
    dram, t = measured_dram(v, b) * b, us_per_image(v, b) * b
    if v in ("lbl", "vendor"):
        parts = [("conv1", 0.315, 0.30, 0.25), ("lrn1", 0.004, 0.20, 0.06), ("pool1", 0.001, 0.12, 0.03),
                 ("conv2", 0.675, 0.18, 0.60), ("lrn2", 0.004, 0.13, 0.04), ("pool2", 0.001, 0.07, 0.02)]
    else:
        parts = [(f"fused_{strategy(v)}_t{tile(v)}", 1.0, 1.0, 1.0)]
    out = []
    for name, f_flops, f_bytes, f_time in parts:
        occ_t = 50.0 if "fused" in v else 75.0
        dram_k = round(dram * f_bytes)
        # the fields of pipeline/stages/profile.py (KERNEL_FIELDS)
        out.append({"name": name, "duration_ns": round(t * f_time * 1e3), "flops": flops * f_flops,
                    "dram_read_bytes": round(0.7 * dram_k), "dram_write_bytes": dram_k - round(0.7 * dram_k),
                    "l2_bytes": round(dram * f_bytes * 3.1 + flops * f_flops / 40),
                    "l2_sm_sectors": round((dram * f_bytes * 2.9 + flops * f_flops / 40) / 32),
                    "l1_bytes": round(flops * f_flops / 6 + dram * f_bytes * 4), "achieved_occupancy_pct": round(occ_t * 0.8, 1),
                    "theoretical_occupancy_pct": occ_t, "registers": 64 if "fused" in v else 40,
                    "shared_static_bytes": 0 if "fused" in v else 8192,
                    "shared_dynamic_bytes": 48_000 * tile(v) if "fused" in v else 0})
    return out


def write_gpu_tree(root: Path, variants, batches) -> None:
    g = root / GPU
    # keys as pipeline/stages/ceilings.py and provenance.py write them
    write(g / "ceilings.json", {"schema_version": SCHEMA_VERSION, "gpu_name": GPU_NAME, "dram_bytes_per_s": 3.2e12, "l2_bytes_per_s": 9.5e12,
                                "fp32_flop_per_s": 5.1e13, "datasheet_dram_bytes_per_s": 3.35e12,
                                "datasheet_fp32_flop_per_s": 6.7e13, "l2_bytes": L2_BYTES})
    write(g / "provenance.json", {"schema_version": SCHEMA_VERSION, "gpu_name": GPU_NAME, "gpu_uuid": "GPU-00000000-synthetic", "driver_version": "0.0",
                                  "cuda_runtime_version": "0.0", "cuda_driver_version": "0.0", "ncu_version": "0.0",
                                  "cupy_version": "0.0", "l2_bytes": L2_BYTES, "git_commit": "synthetic",
                                  "timestamp_utc": "2026-11-20T00:00:00Z", "command": "SYNTHETIC"})
    for v in variants:
        if v == "vendor":
            continue
        ks = kernels_of(v, 1)
        write(root / "build" / ARCH / f"{v}.json", {**record(v), "arch": ARCH, "kernels": [
            {"name": k["name"], "registers": k["registers"],
             "shared_bytes": k["shared_static_bytes"] + k["shared_dynamic_bytes"],
             "spill_store_bytes": 0, "spill_load_bytes": 0, "stack_bytes": 0,
             "register_limited_occupancy_pct": k["theoretical_occupancy_pct"]} for k in ks]})
        passed = v != "fused-recompute-t2"  # one variant failed verification (once per variant)
        write(g / "alexnet" / v / "verify.json", {**record(v), "batch": 3, "passed": passed,
                                                  "rel_l2_error": 3e-7 if passed else 0.2,
                                                  "max_abs_error_scaled": 1e-5, "rtol": 1e-4})
        for b in batches:
            _measure(g / "alexnet" / v / f"b{b}", v, b)
    if "vendor" in variants:
        write(g / "alexnet" / "vendor" / "verify.json", {**record("vendor"), "batch": 3, "passed": True,
                                                         "rel_l2_error": 2e-7, "max_abs_error_scaled": 1e-5,
                                                         "rtol": 1e-4})
    for b in batches if "vendor" in variants else ():  # vendor: no build, no time.json at batch 1
        _measure(g / "alexnet" / "vendor" / f"b{b}", "vendor", b, with_time=b != 1)


def _measure(d: Path, v: str, b: int, with_time: bool = True) -> None:
    us = us_per_image(v, b)
    if with_time:
        write(d / "time.json", {**record(v), "batch": b, "gpu_name": GPU_NAME, "us_per_image_median": us, "us_per_image_q1": us * 0.98,
                                "us_per_image_q3": us * 1.03, "us_per_batch_median": us * b, "launches": 200,
                                "energy_mj_per_image": us * 0.35, "avg_power_w": 350.0, "peak_power_w": 420.0,
                                "sm_clock_mhz_median": 1755, "mem_clock_mhz_median": 2619, "temperature_c_max": 55,
                                "throttled": False, "throttle_reasons": []})
    if v == "fused-recompute-t4" and b == 128:
        write(d / "profile.json", {**record(v), "batch": b, "available": False,
                                   "reason": "SYNTHETIC: ncu not installed"})
        return
    if b == 128 and v != "vendor":
        _phases(d, v, b, us)
    ks = kernels_of(v, b)
    dram = measured_dram(v, b)
    write(d / "profile.json", {**record(v), "batch": b, "available": True, "dram_read_bytes_per_image": dram * 0.7,
                               "dram_write_bytes_per_image": dram * 0.3, "dram_bytes_per_image": dram,
                               "l2_bytes_per_image": sum(k["l2_bytes"] for k in ks) / b,
                               "l2_sm_bytes_per_image": 32.0 * sum(k["l2_sm_sectors"] for k in ks) / b,
                               "kernel_l1_bytes_per_image": sum(k["l1_bytes"] for k in ks) / b,
                               "flops_per_image": 2 * (USEFUL_MACS + extra_macs(v)),
                               "range_duration_us": us * b * 1.02, "cache_control": "none", "clock_control": "base",
                               "kernels": ks})


def _phases(d: Path, v: str, b: int, us: float) -> None:
    """phases.json as pipeline/stages/phases.py writes it (made-up shares)."""
    if v == "lbl":
        parts = [("conv1", 0.25), ("norm1", 0.04), ("pool1", 0.03), ("conv2", 0.62), ("norm2", 0.04), ("pool2", 0.02)]
    else:
        parts = [("shift", 0.01), ("conv1", 0.44), ("norm1", 0.02), ("pool1", 0.02), ("conv2", 0.48),
                 ("norm2", 0.02), ("pool2", 0.01)]
    write(d / "phases.json", {**record(v), "batch": b, "us_per_image_median": us * 1.01,
                              "method": "SYNTHETIC", "instrumented_over_timed": 1.0 if v == "lbl" else 1.03,
                              "phases": [{"phase": n, "amount": f, "share": f, "us_per_image": f * us * 1.01}
                                         for n, f in parts]})


def write_plan(path: Path, variants, batches) -> None:
    """The genuine plan (pipeline/stages/plan.py: records and model columns) of these variants."""
    from pipeline.stages.plan import plan_table

    config = {"kernels": {"network": "alexnet", "group": "front", "batches": list(batches)},
              "networks": {"alexnet": {"groups": {"front": ["conv1", "pool2"]}}}, "model": {"bytes_per_value": 4}}
    path.parent.mkdir(parents=True, exist_ok=True)
    plan_table(config, list(variants)).to_csv(path, index=False)


def write_model(root: Path) -> None:
    write_plan(root / "plan.csv", VARIANTS, BATCHES)
    m = root / "model" / "alexnet"
    m.mkdir(parents=True, exist_ok=True)
    # The model's pyramids are deterministic (no GPU), so the fixture holds the genuine table, as
    # pipeline/stages/model.py writes it for the config's alexnet tiles.
    from pipeline.model.costs import write_model_table

    write_model_table("alexnet", {"front": ["conv1", "pool2"]}, [1, 2, 3, 4, 5, 7, 13], str(m / "pyramids.csv"))
    dse = ["partition,onchip_bytes,dram_bytes_per_image,pareto"]
    parts = [("conv1|pool1|conv2|pool2", 8_000, 9.9e6, True), ("conv1..pool1|conv2..pool2", 120_000, 3.2e6, True),
             ("conv1|pool1..pool2", 90_000, 6.8e6, False), ("conv1..pool2", 260_000, 0.79e6, True),
             ("conv1..conv2|pool2", 300_000, 1.5e6, False), ("conv1|pool1|conv2..pool2", 60_000, 6.0e6, True),
             ("conv1..lrn1|pool1..pool2", 200_000, 4.0e6, False)]
    dse += [f"{p},{o},{d:.0f},{pa}" for p, o, d, pa in parts]
    (m / "dse.csv").write_text("\n".join(dse) + "\n")
    # The paper comparison is the model's own, deterministic output (no GPU involved), so the
    # fixture uses the genuine table from pipeline/model/paper.py rather than a made-up one.
    from pipeline.model.paper import write_paper_comparison

    write_paper_comparison(root / "model" / "paper_comparison.csv")


def main() -> None:
    for sub in ("model", GPU, "build", "archive"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    write_model(HERE)
    write_gpu_tree(HERE, VARIANTS, BATCHES)
    archive = HERE / "archive" / "synthgpu-2026-11-20"
    write_gpu_tree(archive, ("lbl", "fused-reuse-t4"), (128,))
    write_plan(archive / "plan.csv", ("lbl", "fused-reuse-t4"), (128,))


if __name__ == "__main__":
    main()
