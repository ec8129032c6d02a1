"""Derived columns: speedups with IQR bounds, traffic ratios, FLOP/s and arithmetic intensities.

Everything here follows from columns that were read (analysis/collect.py) or joined from the plan;
nothing is modelled here. A reference is found by its ``strategy`` and ``precision`` columns: a
variant is compared with lbl of its own precision (the same GEMM core, so the ratio measures fusion)
and with the fastest PyTorch anchor of its own precision.
"""

import math

import numpy as np
import pandas as pd

from pipeline.core.strategy import Strategy

GROUP_KEYS = ["source", "gpu", "network", "group", "batch"]
# Within these keys (and the precision) a reference is looked up by record columns, never by name;
# lbl also by kernel family (kernel_family): generated kernels against lbl-gen, hand-written against lbl.
GEN_IMPL = "gen"  # the ``impl`` of generated kernels (kernels/generate.py): lbl-gen, fused-...-gen
_LABEL_COLUMNS = {"impl"}  # record labels besides _TEXT_COLUMNS: never coerced to numbers
# Columns that hold numbers (read from JSON, they may arrive as objects).
_TEXT_COLUMNS = {"source", "gpu", "network", "variant", "group", "strategy", "tile", "precision", "gpu_name",
                 "throttle_reasons", "throttled", "missing", "model_only", "verify_passed", "build_arch"}  # fmt: skip


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


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """The tidy table's derived columns, added to a copy of ``df`` (analysis/collect.py's rows, every
    column present)."""
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
    lbl_dram = reference_value(df, Strategy.LBL, "dram_bytes_per_image")
    df["dram_saving_vs_lbl_pct"] = 100.0 * (1.0 - df["dram_bytes_per_image"] / lbl_dram)
    df["dram_ratio_to_model"] = df["dram_bytes_per_image"] / df["model_dram_bytes_per_image"]
    df["dram_ratio_to_compulsory"] = df["dram_bytes_per_image"] / df["compulsory_dram_bytes_per_image"]
    df["achieved_flops_per_s"] = df["flops_per_image"] / (df["us_per_image"] * 1e-6)
    df["ai_dram_flops_per_byte"] = df["flops_per_image"] / df["dram_bytes_per_image"]
    # lts__t_bytes also counts profiler/flush traffic (docs/measurement.md): the roofline uses the
    # SM-requested L2 bytes where the profile has them.
    df["ai_l2_flops_per_byte"] = df["flops_per_image"] / df["l2_sm_bytes_per_image"].fillna(df["l2_bytes_per_image"])
    df["ai_l1_flops_per_byte"] = df["flops_per_image"] / df["l1_bytes_per_image"]
    df["model_useful_flops_per_image"] = 2.0 * df["model_useful_macs_per_image"]
    return df.replace([np.inf, -np.inf], np.nan)


def derive_kernels(kernels: pd.DataFrame) -> pd.DataFrame:
    """Per-kernel achieved FLOP/s and arithmetic intensities at DRAM, L2 (SM-requested) and L1."""
    k = kernels.copy()
    k["achieved_flops_per_s"] = k["flops"] / (k["duration_us"] * 1e-6)
    moved = {"dram": k["dram_bytes"], "l2": k["l2_sm_bytes"].fillna(k["l2_bytes"]), "l1": k["l1_bytes"]}
    for level, b in moved.items():
        k[f"ai_{level}_flops_per_byte"] = k["flops"] / b
    return k.replace([np.inf, -np.inf], np.nan)
