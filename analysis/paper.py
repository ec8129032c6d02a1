"""The paper's own figures (Alwani et al., MICRO 2016) as the report marks them, in bytes.

They come from results/model/paper_comparison.csv (pipeline/model/paper.py), one row per figure id
of reports/paper_figures.yaml and combination of conventions. A paper figure's unit ("MB", "KB")
is read as the *paper reading* reads it (MiB, KiB: the row flagged ``paper_reading``), the same
reading the paper-vs-model table applies to every figure; without that row, as decimal units.
"""

import math

import pandas as pd

from analysis.derive import finite, num

KB, MB = 1e3, 1e6
_BYTES_PER_UNIT = {"mb": MB, "kb": KB, "b": 1.0, "bytes": 1.0, "mib": 2**20, "kib": 2**10}
_BINARY = {"mb": 2**20, "kb": 2**10}


def _rows(paper: pd.DataFrame, figure_id: str) -> pd.DataFrame:
    if paper.empty or "figure" not in paper.columns:
        return paper.iloc[0:0]
    return paper[paper["figure"] == figure_id]


def _reading(rows: pd.DataFrame) -> pd.DataFrame:
    if "paper_reading" not in rows:
        return rows.iloc[0:0]
    return rows[rows["paper_reading"].astype(str).str.lower().isin(["true", "1"])]


def paper_value(paper: pd.DataFrame, figure_id: str) -> float:
    """The paper's value of figure ``figure_id`` (an id of reports/paper_figures.yaml), else NaN."""
    hit = _rows(paper, figure_id)
    return num(hit["paper_value"].iloc[0]) if len(hit) else math.nan


def unit_bytes(paper: pd.DataFrame, figure_id: str) -> float:
    """Bytes per unit of a figure given in a byte unit, as the paper reading reads it."""
    rows = _rows(paper, figure_id)
    if rows.empty:
        return math.nan
    unit = str(rows["unit"].iloc[0]).strip().lower()
    reading = _reading(rows)
    conv = str(reading["convention"].iloc[0]) if len(reading) and "convention" in reading else ""
    if unit in _BINARY and ("unit=MiB" in conv or "unit=KiB" in conv):
        return float(_BINARY[unit])
    return _BYTES_PER_UNIT.get(unit, 1.0)


def paper_bytes(paper: pd.DataFrame, figure_id: str) -> float:
    """The paper's value of a figure given in a byte unit (MB, KB, ...), in bytes (paper reading)."""
    v = paper_value(paper, figure_id)
    return v * unit_bytes(paper, figure_id) if finite(v) else math.nan


def model_bytes_paper_reading(paper: pd.DataFrame, figure_id: str) -> float:
    """The model's value of a byte figure under the paper reading, in bytes (NaN without that row)."""
    reading = _reading(_rows(paper, figure_id))
    if reading.empty:
        return math.nan
    return num(reading["model_value"].iloc[0]) * unit_bytes(paper, figure_id)


def paper_marks(paper: pd.DataFrame) -> dict:
    """The paper's VGG-E traffic figures (bytes per image) and design point, as the paper reading
    reads their units, with the model's five-layer group counted the same way; the paper's values
    as printed (``*_value``, ``unit``); empty without a table."""
    if paper is None or paper.empty:
        return {}
    return {
        "network": "vgg_e",
        "lbl_bytes": paper_bytes(paper, "vgg_lbl_dram"),
        "fused_bytes": paper_bytes(paper, "vgg_fused_dram"),
        "onchip_bytes": paper_bytes(paper, "vgg_onchip"),
        "lbl_value": paper_value(paper, "vgg_lbl_dram"),
        "fused_value": paper_value(paper, "vgg_fused_dram"),
        "onchip_value": paper_value(paper, "vgg_onchip"),
        "model_lbl_bytes_paper_reading": model_bytes_paper_reading(paper, "vgg_lbl_dram"),
        "model_fused_bytes_paper_reading": model_bytes_paper_reading(paper, "vgg_fused_dram"),
        "model_onchip_bytes_paper_reading": model_bytes_paper_reading(paper, "vgg_onchip"),
    }
