"""Find and read every result file: one row per source x gpu x network x variant x batch, as written.

Result files come from several stages, and any of them may be missing (no GPU: only model files; no
Nsight Compute: ``profile.json`` says ``{"available": false}``). So this module reads every file in
one place and never invents a number: a missing measurement is NaN and the ``missing`` column says
why. Each result file carries ``schema_version`` and the variant's record (``variant, network,
group, strategy, tile, precision``); rows take their record from the files, or from ``plan.csv``
for planned variants nothing measured. Files of an older schema are refused with the command that
upgrades them (``python -m analysis.archive --migrate``), so every key is read under one spelling.

Units are in column names: ``_bytes``, ``_us``, ``_mj``, ``_w``, ``_flop_per_s``, ``_pct``.
Per-kernel numbers in ``profile.json`` are totals over one forward pass of the whole batch, so
per-image values divide by ``batch``. Derived columns are analysis/derive.py's.
"""

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.derive import is_nan, num
from analysis.inputs import RECORD_DTYPES, read_model_csv
from analysis.sources import NO_GPU, SOURCE_THIS_RUN, sources
from pipeline.stages.ceilings import COMPUTE_CEILING_KEYS

SCHEMA_VERSION = 2  # of the result JSON files analysis reads (the stages write it)
KEYS = ["source", "gpu", "network", "variant", "batch"]
RECORD_FIELDS = ["variant", "network", "group", "strategy", "tile", "precision", "impl"]
RECORD_COLUMNS = ["group", "strategy", "tile", "precision", "impl"]  # besides the keys
_BATCH_RE = re.compile(r"^b(\d+)$")

# Model columns of plan.csv joined onto every row (pipeline/stages/plan.py computes them; NaN where
# a plan lacks them or a variant is not modelled).
PLAN_MODEL_COLUMNS = [
    "model_dram_bytes_per_image",
    "model_onchip_bytes",
    "model_extra_macs_per_image",
    "model_useful_macs_per_image",
    "kernel_padding_macs_per_image",
    "kernel_counted_flops_per_image",
    "compulsory_dram_bytes_per_image",
    "weight_bytes",
    "largest_intermediate_bytes_per_image",
    "output_bytes_per_image",  # the group's output map (what every variant must write to DRAM)
    "onchip_bytes_per_block",  # generated kernels: shared memory per block of the built kernel
]
TIME_COLUMNS = [
    "gpu_name",
    "us_per_image_median",
    "us_per_image_q1",
    "us_per_image_q3",
    "us_per_batch_median",
    "launches",
    "launch",  # graph or eager (pipeline/stages/time.py); runs archived before graphs were all eager
    "eager_us_per_batch_calibration",
    "energy_mj_per_image",
    "avg_power_w",
    "peak_power_w",
    "sm_clock_mhz_median",
    "mem_clock_mhz_median",
    "temperature_c_max",
    "throttled",
    "throttle_reasons",
]
# The channels-last PyTorch anchor's convolutions timed alone (time.json's ``convs_alone``): their
# summed medians, and each as ``<layer>:<us>`` joined by ';' (the row stays flat).
CONVS_ALONE_COLUMNS = ["convs_alone_us_per_image", "convs_alone_by_layer"]
# Whole-pass numbers of profile.json (range replay), and the kernels' L1 total (kernel replay).
PROFILE_COLUMNS = [
    "dram_read_bytes_per_image",
    "dram_write_bytes_per_image",
    "dram_bytes_per_image",
    "l2_bytes_per_image",
    "l2_sm_bytes_per_image",
    "l2_sm_write_bytes_per_image",
    "flops_per_image",
    "range_duration_us",
]
PROFILE_DERIVED_COLUMNS = ["l1_bytes_per_image", "achieved_occupancy_pct"]
VERIFY_COLUMNS = ["verify_passed", "rel_l2_error", "max_abs_error_scaled", "rtol"]
BUILD_COLUMNS = [
    "build_arch",
    "n_kernels",
    "registers_max",
    "shared_bytes_max",
    "spill_bytes_total",
    "register_limited_occupancy_pct_min",
]
# Everything that comes from a GPU measurement; blanked when verification failed.
MEASURED_COLUMNS = ([c for c in TIME_COLUMNS if c != "gpu_name"] + CONVS_ALONE_COLUMNS + PROFILE_COLUMNS
                    + PROFILE_DERIVED_COLUMNS)
KERNEL_COLUMNS = ["kernel", "duration_us", "flops", "dram_bytes", "l2_bytes", "l2_sm_bytes", "l1_bytes",
                  "achieved_occupancy_pct", "theoretical_occupancy_pct", "registers", "shared_bytes"]
# As pipeline/stages/ceilings.py names them (L1: none yet); the tensor-core peaks are NaN for runs
# archived before they were measured.
CEILING_COLUMNS = ["dram_bytes_per_s", "l2_bytes_per_s", "l1_bytes_per_s",
                   *COMPUTE_CEILING_KEYS.values()]
PHASE_COLUMNS = ["phase", "share", "us_per_image", "phases_run_us_per_image", "scaled_to", "method",
                 "instrumented_over_timed"]
PROVENANCE_FIELDS = ["gpu_name", "gpu_uuid", "driver_version", "cuda_runtime_version", "cuda_driver_version",
                     "cupy_version", "ncu_version", "sm_clock_mhz", "mem_clock_mhz", "power_limit_w",
                     "git_commit", "timestamp_utc", "command"]


class SchemaError(ValueError):
    """A result file of another schema than the one analysis reads."""


# ---------------------------------------------------------------- files and folders


def read_json(path: Path) -> dict | None:
    """The parsed file, or None when it is absent or unreadable (a stage that did not run)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_result(path: Path) -> dict | None:
    """A variant's result file (verify, time, profile, phases), or None when absent; SchemaError
    when it was written under another schema."""
    data = read_json(path)
    if data is not None and data.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema_version {data.get('schema_version', 'missing')}, analysis reads {SCHEMA_VERSION}; "
            "upgrade an archived run with `python -m analysis.archive --migrate <archive dir>`, or rerun the stage"
        )
    return data


def _is_gpu_dir(path: Path) -> bool:
    if not path.is_dir() or path.name in ("model", "figures", "report", "logs", "build"):
        return False
    if (path / "ceilings.json").exists() or (path / "provenance.json").exists():
        return True
    return any(_BATCH_RE.match(p.name) for p in path.glob("*/*/b*") if p.is_dir())


def gpu_dirs(root: Path) -> list[Path]:
    """GPU result directories under a results root (or the root itself if it is one)."""
    root = Path(root)
    if _is_gpu_dir(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _is_gpu_dir(p))


def measurement_dirs(gpu_dir: Path) -> list[tuple[str, str, int, Path]]:
    """(network, variant, batch, dir) for every ``<network>/<variant>/b<batch>`` under a GPU dir."""
    found = []
    for d in sorted(Path(gpu_dir).glob("*/*/b*")):
        m = _BATCH_RE.match(d.name)
        if m and d.is_dir():
            found.append((d.parent.parent.name, d.parent.name, int(m[1]), d))
    return found


def read_plan(plan_csv: Path | None) -> pd.DataFrame:
    """plan.csv (pipeline/stages/plan.py): the planned variants' records and model columns."""
    plan = read_model_csv(plan_csv, ["network", "variant", "batch", *RECORD_COLUMNS, *PLAN_MODEL_COLUMNS],
                          RECORD_DTYPES)  # fmt: skip
    plan["batch"] = plan["batch"].astype(int)
    return plan


# ---------------------------------------------------------------- one measurement directory


def _read_verify(variant_dir: Path, notes: list[str]) -> tuple[dict, dict | None]:
    """verify.json of the variant (once per variant, beside its b<batch> folders)."""
    v = read_result(variant_dir / "verify.json")
    if v is None:
        notes.append("no verify.json")
        return {}, None
    out = {"verify_passed": bool(v.get("passed")) if "passed" in v else np.nan}
    out.update({k: v.get(k, np.nan) for k in ("rel_l2_error", "max_abs_error_scaled", "rtol")})
    return out, v


def _read_time(d: Path, notes: list[str]) -> tuple[dict, dict | None]:
    t = read_result(d / "time.json")
    if t is None:
        notes.append("no time.json")
        return {}, None
    out = {k: t.get(k, np.nan) for k in TIME_COLUMNS}
    out["launch"] = t.get("launch", "eager")  # time.json without the key predates graph launches
    if isinstance(out["throttle_reasons"], (list, tuple)):
        out["throttle_reasons"] = ",".join(map(str, out["throttle_reasons"]))
    out.update(convs_alone_columns(t.get("convs_alone")))
    return out, t


def convs_alone_columns(convs) -> dict:
    """CONVS_ALONE_COLUMNS from time.json's ``convs_alone`` records (pipeline/stages/time.py); {} for
    every other time.json. A convolution without a median leaves the sum NaN, never a partial sum."""
    recs = [c for c in convs or [] if isinstance(c, dict)]
    if not recs:
        return {}
    us = [num(c.get("us_per_image_median")) for c in recs]
    return {"convs_alone_us_per_image": sum(us),
            "convs_alone_by_layer": ";".join(f"{c.get('layer', '?')}:{u:.4g}" for c, u in zip(recs, us))}


def _read_profile(d: Path, notes: list[str]) -> tuple[dict, list[dict], dict | None]:
    """Whole-pass numbers per image, the per-kernel rows, and the file."""
    p = read_result(d / "profile.json")
    if p is None:
        notes.append("no profile.json")
        return {}, [], None
    if not p.get("available", True):
        notes.append(f"profile unavailable: {p.get('reason', 'no reason given')}")
        return {}, [], p
    out = {k: p.get(k, np.nan) for k in PROFILE_COLUMNS}
    out["l1_bytes_per_image"] = p.get("kernel_l1_bytes_per_image", np.nan)
    kernels = [k for k in p.get("kernels") or [] if isinstance(k, dict)]
    dur = np.array([num(k.get("duration_ns")) for k in kernels])
    occ = np.array([num(k.get("achieved_occupancy_pct")) for k in kernels])
    ok = ~np.isnan(occ) & ~np.isnan(dur)
    # time-weighted: what the pass as a whole achieved
    out["achieved_occupancy_pct"] = float(np.average(occ[ok], weights=dur[ok])) if ok.any() and dur[ok].sum() > 0 else np.nan
    return out, kernels, p


def _read_build(gpu_dir: Path, variant: str) -> dict:
    """Resource report of a variant: build/<arch>/<variant>.json beside the GPU directory."""
    found = sorted((gpu_dir.parent / "build").glob(f"*/{variant}.json"))
    b = read_json(found[0]) if found else None
    ks = [k for k in (b or {}).get("kernels") or [] if isinstance(k, dict)]
    if not ks:
        return {}
    return {
        "build_arch": found[0].parent.name,
        "n_kernels": len(ks),
        "registers_max": max(num(k.get("registers")) for k in ks),
        "shared_bytes_max": max(num(k.get("shared_bytes")) for k in ks),
        "spill_bytes_total": sum(num(k.get("spill_store_bytes")) + num(k.get("spill_load_bytes")) for k in ks),
        "register_limited_occupancy_pct_min": min(num(k.get("register_limited_occupancy_pct")) for k in ks),
    }


def fill_impl(impl: pd.Series) -> pd.Series:
    """The ``impl`` record field with "" where a file or plan predates it (hand-written kernels and
    PyTorch eager then; runs archived before it was a record field carry none)."""
    impl = impl.astype(object)
    return impl.where(impl.notna(), "").astype(str)


def _record(*files: dict | None) -> dict:
    """The variant's record from the first result file there is."""
    f = next((f for f in files if f), None)
    return {k: f.get(k) for k in RECORD_FIELDS} if f else {}


def _measured_row(gpu_dir: Path, variant: str, d: Path | None) -> tuple[dict, list[dict]]:
    notes: list[str] = []
    row: dict = {}
    kernels: list[dict] = []
    if d is None or not d.is_dir():
        notes.append("not measured on this GPU")
    else:
        verify, vfile = _read_verify(d.parent, notes)
        timed, tfile = _read_time(d, notes)
        prof, kernels, pfile = _read_profile(d, notes)
        row.update(_record(tfile, pfile, vfile, read_result(d / "phases.json")))
        row.update(verify, **timed, **prof)
        if row.get("verify_passed") is False:
            notes.append("verification FAILED: measurements dropped")
            row.update(dict.fromkeys(MEASURED_COLUMNS, np.nan))
            kernels = []
    row.update(_read_build(gpu_dir, variant))
    row["model_only"] = is_nan(row.get("us_per_image_median", np.nan)) and is_nan(row.get("dram_bytes_per_image", np.nan))
    row["missing"] = "; ".join(notes)
    return row, kernels


def _kernel_row(k: dict, row: dict) -> dict:
    """One kernel of profile.json (pipeline/stages/profile.py: duration in ns, DRAM read and write,
    L2 sectors requested by the SMs, static + dynamic shared memory) in the units of the tables."""
    out = {c: row.get(c) for c in [*KEYS, *RECORD_COLUMNS]}
    out.update(kernel=str(k.get("name", "?")), duration_us=num(k.get("duration_ns")) / 1e3, flops=num(k.get("flops")),
               dram_bytes=num(k.get("dram_read_bytes")) + num(k.get("dram_write_bytes")),
               l2_bytes=num(k.get("l2_bytes")), l2_sm_bytes=32.0 * num(k.get("l2_sm_sectors")),
               l1_bytes=num(k.get("l1_bytes")), achieved_occupancy_pct=num(k.get("achieved_occupancy_pct")),
               theoretical_occupancy_pct=num(k.get("theoretical_occupancy_pct")), registers=num(k.get("registers")),
               shared_bytes=num(k.get("shared_static_bytes")) + num(k.get("shared_dynamic_bytes")))  # fmt: skip
    return out


# ---------------------------------------------------------------- one results root


def _rows_for_root(root: Path, source: str, plan: pd.DataFrame, include_plan: bool) -> tuple[list[dict], list[dict]]:
    """Rows (and kernel rows) of one results root: what it measured, plus every planned variant
    when ``include_plan`` (this run)."""
    rows, kernel_rows = [], []
    gdirs = gpu_dirs(root)
    planned = list(plan[["network", "variant", "batch"]].itertuples(index=False, name=None)) if include_plan else []
    if not gdirs:
        for network, variant, batch in planned:
            rows.append({"source": source, "gpu": NO_GPU, "network": network, "variant": variant,
                         "batch": int(batch), "model_only": True, "missing": "no GPU results"})
    for g in gdirs:
        found = {(n, v, b): d for n, v, b, d in measurement_dirs(g)}
        prov = read_json(g / "provenance.json") or {}
        for network, variant, batch in dict.fromkeys(planned) | dict.fromkeys(found):
            row, kernels = _measured_row(g, variant, found.get((network, variant, batch)))
            row.update(source=source, gpu=g.name, network=network, variant=variant, batch=int(batch))
            if is_nan(row.get("gpu_name", np.nan)):
                row["gpu_name"] = prov.get("gpu_name", np.nan)
            rows.append(row)
            kernel_rows += [_kernel_row(k, row) for k in kernels]
    return rows, kernel_rows


def _attach_plan(df: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Model columns from the plan; record columns from the files, else from the plan."""
    on = ["network", "variant", "batch"]
    p = plan[[*on, *RECORD_COLUMNS, *PLAN_MODEL_COLUMNS]].drop_duplicates(on)
    df = df.reindex(columns=list(dict.fromkeys([*df.columns, *RECORD_COLUMNS])))
    df = df.drop(columns=[c for c in PLAN_MODEL_COLUMNS if c in df.columns]).merge(p, on=on, how="left",
                                                                                   suffixes=("", "_plan"))
    for c in RECORD_COLUMNS:
        df[c] = df[c].where(df[c].notna(), df.pop(f"{c}_plan"))
    return df


# ---------------------------------------------------------------- collectors


def collect(results_dirs: Iterable[Path], plan_csv: Path | None, archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """Every measurement as read, one row per source x gpu x network x variant x batch, with the
    plan's model columns (no derived columns: analysis/derive.py adds those).

    ``results_dirs`` are this run's results roots (or GPU dirs); every planned variant appears for
    each GPU found there (model-only rows when nothing was measured). ``archive_dirs`` add only what
    they measured, joined with their own ``plan.csv``.
    """
    plan = read_plan(plan_csv)
    frames = []
    for root, source in sources(results_dirs, archive_dirs):
        this_run = source == SOURCE_THIS_RUN
        p = plan if this_run else read_plan(root / "plan.csv")
        rows, _ = _rows_for_root(root, source, p, include_plan=this_run)
        if rows:
            frames.append(_attach_plan(pd.DataFrame(rows), p))
    front = [*KEYS, *RECORD_COLUMNS, "model_only", "missing"]
    columns = [*front, *VERIFY_COLUMNS, *TIME_COLUMNS, *CONVS_ALONE_COLUMNS, *PROFILE_COLUMNS,
               *PROFILE_DERIVED_COLUMNS, *BUILD_COLUMNS, *PLAN_MODEL_COLUMNS]  # fmt: skip
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    df = df.reindex(columns=list(dict.fromkeys([*columns, *df.columns])))
    df["model_only"] = df["model_only"].astype(bool)
    df["missing"] = df["missing"].fillna("")
    df["impl"] = fill_impl(df["impl"])
    df["batch"] = df["batch"].astype(int)
    return df


def collect_kernels(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """Per-kernel rows from every available profile (for the roofline and occupancy figures)."""
    rows: list[dict] = []
    for root, source in sources(results_dirs, archive_dirs):
        rows += _rows_for_root(root, source, read_plan(None), include_plan=False)[1]
    k = pd.DataFrame(rows).reindex(columns=[*KEYS, *RECORD_COLUMNS, *KERNEL_COLUMNS])
    k["impl"] = fill_impl(k["impl"])
    return k


def collect_ceilings(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per source x gpu: measured roofline ceilings, datasheet values, L2 size, GPU name."""
    rows = []
    for root, source in sources(results_dirs, archive_dirs):
        for g in gpu_dirs(root):
            c = read_json(g / "ceilings.json") or {}
            prov = read_json(g / "provenance.json") or {}
            row = {"source": source, "gpu": g.name, "gpu_name": prov.get("gpu_name", c.get("gpu_name", np.nan))}
            row.update({k: num(c.get(k)) for k in CEILING_COLUMNS})
            row.update({k: num(v) for k, v in c.items() if k.startswith("datasheet_")})
            row["l2_bytes"] = num(c.get("l2_bytes", prov.get("l2_bytes")))
            row["has_ceilings"] = bool(c)
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["source", "gpu", "gpu_name", *CEILING_COLUMNS, "l2_bytes",
                                                         "has_ceilings"])  # fmt: skip


def collect_phases(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per source x gpu x network x variant x batch x phase (pipeline/stages/phases.py).

    A phase's ``us_per_image`` is its share times the timing stage's median for the same variant and
    batch (``scaled_to`` = "time.json"), so the bars add up to the number the speed figures show;
    without a time.json it is the share of the phases run's own median ("phases.json").
    """
    rows = []
    for root, source in sources(results_dirs, archive_dirs):
        for g in gpu_dirs(root):
            for network, variant, batch, d in measurement_dirs(g):
                ph = read_result(d / "phases.json")
                if not ph or not ph.get("phases"):
                    continue
                total = num((read_result(d / "time.json") or {}).get("us_per_image_median"))
                scaled_to = "time.json" if not math.isnan(total) else "phases.json"
                if scaled_to == "phases.json":
                    total = num(ph.get("us_per_image_median"))
                record = {"group": ph.get("group"), "strategy": ph["strategy"], "tile": ph["tile"],
                          "precision": ph["precision"], "impl": ph.get("impl") or ""}
                for p in ph["phases"]:
                    rows.append({"source": source, "gpu": g.name, "network": network, "variant": variant,
                                 "batch": batch, **record, "phase": p["phase"], "share": num(p.get("share")),
                                 "us_per_image": num(p.get("share")) * total,
                                 "phases_run_us_per_image": num(p.get("us_per_image")), "scaled_to": scaled_to,
                                 "method": ph.get("method", ""),
                                 "instrumented_over_timed": num(ph.get("instrumented_over_timed"))})  # fmt: skip
    return pd.DataFrame(rows, columns=[*KEYS, *RECORD_COLUMNS, *PHASE_COLUMNS])


def collect_provenance(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per source x gpu: where the numbers came from, and the profiler settings used.

    ncu settings are read from the profile.json files of that GPU (every distinct value listed);
    the NVML settings are those of pipeline/core/nvml.py (sampling period, energy counter).
    """
    rows = []
    for root, source in sources(results_dirs, archive_dirs):
        for g in gpu_dirs(root):
            prov = read_json(g / "provenance.json") or {}
            row = {"source": source, "gpu": g.name, **{k: prov.get(k, np.nan) for k in PROVENANCE_FIELDS}}
            profiles = [read_result(p) or {} for p in sorted(g.glob("*/*/b*/profile.json"))]
            for key in ("cache_control", "clock_control", "ncu_version"):
                seen = sorted({str(p[key]) for p in profiles if p.get(key) is not None})
                row[key if key.startswith("ncu") else f"ncu_{key}"] = ", ".join(seen) or row.get(key, np.nan)
            row["nvml"] = "energy: nvmlDeviceGetTotalEnergyConsumption over >= 1 s; power, clocks, reasons sampled every 10 ms"
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["source", "gpu", *PROVENANCE_FIELDS])


def save_table(df: pd.DataFrame, csv_path: Path, parquet_path: Path | None = None) -> None:
    """CSV for people, Parquet for typed reloads; parents created."""
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    if parquet_path is not None:
        out = df.copy()
        for c in out.columns:  # mixed object columns (NaN + str) break Arrow's type inference
            if out[c].dtype == object:
                out[c] = out[c].map(lambda x: None if is_nan(x) else str(x))
        out.to_parquet(parquet_path, index=False)
