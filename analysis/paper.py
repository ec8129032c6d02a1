"""The paper's own figures (Alwani et al., MICRO 2016) as the report marks them, in bytes.

They come from results/model/paper_comparison.csv (pipeline/model/paper.py), one row per figure id
of reports/paper_figures.yaml and convention, each with its unit.
"""

import math

import pandas as pd

from analysis.derive import finite, num

KB, MB = 1e3, 1e6
_BYTES_PER_UNIT = {"mb": MB, "kb": KB, "b": 1.0, "bytes": 1.0, "mib": 2**20, "kib": 2**10}


def paper_value(paper: pd.DataFrame, figure_id: str) -> float:
    """The paper's value of figure ``figure_id`` (an id of reports/paper_figures.yaml), else NaN."""
    if paper.empty or "figure" not in paper.columns:
        return math.nan
    hit = paper[paper["figure"] == figure_id]
    return num(hit["paper_value"].iloc[0]) if len(hit) else math.nan


def paper_bytes(paper: pd.DataFrame, figure_id: str) -> float:
    """The paper's value of a figure given in a byte unit (MB, KB, ...), in bytes."""
    v = paper_value(paper, figure_id)
    if not finite(v):
        return math.nan
    unit = str(paper.loc[paper["figure"] == figure_id, "unit"].iloc[0]).strip().lower()
    return v * _BYTES_PER_UNIT.get(unit, 1.0)


def paper_marks(paper: pd.DataFrame) -> dict:
    """The paper's VGG-E traffic figures (bytes per image) and design point; empty without a table."""
    if paper is None or paper.empty:
        return {}
    return {
        "network": "vgg_e",
        "lbl_bytes": paper_bytes(paper, "vgg_lbl_dram"),
        "fused_bytes": paper_bytes(paper, "vgg_fused_dram"),
        "onchip_bytes": paper_bytes(paper, "vgg_onchip"),
    }
