"""Read the tables a figure or table rule takes as input: the tidy tables this package wrote and
the model's CSV files, each with the columns its readers use guaranteed (NaN where absent)."""

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd


def read_model_csv(path: Path | None, required: Iterable[str], dtype: Mapping | None = None) -> pd.DataFrame:
    """A CSV with ``required`` columns guaranteed (NaN where absent); empty if the file is."""
    required = list(required)
    if path is None or not Path(path).exists():
        return pd.DataFrame(columns=required)
    df = pd.read_csv(path, dtype=dtype)
    for c in required:
        if c not in df.columns:
            df[c] = np.nan
    return df


# Record columns stay labels: "4" and "2x7" (pandas would read a tile column of squares as numbers).
RECORD_DTYPES = {"tile": str, "precision": str, "strategy": str, "group": str, "impl": str}


def read_table(path: Path) -> pd.DataFrame:
    """A table this package wrote (tidy.csv, tidy_kernels.csv, ...), record columns as labels;
    ``impl`` "" where empty (a CSV reads an empty string back as NaN)."""
    df = pd.read_csv(path, dtype=RECORD_DTYPES)
    if "impl" in df:
        df["impl"] = df["impl"].astype(object).where(df["impl"].notna(), "")
    return df


def read_pyramids(path: Path) -> pd.DataFrame:
    """pyramids.csv with the columns the figures use."""
    return read_model_csv(path, ["group", "first_layer", "last_layer", "bytes_per_value", "tile", "strategy",
                                 "reuse_axes", "onchip_bytes", "extra_macs_per_image", "dram_bytes_per_image_fused",
                                 "dram_bytes_per_image_lbl", "dram_bytes_per_image_lbl_pool_on_load",
                                 "weight_bytes", "out_w"], {"tile": str, "group": str, "reuse_axes": str})  # fmt: skip


def read_dse(path: Path) -> pd.DataFrame:
    """dse.csv with ``partition``, ``onchip_bytes``, ``dram_bytes_per_image`` and a boolean ``pareto``."""
    df = read_model_csv(path, ["partition", "onchip_bytes", "dram_bytes_per_image", "pareto"])
    df["pareto"] = df["pareto"].map(lambda x: str(x).strip().lower() in ("true", "1", "yes")).astype(bool)
    return df


def read_paper_comparison(path: Path) -> pd.DataFrame:
    """paper_comparison.csv (pipeline/model/paper.py): one row per paper figure and combination of
    conventions, with the two named sets (``default``, ``paper_reading``) and the figure's ``verdict``."""
    return read_model_csv(path, ["figure", "quantity", "network", "unit", "paper_value", "model_value",
                                 "ratio_model_to_paper", "convention", "default", "paper_reading", "verdict",
                                 "note"])  # fmt: skip


READERS = {"tidy": read_table, "kernels": read_table, "ceilings": read_table, "phases": read_table,
           "provenance": read_table, "dse": read_dse, "pyramids": read_pyramids,
           "paper": read_paper_comparison}  # fmt: skip


def read_inputs(paths: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """The tables a figure or table rule names as inputs (keys of READERS), read."""
    return {k: READERS[k](Path(p)) for k, p in paths.items() if k in READERS}
