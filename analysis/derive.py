"""Derived columns: speedups with IQR bounds, traffic ratios, FLOP/s, intensities, compute-ceiling shares.

Everything here follows from columns that were read (analysis/collect.py) or joined from the plan;
nothing is modelled here. A reference is found by its ``strategy`` and ``precision`` columns: a
variant is compared with lbl of its own precision (the same GEMM core, so the ratio measures fusion),
with the fastest PyTorch anchor of its own precision, and with the sum of cuDNN's convolutions alone
at its precision (a floor under any layer-by-layer pass built from them).
"""

import math

import numpy as np
import pandas as pd

from kernels.registry import DEFAULT_PRECISION, GEN_IMPL  # GEN_IMPL: the impl of lbl-gen, fused-...-gen
from pipeline.core.strategy import Strategy
from pipeline.stages.ceilings import COMPUTE_CEILING_KEYS

GROUP_KEYS = ["source", "gpu", "network", "group", "batch"]
# Within these keys (and the precision) a reference is looked up by record columns, never by name;
# lbl also by kernel family (kernel_family): generated kernels against lbl-gen, hand-written against lbl.
_LABEL_COLUMNS = {"impl"}  # record labels besides _TEXT_COLUMNS: never coerced to numbers
# Columns that hold numbers (read from JSON, they may arrive as objects).
_TEXT_COLUMNS = {"source", "gpu", "network", "variant", "group", "strategy", "tile", "precision", "gpu_name",
                 "throttle_reasons", "throttled", "missing", "model_only", "verify_passed", "build_arch",
                 "roofline_flops_source", "convs_alone_by_layer", "launch"}  # fmt: skip


def num(x) -> float:
    """``x`` as a float, NaN when it is none."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def is_nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def kernel_family(df: pd.DataFrame) -> pd.Series:
    """The lbl a row is compared with: ``gen`` for generated kernels (``impl`` "gen"), else ""
    (hand-written kernels and the PyTorch anchors, whose lbl is the hand-written one). Rows
    without an ``impl`` column (tables from before it existed) are all "" ."""
    impl = df["impl"] if "impl" in df else pd.Series("", index=df.index)
    return pd.Series(np.where(impl.astype(object) == GEN_IMPL, GEN_IMPL, ""), index=df.index)


def reference_keys(strategy: Strategy) -> list[str]:
    """The columns a row and its ``strategy`` reference share: source, gpu, network, group, batch
    and precision, and for lbl also the kernel family (:func:`kernel_family`, column ``_family``)."""
    return [*GROUP_KEYS, "precision", *(["_family"] if strategy == Strategy.LBL else [])]


def reference_rows(df: pd.DataFrame, strategy: Strategy) -> pd.DataFrame:
    """Per :func:`reference_keys`, the reference row of ``strategy``: lbl of that precision and
    kernel family, or the fastest PyTorch anchor of that precision (the best a user could pick
    there); with a ``_family`` column."""
    df = df.assign(_family=kernel_family(df))
    ref = df.loc[df["strategy"] == strategy].sort_values("us_per_image", na_position="last")
    return ref.drop_duplicates(reference_keys(strategy))


def reference_value(df: pd.DataFrame, strategy: Strategy, value: str) -> np.ndarray:
    """``value`` of the ``strategy`` reference (see :func:`reference_rows`) at the same source, gpu,
    network, group, batch and precision (lbl: and kernel family), aligned to ``df``."""
    keys = reference_keys(strategy)
    ref = reference_rows(df, strategy)[[*keys, value]].rename(columns={value: "_ref"})
    rows = df.assign(_family=kernel_family(df))[keys]
    return rows.merge(ref, how="left", on=keys)["_ref"].to_numpy()


def convs_alone_reference(df: pd.DataFrame) -> np.ndarray:
    """The summed cuDNN convolutions alone (the channels-last anchor's ``convs_alone_us_per_image``)
    at the same source, gpu, network, batch and precision, aligned to ``df``; NaN where none was timed."""
    keys = [*GROUP_KEYS, "precision"]
    col = "convs_alone_us_per_image"
    if col not in df:
        return np.full(len(df), np.nan)
    ref = df.dropna(subset=[col]).sort_values(col).drop_duplicates(keys)[[*keys, col]].rename(columns={col: "_ref"})
    return df[keys].merge(ref, how="left", on=keys)["_ref"].to_numpy()


def roofline_flops(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """FLOPs per image the roofline counts, and where they come from. ncu's FLOP metrics count FP32
    instructions (FADD, FMUL, FFMA) only, so they see none of a tensor-core variant's (tf32, fp16,
    bf16) HMMA work: there the model's useful FLOPs are used. fp32 variants keep ncu's executed count."""
    fp32 = df["precision"].fillna(DEFAULT_PRECISION) == DEFAULT_PRECISION
    flops = df["flops_per_image"].where(fp32, df["model_useful_flops_per_image"])
    source = pd.Series(np.where(fp32, "ncu FP32 instructions", "model useful MACs x 2"), index=df.index)
    return flops, source.where(flops.notna(), "")


def compute_ceilings(df: pd.DataFrame, ceilings: pd.DataFrame | None) -> np.ndarray:
    """The measured compute ceiling of each row's own precision on its source and GPU (FP32 FMA for
    fp32, the tensor-core mma.sync peak for tf32/fp16/bf16), NaN where ceilings.json lacks it (runs
    archived before the tensor-core ceilings were measured)."""
    out = np.full(len(df), np.nan)
    if ceilings is None or ceilings.empty:
        return out
    keys = ["source", "gpu"]
    rows = df[[*keys, "precision"]].merge(ceilings.drop_duplicates(keys), how="left", on=keys)
    precision = rows["precision"].fillna(DEFAULT_PRECISION).to_numpy()
    for p, col in COMPUTE_CEILING_KEYS.items():
        if col in rows:
            out = np.where(precision == p, pd.to_numeric(rows[col], errors="coerce").to_numpy(float), out)
    return out


def derive(df: pd.DataFrame, ceilings: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy table's derived columns, added to a copy of ``df`` (analysis/collect.py's rows, every
    column present); ``ceilings`` (collect_ceilings) gives each row its precision's compute ceiling."""
    df = df.copy()
    numeric = [c for c in df.columns if c not in _TEXT_COLUMNS | _LABEL_COLUMNS and c != "batch"]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")
    df = df.reindex(columns=list(dict.fromkeys([*df.columns, "group", "impl"])))  # reference keys, even if absent
    df["us_per_image"] = df["us_per_image_median"]
    for ref in (Strategy.LBL, Strategy.VENDOR):
        med, q1, q3 = (reference_value(df, ref, c) for c in ("us_per_image", "us_per_image_q1", "us_per_image_q3"))
        df[f"speedup_vs_{ref}"] = med / df["us_per_image"]
        # Conservative spread from the two IQRs: slowest-reference/fastest-us and vice versa.
        df[f"speedup_vs_{ref}_lo"] = q1 / df["us_per_image_q3"]
        df[f"speedup_vs_{ref}_hi"] = q3 / df["us_per_image_q1"]
    # Above 1: faster than any layer-by-layer pass whose convolutions are cuDNN's could be.
    df["speedup_vs_cudnn_convs_alone"] = convs_alone_reference(df) / df["us_per_image"]
    lbl_dram = reference_value(df, Strategy.LBL, "dram_bytes_per_image")
    df["dram_saving_vs_lbl_pct"] = 100.0 * (1.0 - df["dram_bytes_per_image"] / lbl_dram)
    df["dram_ratio_to_model"] = df["dram_bytes_per_image"] / df["model_dram_bytes_per_image"]
    df["dram_ratio_to_compulsory"] = df["dram_bytes_per_image"] / df["compulsory_dram_bytes_per_image"]
    # ncu's range ends with part of a fused pass's output still dirty in L2 (written back later, not
    # counted); the output's bytes are owed DRAM all the same: the bytes with the output counted as
    # written wherever ncu saw less.
    rw = df.reindex(columns=["dram_read_bytes_per_image", "dram_write_bytes_per_image", "output_bytes_per_image"])
    written = rw.iloc[:, 1:].max(axis=1, skipna=False)  # NaN without both
    df["dram_bytes_per_image_output_written"] = rw["dram_read_bytes_per_image"] + written
    df["dram_ratio_to_compulsory_output_written"] = (df["dram_bytes_per_image_output_written"]
                                                     / df["compulsory_dram_bytes_per_image"])
    df["model_useful_flops_per_image"] = 2.0 * df["model_useful_macs_per_image"]
    flops, df["roofline_flops_source"] = roofline_flops(df)
    df["achieved_flops_per_s"] = flops / (df["us_per_image"] * 1e-6)
    df["ai_dram_flops_per_byte"] = flops / df["dram_bytes_per_image"]
    # lts__t_bytes also counts profiler/flush traffic (docs/measurement.md): the roofline uses the
    # SM-requested L2 bytes where the profile has them.
    df["ai_l2_flops_per_byte"] = flops / df["l2_sm_bytes_per_image"].fillna(df["l2_bytes_per_image"])
    df["ai_l1_flops_per_byte"] = flops / df["l1_bytes_per_image"]
    # Useful FLOPs for every precision, so the share compares across precisions and strategies
    # (recompute's extra work and an FFT's fewer FLOPs do not count as progress).
    df["useful_flops_per_s"] = df["model_useful_flops_per_image"] / (df["us_per_image"] * 1e-6)
    df["compute_ceiling_flop_per_s"] = compute_ceilings(df, ceilings)
    df["pct_of_compute_ceiling"] = 100.0 * df["useful_flops_per_s"] / df["compute_ceiling_flop_per_s"]
    return df.replace([np.inf, -np.inf], np.nan)


def derive_kernels(kernels: pd.DataFrame) -> pd.DataFrame:
    """Per-kernel achieved FLOP/s and arithmetic intensities at DRAM, L2 (SM-requested) and L1."""
    k = kernels.copy()
    k["achieved_flops_per_s"] = k["flops"] / (k["duration_us"] * 1e-6)
    moved = {"dram": k["dram_bytes"], "l2": k["l2_sm_bytes"].fillna(k["l2_bytes"]), "l1": k["l1_bytes"]}
    for level, b in moved.items():
        k[f"ai_{level}_flops_per_byte"] = k["flops"] / b
    return k.replace([np.inf, -np.inf], np.nan)
