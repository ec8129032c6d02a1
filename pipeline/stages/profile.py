"""Nsight Compute: build the two ncu command lines, run them, parse the reports into profile.json.

Two passes over the same program (``pipeline/stages/profile_target.py``: one forward pass inside the
NVTX push/pop range ``measure``):

1. **range replay** (``--replay-mode range``): the whole pass is one measured workload, so the
   L2 stays shared between its kernels as in a real run. Whole-pass DRAM read/write bytes and
   L2 bytes come from here; per-kernel replay with cache flushing would overstate the
   layer-by-layer traffic. SASS instruction metrics are not available in this mode.
2. **kernel replay** (``--replay-mode kernel``) of every kernel inside the range: FLOPs from the
   SASS counters (FADD + FMUL + 2 x FFMA, thread-level, predicated-on), DRAM/L2/L1 bytes,
   achieved and theoretical occupancy, registers, shared memory, duration.

``--cache-control`` and ``--clock-control`` are always given explicitly and recorded. The
default clock control is ``none`` (measure the card at the clocks it runs, as the timing stage
does, and leave its clock settings alone); cache control ``all`` flushes caches before each
replayed workload, so every pass starts from a cold L2.

Reports are parsed from ``ncu --import R --csv --page raw --print-units base`` (ncu's own
export; one header row, one units row, one row per result), which needs no Python module
matched to ncu's build. When ncu is missing or the counters are refused, profile.json says
``{"available": false, "reason": ...}`` and the rule still succeeds.
"""

import csv
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "pipeline" / "stages" / "profile_target.py"
NVTX_INCLUDE = "measure/"  # push/pop range "measure" in the default domain

FLOP_METRICS = {
    "sm__sass_thread_inst_executed_op_fadd_pred_on.sum": 1,
    "sm__sass_thread_inst_executed_op_fmul_pred_on.sum": 1,
    "sm__sass_thread_inst_executed_op_ffma_pred_on.sum": 2,  # a fused multiply-add is 2 FLOPs
}
RANGE_METRICS = (
    "dram__bytes_read.sum",
    "dram__bytes_write.sum",
    "lts__t_bytes.sum",
    "lts__t_sectors_srcunit_tex.sum",
    # sectors the SMs wrote to L2: every output byte, also what is still in L2 (not yet in DRAM)
    # when the range ends, which dram__bytes_write cannot see
    "lts__t_sectors_srcunit_tex_op_write.sum",
    "gpu__time_duration.sum",
)
KERNEL_METRICS = (
    *FLOP_METRICS,
    "dram__bytes_read.sum",
    "dram__bytes_write.sum",
    "lts__t_bytes.sum",
    "lts__t_sectors_srcunit_tex.sum",
    "l1tex__t_bytes.sum",
    "sm__warps_active.avg.pct_of_peak_sustained_active",  # achieved occupancy
    "sm__maximum_warps_per_active_cycle_pct",  # theoretical occupancy
    "launch__registers_per_thread",
    "launch__shared_mem_per_block_static",
    "launch__shared_mem_per_block_dynamic",
    "launch__grid_size",
    "launch__block_size",
    "gpu__time_duration.sum",
)
# What each kernel-row field is called in profile.json.
KERNEL_FIELDS = {
    "dram__bytes_read.sum": "dram_read_bytes",
    "dram__bytes_write.sum": "dram_write_bytes",
    "lts__t_bytes.sum": "l2_bytes",
    "lts__t_sectors_srcunit_tex.sum": "l2_sm_sectors",
    "l1tex__t_bytes.sum": "l1_bytes",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "achieved_occupancy_pct",
    "sm__maximum_warps_per_active_cycle_pct": "theoretical_occupancy_pct",
    "launch__registers_per_thread": "registers",
    "launch__shared_mem_per_block_static": "shared_static_bytes",
    "launch__shared_mem_per_block_dynamic": "shared_dynamic_bytes",
    "launch__grid_size": "grid_size",
    "launch__block_size": "block_size",
    "gpu__time_duration.sum": "duration_ns",
}


class NcuUnavailable(RuntimeError):
    """ncu cannot measure here; the message is the one-line reason for profile.json."""


# ---------------------------------------------------------------- command lines (pure)


def target_command(
    variant: str,
    batch: int,
    height: int = 227,
    width: int = 227,
    cubin: str | None = None,
    warmup: int = 3,
    python: str = sys.executable,
    factory: str | None = None,
) -> list[str]:
    """The profiled program: profile_target.py run by ``python``, by path (any workdir)."""
    cmd = [python, str(TARGET), "--variant", variant, "--batch", str(batch),
           "--height", str(height), "--width", str(width), "--warmup", str(warmup)]
    if cubin:
        cmd += ["--cubin", str(cubin)]
    if factory:
        cmd += ["--factory", factory]
    return cmd


def _report_base(report: str | Path) -> str:
    """ncu appends .ncu-rep to -o; strip it so the file lands exactly at ``report``."""
    s = str(report)
    return s[: -len(".ncu-rep")] if s.endswith(".ncu-rep") else s


def _common(ncu: str, report: str | Path, cache_control: str, clock_control: str, metrics) -> list[str]:
    if cache_control not in ("all", "none"):
        raise ValueError(f"cache_control must be 'all' or 'none', got {cache_control!r}")
    if clock_control not in ("base", "none"):
        raise ValueError(f"clock_control must be 'base' or 'none', got {clock_control!r}")
    return [ncu, "--cache-control", cache_control, "--clock-control", clock_control,
            "--metrics", ",".join(metrics), "--export", _report_base(report), "--force-overwrite"]


def replay_command(
    target: list[str],
    report: str | Path,
    mode: str,
    ncu: str = "ncu",
    cache_control: str = "all",
    clock_control: str = "none",
    nvtx_include: str = NVTX_INCLUDE,
    metrics=None,
) -> list[str]:
    """ncu over the NVTX range: ``mode="range"`` replays the whole range as ONE workload (whole-pass
    DRAM and L2 bytes), ``mode="kernel"`` each kernel launched in it (FLOPs, bytes, occupancy)."""
    if mode not in ("range", "kernel"):
        raise ValueError(f"replay mode must be 'range' or 'kernel', got {mode!r}")
    metrics = metrics or (RANGE_METRICS if mode == "range" else KERNEL_METRICS)
    return [*_common(ncu, report, cache_control, clock_control, metrics),
            "--nvtx", "--nvtx-include", nvtx_include, "--replay-mode", mode, *target]


def range_replay_command(target: list[str], report: str | Path, **options) -> list[str]:
    """Range replay (see ``replay_command``)."""
    return replay_command(target, report, "range", **options)


def kernel_replay_command(target: list[str], report: str | Path, **options) -> list[str]:
    """Kernel replay (see ``replay_command``)."""
    return replay_command(target, report, "kernel", **options)


def export_csv_command(report: str | Path, ncu: str = "ncu") -> list[str]:
    """ncu's own CSV export of a report: raw metrics, base units (bytes, ns), one row per result."""
    return [ncu, "--import", str(report), "--csv", "--page", "raw", "--print-units", "base"]


# ---------------------------------------------------------------- parsing (pure)


def _number(text: str) -> float | None:
    t = text.strip().replace(",", "")
    if t in ("", "n/a", "N/A"):
        return None
    try:
        return float(t)
    except ValueError:
        return None


def parse_raw_csv(text: str) -> list[dict]:
    """Rows of ``ncu --csv --page raw``: {column: str}, units row dropped, ``_units`` kept aside.

    ncu may print ``==PROF==``/``==WARNING==`` lines before the table; they are skipped.
    """
    lines = [l for l in text.splitlines() if l.startswith('"')]
    if not lines:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header, body = rows[0], rows[1:]
    units = {}
    if body and not body[0][0].strip().lstrip("-").isdigit():  # the units row has no ID
        units = dict(zip(header, body[0]))
        body = body[1:]
    out = []
    for r in body:
        row = dict(zip(header, r))
        row["_units"] = units
        out.append(row)
    return out


def metric(row: dict, name: str, default: float | None = None) -> float | None:
    """A metric's value in base units (bytes, ns, %), None when absent or n/a."""
    if name not in row:
        return default
    v = _number(row[name])
    return default if v is None else v


def _check_units(row: dict, name: str, allowed: tuple[str, ...]) -> None:
    unit = row.get("_units", {}).get(name, "")
    if unit and unit not in allowed:
        raise ValueError(f"metric {name} is in {unit!r}, expected one of {allowed}: export with --print-units base")


def kernel_flops(row: dict) -> float:
    """FP32 FLOPs of one kernel: FADD + FMUL + 2 x FFMA thread instructions (predicated on)."""
    return sum(w * (metric(row, m, 0.0) or 0.0) for m, w in FLOP_METRICS.items())


def summarize_kernels(rows: list[dict], batch: int) -> dict:
    """Per-kernel list and per-image totals from kernel-replay rows."""
    kernels = []
    for r in rows:
        for m in ("dram__bytes_read.sum", "lts__t_bytes.sum"):
            _check_units(r, m, ("byte",))
        _check_units(r, "gpu__time_duration.sum", ("nsecond", "ns"))
        k = {"name": r.get("Kernel Name", r.get("Function Name", "?")), "flops": kernel_flops(r)}
        for m, key in KERNEL_FIELDS.items():
            k[key] = metric(r, m)
        kernels.append(k)
    tot = lambda key: sum(k[key] or 0.0 for k in kernels)  # noqa: E731
    return {
        "kernels": kernels,
        "kernel_count": len(kernels),
        "flops_per_image": tot("flops") / batch,
        "kernel_dram_read_bytes_per_image": tot("dram_read_bytes") / batch,
        "kernel_dram_write_bytes_per_image": tot("dram_write_bytes") / batch,
        "kernel_l2_bytes_per_image": tot("l2_bytes") / batch,
        "kernel_l2_sm_bytes_per_image": 32.0 * tot("l2_sm_sectors") / batch,
        "kernel_l1_bytes_per_image": tot("l1_bytes") / batch,
        "kernel_duration_us_sum": tot("duration_ns") / 1e3,
    }


def summarize_range(rows: list[dict], batch: int) -> dict:
    """Whole-pass bytes per image from range-replay rows (one row per measured range)."""
    if not rows:
        raise ValueError("the range report has no results: the NVTX range was not found")
    for m in ("dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_bytes.sum"):
        _check_units(rows[0], m, ("byte",))
    s = lambda m: sum(metric(r, m, 0.0) or 0.0 for r in rows)  # noqa: E731
    read, write = s("dram__bytes_read.sum"), s("dram__bytes_write.sum")
    sm_writes = [metric(r, "lts__t_sectors_srcunit_tex_op_write.sum") for r in rows]
    return {
        "ranges": len(rows),
        "dram_read_bytes_per_image": read / batch,
        "dram_write_bytes_per_image": write / batch,
        "dram_bytes_per_image": (read + write) / batch,
        "l2_bytes_per_image": s("lts__t_bytes.sum") / batch,
        # L2 traffic requested by the SMs only (32-byte sectors), without other units' traffic
        "l2_sm_bytes_per_image": 32.0 * s("lts__t_sectors_srcunit_tex.sum") / batch,
        # None in reports recorded before the metric was asked for
        "l2_sm_write_bytes_per_image": None if None in sm_writes else 32.0 * sum(sm_writes) / batch,
        "range_duration_us": s("gpu__time_duration.sum") / 1e3,
    }


def diagnose(output: str, returncode: int) -> str | None:
    """One line with the cause and the fix when ncu could not measure, else None."""
    if "ERR_NVGPUCTRPERM" in output:
        return ("GPU performance counters are restricted to administrators (ERR_NVGPUCTRPERM): "
                "run the profile rule as root, or load the driver with "
                "NVreg_RestrictProfilingToAdminUsers=0 (see https://developer.nvidia.com/ERR_NVGPUCTRPERM)")
    if "LibraryNotLoaded" in output or "Failed to initialize the profiler" in output:
        return ("ncu could not load its profiling library (Failed to initialize the profiler): the "
                "sandbox/runtime hides the GPU's counters (seen under gVisor); run on a host or VM "
                "with direct driver access")
    m = re.search(r"No (kernels|ranges|results) were profiled", output)
    if m:
        return (f"ncu profiled nothing ({m.group(0)}): the NVTX range '{NVTX_INCLUDE}' was not seen; "
                "check that the target pushes it and that CuPy has NVTX")
    if returncode != 0:
        errs = [l.strip() for l in output.splitlines() if "==ERROR==" in l]
        tail = errs[-1] if errs else (output.strip().splitlines() or ["no output"])[-1]
        return f"ncu exited with code {returncode}: {tail[:300]}"
    return None


def parse_version(text: str) -> str:
    m = re.search(r"Version\s+(\S+)", text)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------- running


def find_ncu() -> str:
    """Path of ncu on PATH, or NcuUnavailable with the fix."""
    path = shutil.which("ncu")
    if not path:
        raise NcuUnavailable("ncu (Nsight Compute CLI) is not on PATH: install Nsight Compute "
                             "(CUDA toolkit) and add its folder, e.g. /opt/nvidia/nsight-compute/<ver>, to PATH")
    return path


def _run(cmd: list[str], log_file: Path | None, timeout_s: float) -> tuple[int, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    out = p.stdout + p.stderr
    if log_file is not None:
        with open(log_file, "a") as fh:
            fh.write("$ " + " ".join(cmd) + "\n" + out + "\n")
    return p.returncode, out


def _measure(cmd: list[str], report: Path, ncu: str, log_file: Path | None, timeout_s: float) -> list[dict]:
    code, out = _run(cmd, log_file, timeout_s)
    reason = diagnose(out, code)
    if reason:
        raise NcuUnavailable(reason)
    code, csv_text = _run(export_csv_command(report, ncu), None, timeout_s)
    if code != 0:
        raise NcuUnavailable(f"ncu --import {report} failed (code {code}): {csv_text.strip()[-300:]}")
    return parse_raw_csv(csv_text)


def profile(
    variant: str,
    batch: int,
    range_report: str | Path,
    kernels_report: str | Path,
    cubin: str | None = None,
    height: int = 227,
    width: int = 227,
    warmup: int = 3,
    cache_control: str = "all",
    clock_control: str = "none",
    factory: str | None = None,
    log_file: str | Path | None = None,
    timeout_s: float = 1800,
) -> dict:
    """Run both ncu passes and return the profile.json record (never raises for ncu faults)."""
    base = {"variant": variant, "batch": batch, "cache_control": cache_control,
            "clock_control": clock_control, "nvtx_include": NVTX_INCLUDE}
    try:
        ncu = find_ncu()
    except NcuUnavailable as err:
        return {"available": False, "reason": str(err), **base}
    target = target_command(variant, batch, height, width, cubin, warmup, factory=factory)
    cmds = {
        "range": replay_command(target, range_report, "range", ncu, cache_control, clock_control),
        "kernels": replay_command(target, kernels_report, "kernel", ncu, cache_control, clock_control),
    }
    lf = Path(log_file) if log_file else None
    res = {"available": True, **base,
           "ncu_version": parse_version(_run([ncu, "--version"], None, 60)[1]),
           "reports": {"range": str(range_report), "kernels": str(kernels_report)},
           "commands": {k: " ".join(v) for k, v in cmds.items()}}
    errors = {}
    try:
        res.update(summarize_range(_measure(cmds["range"], Path(range_report), ncu, lf, timeout_s), batch))
    except (NcuUnavailable, ValueError) as err:
        errors["range"] = str(err)
    try:
        res.update(summarize_kernels(_measure(cmds["kernels"], Path(kernels_report), ncu, lf, timeout_s), batch))
    except (NcuUnavailable, ValueError) as err:
        errors["kernels"] = str(err)
    if len(errors) == 2:
        reason = errors["range"] if errors["range"] == errors["kernels"] else "; ".join(
            f"{k}: {v}" for k, v in errors.items())
        return {"available": False, "reason": reason, **base}
    for k, v in errors.items():
        res[f"{k}_error"] = v
    return res


if __name__ == "__main__":  # only under Snakemake's script: directive
    from pipeline.stages.job import network_input_hw, run_stage, single_path

    def body(sm, v):
        # profile.enabled and profile.batches decide which profile.json files the workflow asks for
        out_json = Path(sm.output.json)
        height, width = network_input_hw(sm.wildcards.network)
        res = profile(v.name, int(sm.wildcards.batch), range_report=out_json.with_name("range.ncu-rep"),
                      kernels_report=out_json.with_name("kernels.ncu-rep"), cubin=single_path(sm.input.get("cubin")),
                      height=height, width=width, cache_control=sm.params.cache_control,
                      clock_control=sm.params.clock_control, log_file=sm.log[0])  # fmt: skip
        return {**res, "batch": int(sm.wildcards.batch)}

    run_stage(snakemake, body, gpu=True)  # noqa: F821
