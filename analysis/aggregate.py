"""One tidy table from every result file: a row per source x gpu x network x variant x batch.

Result files come from several stages written by other people, and any of them may be missing
(no GPU: only model files; no Nsight Compute: ``profile.json`` says ``{"available": false}``). So
this module reads every file defensively, in one place, and never invents a number: a missing
measurement is NaN and the ``missing`` column says why. Archived results (a GPU run recorded
earlier, under ``reports/archive/<card>-<yyyy-mm-dd>/``) keep a ``source`` of
``"archived <card> <date>"`` so no figure can pass them off as the reader's own run.

Units are in column names: ``_bytes``, ``_us``, ``_mj``, ``_w``, ``_flops_per_s``, ``_pct``.
Per-kernel numbers in ``profile.json`` are taken as totals over one forward pass of the whole
batch, so per-image values divide by ``batch``.
"""

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.tiles import parse_tile, tile_label, tile_sides

SOURCE_THIS_RUN = "this run"
NO_GPU = "none"  # gpu value of model-only rows when a run has no GPU results at all
_ARCHIVE_RE = re.compile(r"^(?P<card>.+?)-(?P<date>\d{4}-\d{2}-\d{2})(?:-(?P<label>[A-Za-z0-9]+))?$")
_BATCH_RE = re.compile(r"^b(\d+)$")
KEYS = ["source", "gpu", "network", "variant", "batch"]

# Plan columns we use; a plan written without some of them still loads (NaN).
PLAN_MODEL_COLUMNS = [
    "model_dram_bytes_per_image",
    "model_onchip_bytes",
    "model_extra_macs_per_image",
    "model_useful_macs_per_image",
]
TIME_COLUMNS = [
    "gpu_name",
    "us_per_image_median",
    "us_per_image_q1",
    "us_per_image_q3",
    "us_per_batch_median",
    "launches",
    "energy_mj_per_image",
    "avg_power_w",
    "peak_power_w",
    "sm_clock_mhz_median",
    "mem_clock_mhz_median",
    "temperature_c_max",
    "throttled",
    "throttle_reasons",
]
PROFILE_COLUMNS = [
    "dram_read_bytes_per_image",
    "dram_write_bytes_per_image",
    "dram_bytes_per_image",
    "l2_bytes_per_image",
    "l2_sm_bytes_per_image",
    "l1_bytes_per_image",
    "flops_per_image",
    "range_duration_us",
    "achieved_occupancy_pct",
]
VERIFY_COLUMNS = ["verify_passed", "rel_l2_error", "max_abs_error_scaled", "rtol"]
BUILD_COLUMNS = [
    "n_kernels",
    "registers_max",
    "shared_bytes_max",
    "spill_bytes_total",
    "register_limited_occupancy_pct_min",
    "build_exact_slots",  # 1: the fused build ran exact-width register tiles (EXACT_R), 0: coarser ones
]
# Everything that comes from a GPU measurement; blanked when verification failed.
MEASURED_COLUMNS = [c for c in TIME_COLUMNS if c != "gpu_name"] + PROFILE_COLUMNS
CEILING_COLUMNS = ["dram_bytes_per_s", "l2_bytes_per_s", "l1_bytes_per_s", "fp32_flops_per_s"]
# Keys under which a stage may record the L2 size (ceilings.json first, then provenance.json).
_L2_SIZE_KEYS = ("l2_cache_bytes", "l2_bytes", "l2_size_bytes", "datasheet_l2_bytes", "datasheet_l2_cache_bytes")


# ---------------------------------------------------------------- sources and paths


def archive_source(archive_dir: Path) -> str:
    """``"archived <card> <date>"`` from a directory named ``<card>-<yyyy-mm-dd>``, and
    ``"archived <card> <date> <label>"`` from ``<card>-<yyyy-mm-dd>-<label>`` (a later run that day)."""
    m = _ARCHIVE_RE.match(Path(archive_dir).name)
    if not m:
        return f"archived {Path(archive_dir).name} (undated)"
    return f"archived {m['card']} {m['date']}" + (f" {m['label']}" if m["label"] else "")


def source_newest_first(source: str) -> tuple:
    """Sort key: this run, then archives by date, then label, newest first (then by card)."""
    if source == SOURCE_THIS_RUN:
        return (0,)
    parts = source.split(" ")
    date = parts[2] if len(parts) > 2 else ""
    label = parts[3] if len(parts) > 3 else ""
    neg = lambda s: tuple(-ord(c) for c in s)  # noqa: E731 - descending strings
    return (1, neg(date), (0,) if label else (1,), neg(label), parts[1] if len(parts) > 1 else source)


def source_title(source: str) -> str:
    """Human label for a source: ``"this run"`` or ``"archived (card, date)"`` for figure titles."""
    if source == SOURCE_THIS_RUN:
        return SOURCE_THIS_RUN
    parts = source.split(" ", 2)
    if len(parts) == 3 and parts[0] == "archived":
        return f"archived ({parts[1]}, {parts[2].replace(' ', ', ', 1)})"
    return source


def read_json(path: Path) -> dict | None:
    """The parsed file, or None when it is absent or unreadable (a stage that did not run)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
        if m and d.is_dir() and d.parent.parent.name != "build":
            found.append((d.parent.parent.name, d.parent.name, int(m[1]), d))
    return found


# ---------------------------------------------------------------- plan and variant names


def strategy_of(variant: str) -> str:
    """lbl | reuse | recompute | vendor, from a variant name like ``fused-reuse-t4``."""
    for s in ("recompute", "reuse"):
        if f"-{s}" in variant or variant.startswith(s):
            return s
    return variant


def _tile(variant: str):
    """The tile of a fused variant name (4, (2, 7)), None for lbl/vendor."""
    tail = variant.rsplit("-t", 1)
    try:
        return parse_tile(tail[1]) if len(tail) == 2 else None
    except ValueError:
        return None


def tile_of(variant: str) -> str | float:
    """Tile label of a fused variant name ("4" for fused-reuse-t4, "2x7"), NaN for lbl/vendor."""
    tile = _tile(variant)
    return math.nan if tile is None else tile_label(tile)


def variant_rank(variant: str) -> tuple[int, float]:
    """(family, tile area): lbl, reuse by tile, recompute by tile, vendor last - the order of every
    table and legend."""
    family = 0 if variant == "lbl" else 1 if "reuse" in variant else 2 if "recompute" in variant else 3
    tile = _tile(variant)
    if tile is None:
        return family, 0.0
    rows, cols = tile_sides(tile)
    return family, float(rows * cols)


def read_plan(plan_csv: Path | None) -> pd.DataFrame:
    """The plan with the columns we use guaranteed present (NaN where the plan lacks them)."""
    plan = read_model_csv(plan_csv, ["network", "variant", "strategy", "tile", "batch", *PLAN_MODEL_COLUMNS])
    if plan.empty:
        return plan
    plan["strategy"] = plan["strategy"].fillna(plan["variant"].map(strategy_of))
    plan["tile"] = plan["variant"].map(tile_of)  # the label ("4", "2x7"), whatever the CSV parsed it as
    plan["batch"] = plan["batch"].astype(int)
    return plan


# ---------------------------------------------------------------- one measurement directory


def _read_verify(d: Path, notes: list[str]) -> dict:
    """verify.json of the variant (once per variant, beside its b<batch> folders; an older layout
    kept one per batch folder)."""
    v = read_json(d / "verify.json") or read_json(d.parent / "verify.json")
    if v is None:
        notes.append("no verify.json")
        return {}
    out = {"verify_passed": bool(v.get("passed")) if "passed" in v else np.nan}
    for k in ("rel_l2_error", "max_abs_error_scaled", "rtol"):
        out[k] = v.get(k, np.nan)
    return out


def _read_time(d: Path, notes: list[str]) -> dict:
    t = read_json(d / "time.json")
    if t is None:
        notes.append("no time.json")
        return {}
    out = {k: t.get(k, np.nan) for k in TIME_COLUMNS}
    if isinstance(out["throttle_reasons"], (list, tuple)):
        out["throttle_reasons"] = ",".join(map(str, out["throttle_reasons"]))
    return out


def _read_profile(d: Path, batch: int, notes: list[str]) -> tuple[dict, list[dict]]:
    """Whole-pass numbers per image, and the per-kernel rows."""
    p = read_json(d / "profile.json")
    if p is None:
        notes.append("no profile.json")
        return {}, []
    if not p.get("available", True):
        notes.append(f"profile unavailable: {p.get('reason', 'no reason given')}")
        return {}, []
    out = {k: p.get(k, np.nan) for k in PROFILE_COLUMNS}
    if _nan(out["dram_bytes_per_image"]) and not _nan(out["dram_read_bytes_per_image"]):
        out["dram_bytes_per_image"] = out["dram_read_bytes_per_image"] + out["dram_write_bytes_per_image"]
    kernels = [k for k in p.get("kernels") or [] if isinstance(k, dict)]
    if kernels:
        dur = np.array([_num(k.get("duration_us")) for k in kernels])
        if _nan(out["l1_bytes_per_image"]):
            l1 = [_num(k.get("l1_bytes")) for k in kernels]
            out["l1_bytes_per_image"] = np.sum(l1) / batch if not any(map(math.isnan, l1)) else np.nan
        if _nan(out["achieved_occupancy_pct"]):
            occ = np.array([_num(k.get("achieved_occupancy_pct")) for k in kernels])
            ok = ~np.isnan(occ) & ~np.isnan(dur)
            if ok.any() and dur[ok].sum() > 0:  # time-weighted: what the pass as a whole achieved
                out["achieved_occupancy_pct"] = float(np.average(occ[ok], weights=dur[ok]))
    return out, kernels


def _read_build(gpu_dir: Path, variant: str) -> dict:
    """Resource report of a variant: results/build/<arch>/<variant>.json beside the GPU directory
    (an archive may also carry it inside the GPU directory)."""
    candidates = [gpu_dir / "build" / f"{variant}.json", *sorted((gpu_dir.parent / "build").glob(f"*/{variant}.json"))]
    b = next((read_json(c) for c in candidates if c.exists()), None)
    ks = [k for k in (b or {}).get("kernels") or [] if isinstance(k, dict)]
    if not ks:
        return {}
    return {
        "n_kernels": len(ks),
        "registers_max": max(_num(k.get("registers")) for k in ks),
        "shared_bytes_max": max(_num(k.get("shared_bytes")) for k in ks),
        "spill_bytes_total": sum(_num(k.get("spill_store_bytes")) + _num(k.get("spill_load_bytes")) for k in ks),
        "register_limited_occupancy_pct_min": min(_num(k.get("register_limited_occupancy_pct")) for k in ks),
        # fused builds since EXACT_R record it; older archived builds ran the coarser register tiles
        "build_exact_slots": float((b.get("defines") or {}).get("EXACT_R", 0)),
    }


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _measured_row(gpu_dir: Path, network: str, variant: str, batch: int, d: Path | None) -> tuple[dict, list[dict]]:
    notes: list[str] = []
    row: dict = {}
    kernels: list[dict] = []
    if d is None or not d.is_dir():
        notes.append("not measured on this GPU")
    else:
        row.update(_read_verify(d, notes))
        row.update(_read_time(d, notes))
        prof, kernels = _read_profile(d, batch, notes)
        row.update(prof)
        if row.get("verify_passed") is False:
            notes.append("verification FAILED: measurements dropped")
            for c in MEASURED_COLUMNS:
                row[c] = np.nan
            kernels = []
    row.update(_read_build(gpu_dir, variant))
    row["model_only"] = _nan(row.get("us_per_image_median", np.nan)) and _nan(row.get("dram_bytes_per_image", np.nan))
    row["missing"] = "; ".join(notes)
    return row, kernels


# ---------------------------------------------------------------- the network: compulsory traffic


def block_bytes(network: str, first: str, last: str, bytes_per_value: int = 4) -> dict[str, int]:
    """Input, output, weight and largest-intermediate bytes of the fused block ``first..last``.

    Compulsory DRAM traffic per image is input + output + weights/batch: what any schedule must
    move. The largest intermediate decides when layer-by-layer stops fitting in L2.
    """
    from pipeline.core.networks import load_network

    net = load_network(network)
    shapes = net.shapes()
    i, j = net.index(first), net.index(last)
    weights = 0
    for layer, shape_in in zip(net.layers[i : j + 1], shapes[i : j + 1]):
        if layer.type == "conv":
            weights += layer.out_channels * (shape_in.channels // layer.groups) * layer.kernel**2 + layer.out_channels
        elif layer.type == "fc":
            weights += layer.out_channels * shape_in.values + layer.out_channels
    inter = [s.values for s in shapes[i + 1 : j + 1]]  # outputs of every layer but the last
    return {
        "input_bytes_per_image": shapes[i].values * bytes_per_value,
        "output_bytes_per_image": shapes[j + 1].values * bytes_per_value,
        "weight_bytes": weights * bytes_per_value,
        "largest_intermediate_bytes_per_image": max(inter, default=0) * bytes_per_value,
    }


def compulsory_dram_bytes_per_image(network: str, first: str, last: str, batch: int, bytes_per_value: int = 4) -> float:
    """Input + output per image plus the block's weights shared over the batch."""
    b = block_bytes(network, first, last, bytes_per_value)
    return b["input_bytes_per_image"] + b["output_bytes_per_image"] + b["weight_bytes"] / batch


def groups_from_config(config: Mapping) -> dict[str, tuple[str, str]]:
    """network -> (first, last) of the kernels' fusion group (or a network's only group)."""
    out: dict[str, tuple[str, str]] = {}
    for name, spec in (config.get("networks") or {}).items():
        groups = spec.get("groups") or {}
        if len(groups) == 1:
            out[name] = tuple(next(iter(groups.values())))
    k = config.get("kernels") or {}
    if k.get("network") in (config.get("networks") or {}):
        out[k["network"]] = tuple(config["networks"][k["network"]]["groups"][k["group"]])
    return out


# ---------------------------------------------------------------- collect


def _rows_for_root(root: Path, source: str, plan: pd.DataFrame, include_plan: bool) -> tuple[list[dict], list[dict]]:
    rows, kernel_rows = [], []
    gdirs = gpu_dirs(root)
    planned = list(plan[["network", "variant", "batch"]].itertuples(index=False, name=None))
    if not gdirs and include_plan:
        for network, variant, batch in planned:
            rows.append({"source": source, "gpu": NO_GPU, "network": network, "variant": variant,
                         "batch": int(batch), "model_only": True, "missing": "no GPU results"})
    for g in gdirs:
        found = {(n, v, b): d for n, v, b, d in measurement_dirs(g)}
        wanted = dict.fromkeys(planned if include_plan else []) | dict.fromkeys(found)
        prov = read_json(g / "provenance.json") or {}
        for network, variant, batch in wanted:
            row, kernels = _measured_row(g, network, variant, int(batch), found.get((network, variant, batch)))
            row.update(source=source, gpu=g.name, network=network, variant=variant, batch=int(batch))
            if _nan(row.get("gpu_name", np.nan)):
                row["gpu_name"] = prov.get("gpu_name", np.nan)
            rows.append(row)
            for k in kernels:
                kernel_rows.append(_kernel_row(k, row))
    return rows, kernel_rows


def _kernel_row(k: dict, row: dict) -> dict:
    """One kernel of profile.json, with the derived fields the figures use (ncu.py writes
    duration_ns, DRAM read/write, L2 sectors requested by the SMs, static + dynamic smem)."""
    k = dict(k)
    if "duration_us" not in k and "duration_ns" in k:
        k["duration_us"] = _num(k["duration_ns"]) / 1e3
    if "dram_bytes" not in k and "dram_read_bytes" in k:
        k["dram_bytes"] = _num(k.get("dram_read_bytes")) + _num(k.get("dram_write_bytes"))
    if "l2_sm_bytes" not in k and "l2_sm_sectors" in k:
        k["l2_sm_bytes"] = 32.0 * _num(k["l2_sm_sectors"])
    if "shared_bytes" not in k and "shared_static_bytes" in k:
        k["shared_bytes"] = _num(k.get("shared_static_bytes")) + _num(k.get("shared_dynamic_bytes"))
    out = {c: row[c] for c in KEYS}
    out["kernel"] = str(k.get("name", "?"))
    for c in ("duration_us", "flops", "dram_bytes", "l2_bytes", "l2_sm_bytes", "l1_bytes", "achieved_occupancy_pct",
              "theoretical_occupancy_pct", "registers", "shared_bytes"):
        out[c] = _num(k.get(c))
    return out


def _attach_plan(df: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    cols = ["network", "variant", "batch", "strategy", "tile", *PLAN_MODEL_COLUMNS]
    p = plan[cols].drop_duplicates(["network", "variant", "batch"])
    df = df.drop(columns=[c for c in cols[3:] if c in df.columns]).merge(p, on=["network", "variant", "batch"], how="left")
    df["strategy"] = df["strategy"].fillna(df["variant"].map(strategy_of))
    df["tile"] = df["variant"].map(tile_of)
    return df


def _ratio_to(df: pd.DataFrame, reference: str, value: str) -> pd.Series:
    """value of the ``reference`` variant in the same source/gpu/network/batch, aligned to df."""
    ref = df.loc[df["variant"] == reference, ["source", "gpu", "network", "batch", value]]
    ref = ref.drop_duplicates(["source", "gpu", "network", "batch"]).rename(columns={value: "_ref"})
    return df[["source", "gpu", "network", "batch"]].merge(ref, how="left", on=["source", "gpu", "network", "batch"])["_ref"].to_numpy()


def derive(df: pd.DataFrame, groups: Mapping[str, tuple[str, str]] | None = None, bytes_per_value: int = 4) -> pd.DataFrame:
    """Derived columns: speedups with IQR bounds, traffic ratios, FLOP/s, arithmetic intensities."""
    df = df.copy()
    for c in [*TIME_COLUMNS, *PROFILE_COLUMNS, *VERIFY_COLUMNS, *BUILD_COLUMNS, *PLAN_MODEL_COLUMNS]:
        if c not in df.columns:
            df[c] = np.nan
    num = [c for c in [*TIME_COLUMNS, *PROFILE_COLUMNS, *BUILD_COLUMNS, *PLAN_MODEL_COLUMNS, "rel_l2_error",
                       "max_abs_error_scaled", "rtol"] if c not in ("gpu_name", "throttle_reasons", "throttled")]
    df[num] = df[num].apply(pd.to_numeric, errors="coerce")
    df["us_per_image"] = df["us_per_image_median"]
    for ref in ("lbl", "vendor"):
        med, q1, q3 = (_ratio_to(df, ref, c) for c in ("us_per_image", "us_per_image_q1", "us_per_image_q3"))
        df[f"speedup_vs_{ref}"] = med / df["us_per_image"]
        # Conservative spread from the two IQRs: slowest-reference/fastest-us and vice versa.
        df[f"speedup_vs_{ref}_lo"] = q1 / df["us_per_image_q3"]
        df[f"speedup_vs_{ref}_hi"] = q3 / df["us_per_image_q1"]
    df["dram_saving_vs_lbl_pct"] = 100.0 * (1.0 - df["dram_bytes_per_image"] / _ratio_to(df, "lbl", "dram_bytes_per_image"))
    df["dram_ratio_to_model"] = df["dram_bytes_per_image"] / df["model_dram_bytes_per_image"]
    comp = []
    for network, batch in zip(df["network"], df["batch"]):
        g = (groups or {}).get(network)
        comp.append(compulsory_dram_bytes_per_image(network, g[0], g[1], int(batch), bytes_per_value) if g else np.nan)
    df["compulsory_dram_bytes_per_image"] = comp
    df["dram_ratio_to_compulsory"] = df["dram_bytes_per_image"] / df["compulsory_dram_bytes_per_image"]
    df["achieved_flops_per_s"] = df["flops_per_image"] / (df["us_per_image"] * 1e-6)
    df["ai_dram_flops_per_byte"] = df["flops_per_image"] / df["dram_bytes_per_image"]
    # lts__t_bytes also counts profiler/flush traffic (docs/measurement.md): the roofline uses the
    # SM-requested L2 bytes where the profile has them.
    l2 = df["l2_sm_bytes_per_image"].fillna(df["l2_bytes_per_image"]) if "l2_sm_bytes_per_image" in df else df["l2_bytes_per_image"]
    df["ai_l2_flops_per_byte"] = df["flops_per_image"] / l2
    df["ai_l1_flops_per_byte"] = df["flops_per_image"] / df["l1_bytes_per_image"]
    df["model_useful_flops_per_image"] = 2.0 * df["model_useful_macs_per_image"]
    df = df.replace([np.inf, -np.inf], np.nan)
    return df


def collect(
    results_dirs: Iterable[Path],
    plan_csv: Path | None,
    archive_dirs: Iterable[Path] = (),
    groups: Mapping[str, tuple[str, str]] | None = None,
    bytes_per_value: int = 4,
) -> pd.DataFrame:
    """The tidy table: one row per source x gpu x network x variant x batch.

    ``results_dirs`` are this run's results roots (or GPU dirs); every planned variant appears for
    each GPU found there (model-only rows when nothing was measured). ``archive_dirs`` add only what
    they measured, with their own ``plan.csv`` if they carry one. ``groups`` (network -> first, last
    layer) enables the compulsory-traffic columns.
    """
    plan = read_plan(plan_csv)
    frames = []
    for root in results_dirs:
        rows, _ = _rows_for_root(Path(root), SOURCE_THIS_RUN, plan, include_plan=True)
        if rows:
            frames.append(_attach_plan(pd.DataFrame(rows), plan))
    for adir in archive_dirs:
        aplan = read_plan(Path(adir) / "plan.csv") if (Path(adir) / "plan.csv").exists() else plan
        rows, _ = _rows_for_root(Path(adir), archive_source(Path(adir)), aplan, include_plan=False)
        if rows:
            frames.append(_attach_plan(pd.DataFrame(rows), aplan))
    if not frames:
        frames = [pd.DataFrame(columns=[*KEYS, "model_only", "missing"])]
    df = pd.concat(frames, ignore_index=True)
    df = derive(df, groups, bytes_per_value)
    df["model_only"] = df["model_only"].astype(bool)
    df["missing"] = df["missing"].fillna("")
    df["batch"] = df["batch"].astype(int)
    front = [*KEYS, "strategy", "tile", "model_only", "missing"]
    df = df[front + [c for c in df.columns if c not in front]]
    return df.sort_values(KEYS, key=sort_key).reset_index(drop=True)


def _sources(results_dirs: Iterable[Path], archive_dirs: Iterable[Path]) -> list[tuple[Path, str]]:
    """(root, source label) for this run's result roots, then every archive."""
    return [(Path(r), SOURCE_THIS_RUN) for r in results_dirs] + [(Path(a), archive_source(Path(a))) for a in archive_dirs]


def sort_key(s: pd.Series) -> pd.Series:
    if s.name == "source":  # this run first, then archives by name
        return s.map(lambda x: "" if x == SOURCE_THIS_RUN else str(x))
    if s.name == "variant":  # lbl, reuse by tile, recompute by tile, vendor
        return s.map(lambda v: 10_000 * variant_rank(v)[0] + variant_rank(v)[1])
    return s


def collect_kernels(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """Per-kernel rows from every available profile (for the roofline and occupancy figures)."""
    rows: list[dict] = []
    empty = pd.DataFrame(columns=["source", "gpu", "network", "variant", "batch"])
    for root in results_dirs:
        rows += _rows_for_root(Path(root), SOURCE_THIS_RUN, read_plan(None), include_plan=False)[1]
    for adir in archive_dirs:
        rows += _rows_for_root(Path(adir), archive_source(Path(adir)), read_plan(None), include_plan=False)[1]
    cols = ["kernel", "duration_us", "flops", "dram_bytes", "l2_bytes", "l2_sm_bytes", "l1_bytes",
            "achieved_occupancy_pct", "theoretical_occupancy_pct", "registers", "shared_bytes"]
    df = pd.DataFrame(rows) if rows else empty.reindex(columns=[*KEYS, *cols])
    df = df.reindex(columns=[*KEYS, *cols])
    df["achieved_flops_per_s"] = df["flops"] / (df["duration_us"] * 1e-6)
    bytes_at = {"dram": df["dram_bytes"], "l2": df["l2_sm_bytes"].fillna(df["l2_bytes"]), "l1": df["l1_bytes"]}
    for level, moved in bytes_at.items():
        df[f"ai_{level}_flops_per_byte"] = df["flops"] / moved
    return df.replace([np.inf, -np.inf], np.nan)


def collect_ceilings(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per source x gpu: measured roofline ceilings, datasheet values, L2 size, GPU name."""
    rows = []
    sources = _sources(results_dirs, archive_dirs)
    for root, source in sources:
        for g in gpu_dirs(root):
            c = read_json(g / "ceilings.json") or {}
            prov = read_json(g / "provenance.json") or {}
            row = {"source": source, "gpu": g.name, "gpu_name": prov.get("gpu_name", c.get("gpu_name", np.nan))}
            row.update({k: _num(c.get(k)) for k in CEILING_COLUMNS})
            if math.isnan(row["fp32_flops_per_s"]):  # pipeline/stages/ceilings.py names it fp32_flop_per_s
                row["fp32_flops_per_s"] = _num(c.get("fp32_flop_per_s"))
            row.update({k: _num(v) for k, v in c.items() if k.startswith("datasheet_")})
            l2 = next((c.get(k, prov.get(k)) for k in _L2_SIZE_KEYS if c.get(k, prov.get(k)) is not None), None)
            row["l2_cache_bytes"] = _num(l2)
            row["has_ceilings"] = bool(c)
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["source", "gpu", "gpu_name", *CEILING_COLUMNS, "l2_cache_bytes", "has_ceilings"])


PHASE_COLUMNS = ["phase", "share", "us_per_image", "phases_run_us_per_image", "scaled_to", "method",
                 "instrumented_over_timed"]


def collect_phases(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per source x gpu x network x variant x batch x phase (pipeline/stages/phases.py).

    A phase's ``us_per_image`` is its share times the timing stage's median for the same variant and
    batch (``scaled_to`` = "time.json"), so the bars add up to the number the speed figures show;
    without a time.json it is the share of the phases run's own median ("phases.json").
    """
    rows = []
    sources = _sources(results_dirs, archive_dirs)
    for root, source in sources:
        for g in gpu_dirs(root):
            for network, variant, batch, d in measurement_dirs(g):
                ph = read_json(d / "phases.json")
                if not ph or not ph.get("phases"):
                    continue
                t = read_json(d / "time.json") or {}
                total = _num(t.get("us_per_image_median"))
                scaled_to = "time.json" if not math.isnan(total) else "phases.json"
                if scaled_to == "phases.json":
                    total = _num(ph.get("us_per_image_median"))
                for p in ph["phases"]:
                    rows.append({"source": source, "gpu": g.name, "network": network, "variant": variant,
                                 "batch": batch, "strategy": strategy_of(variant), "phase": p["phase"],
                                 "share": _num(p.get("share")), "us_per_image": _num(p.get("share")) * total,
                                 "phases_run_us_per_image": _num(p.get("us_per_image")), "scaled_to": scaled_to,
                                 "method": ph.get("method", ""),
                                 "instrumented_over_timed": _num(ph.get("instrumented_over_timed"))})  # fmt: skip
    cols = ["source", "gpu", "network", "variant", "batch", "strategy", *PHASE_COLUMNS]
    return pd.DataFrame(rows, columns=cols)


PROVENANCE_FIELDS = ["gpu_name", "gpu_uuid", "driver_version", "cuda_runtime_version", "cuda_driver_version",
                     "cupy_version", "ncu_version", "sm_clock_mhz", "mem_clock_mhz", "power_limit_w",
                     "git_commit", "timestamp_utc", "command"]


def collect_provenance(results_dirs: Iterable[Path], archive_dirs: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per source x gpu: where the numbers came from, and the profiler settings used.

    ncu settings are read from the profile.json files of that GPU (every distinct value listed);
    the NVML settings are those of pipeline/core/nvml.py (sampling period, energy counter).
    """
    rows = []
    sources = _sources(results_dirs, archive_dirs)
    for root, source in sources:
        for g in gpu_dirs(root):
            prov = read_json(g / "provenance.json") or {}
            row = {"source": source, "gpu": g.name, **{k: prov.get(k, np.nan) for k in PROVENANCE_FIELDS}}
            profiles = [read_json(p) or {} for p in sorted(g.glob("*/*/b*/profile.json"))]
            for key in ("cache_control", "clock_control", "ncu_version"):
                seen = sorted({str(p[key]) for p in profiles if p.get(key) is not None})
                row[f"ncu_{key}" if not key.startswith("ncu") else key] = ", ".join(seen) or row.get(key, np.nan)
            row["nvml"] = "energy: nvmlDeviceGetTotalEnergyConsumption over >= 1 s; power, clocks, reasons sampled every 10 ms"
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- model files


def read_model_csv(path: Path, required: Iterable[str]) -> pd.DataFrame:
    """A model CSV with ``required`` columns guaranteed (NaN where absent); empty if the file is."""
    required = list(required)
    if path is None or not Path(path).exists():
        return pd.DataFrame(columns=required)
    df = pd.read_csv(path)
    for c in required:
        if c not in df.columns:
            df[c] = np.nan
    return df


def read_pyramids(path: Path) -> pd.DataFrame:
    """pyramids.csv with the columns the figures use; ``group`` from whichever name the model used."""
    df = read_model_csv(path, ["tile", "strategy", "onchip_bytes", "extra_macs_per_image",
                               "dram_bytes_per_image_fused", "dram_bytes_per_image_lbl"])
    if "group" not in df.columns:
        alt = next((c for c in ("group_name", "fusion_group", "layers") if c in df.columns), None)
        df["group"] = df[alt].astype(str) if alt else ""
    return df


def read_dse(path: Path) -> pd.DataFrame:
    """dse.csv with ``partition``, ``onchip_bytes``, ``dram_bytes_per_image`` and a boolean ``pareto``."""
    df = read_model_csv(path, ["partition", "onchip_bytes", "dram_bytes_per_image", "pareto"])
    df["pareto"] = df["pareto"].map(lambda x: str(x).strip().lower() in ("true", "1", "yes")).astype(bool)
    return df


def read_paper_comparison(path: Path) -> pd.DataFrame:
    """paper_comparison.csv (quantity, unit, paper_value, model_value, ratio, note)."""
    return read_model_csv(path, ["quantity", "unit", "paper_value", "model_value", "ratio", "note"])


def paper_value(paper: pd.DataFrame, figure_id: str) -> float:
    """The paper's value of figure ``figure_id`` (an id of reports/paper_figures.yaml), else NaN."""
    if paper.empty or "figure" not in paper.columns:
        return math.nan
    hit = paper[paper["figure"] == figure_id]
    return _num(hit["paper_value"].iloc[0]) if len(hit) else math.nan


def save_table(df: pd.DataFrame, csv_path: Path, parquet_path: Path | None = None) -> None:
    """CSV for people, Parquet for typed reloads; parents created."""
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    if parquet_path is not None:
        out = df.copy()
        for c in out.columns:  # mixed object columns (NaN + str) break Arrow's type inference
            if out[c].dtype == object:
                out[c] = out[c].map(lambda x: None if _nan(x) else str(x))
        out.to_parquet(parquet_path, index=False)


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
    sm = snakemake  # noqa: F821
    results = [Path(p) for p in sm.params.get("results_dirs", ["results"])]
    archives = [Path(p) for p in sm.params.get("archive_dirs", [])]
    grp = groups_from_config(sm.config)
    bpv = int(sm.config.get("model", {}).get("bytes_per_value", 4))
    tidy = collect(results, Path(sm.input.plan), archives, grp, bpv)
    save_table(tidy, Path(sm.output.csv), Path(sm.output.parquet))
    if "kernels" in sm.output.keys():
        save_table(collect_kernels(results, archives), Path(sm.output.kernels))
    if "ceilings" in sm.output.keys():
        save_table(collect_ceilings(results, archives), Path(sm.output.ceilings))
    if "phases" in sm.output.keys():
        save_table(collect_phases(results, archives), Path(sm.output.phases))
    logging.info("tidy table: %d rows (%d model-only)", len(tidy), int(tidy["model_only"].sum()))
