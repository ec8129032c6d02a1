"""Rule tables: the report's HTML tables (tidy results, paper vs model, executed work, provenance).

Snakemake 9's report shows HTML results in an iframe but offers CSV/TSV only as downloads, so
tables go in as self-contained, sortable HTML. Names and captions: analysis/figure_list.py.
"""

import math
from collections.abc import Mapping
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.rows import measured
from pipeline.core.strategy import Strategy

OWN_KERNELS = [str(s) for s in Strategy if s.own_kernels]  # the project's CUDA kernels: lbl and fused

def write_report_table(df: pd.DataFrame, path: Path, title: str = "", note: str = "") -> None:
    """A self-contained HTML table for the Snakemake report (sortable by clicking a header).

    Snakemake 9's report shows HTML results in an iframe but offers CSV/TSV only as downloads, so
    tables go in as HTML. No external scripts or styles: the report must work offline.
    """
    def cell(x) -> str:
        if isinstance(x, float):
            if math.isnan(x):
                return '<td class="na">-</td>'
            txt = f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"
            return f'<td class="num" data-v="{x!r}">{txt}</td>'
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            return f'<td class="num" data-v="{int(x)}">{int(x)}</td>'
        return f"<td>{escape(str(x))}</td>"

    head = "".join(f"<th onclick=\"sortBy({i})\">{escape(str(c))}</th>" for i, c in enumerate(df.columns))
    body = "\n".join("<tr>" + "".join(cell(x) for x in row) + "</tr>" for row in df.itertuples(index=False))
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title or 'table')}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 13px; margin: 8px; }}
h1 {{ font-size: 16px; }} p.note {{ color: #555; }}
table {{ border-collapse: collapse; }}
th {{ position: sticky; top: 0; background: #eef2f7; cursor: pointer; text-align: left; padding: 3px 6px;
      border-bottom: 2px solid #999; white-space: nowrap; }}
td {{ padding: 2px 6px; border-bottom: 1px solid #ddd; white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} td.na {{ color: #aaa; text-align: center; }}
tr:hover td {{ background: #f6f8fb; }}
</style></head><body>
{f'<h1>{escape(title)}</h1>' if title else ''}{f'<p class="note">{escape(note)}</p>' if note else ''}
<table id="t"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<script>
function sortBy(i) {{
  const tb = document.querySelector("#t tbody"), rows = Array.from(tb.rows);
  const key = r => {{ const c = r.cells[i]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; }};
  const dir = tb.dataset.col == i && tb.dataset.dir == "1" ? -1 : 1;
  rows.sort((a, b) => {{ const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; }});
  tb.dataset.col = i; tb.dataset.dir = dir; rows.forEach(r => tb.appendChild(r));
}}
</script>
</body></html>
"""
    Path(path).write_text(html)


# Columns of the tidy table shown in the report (all columns stay in results/tidy.csv).
REPORT_TABLE_COLUMNS = [
    "source", "gpu", "network", "variant", "batch", "model_only", "verify_passed", "us_per_image",
    "us_per_image_q1", "us_per_image_q3", "speedup_vs_lbl", "speedup_vs_vendor", "dram_bytes_per_image",
    "model_dram_bytes_per_image", "dram_ratio_to_model", "dram_ratio_to_compulsory", "l2_bytes_per_image",
    "achieved_flops_per_s", "ai_dram_flops_per_byte", "energy_mj_per_image", "registers_max", "shared_bytes_max",
    "spill_bytes_total", "achieved_occupancy_pct", "throttled", "missing",
]


def tidy_for_report(tidy: pd.DataFrame) -> pd.DataFrame:
    """The report's view of the tidy table: the columns a reader compares, in a fixed order."""
    return tidy[[c for c in REPORT_TABLE_COLUMNS if c in tidy.columns]]


def paper_summary(paper: pd.DataFrame) -> pd.DataFrame:
    """One row per paper figure: the paper's value, the model with its own (default) conventions,
    and the closest honest alternative convention (all conventions: results/model/paper_comparison.csv)."""
    if paper.empty:
        return pd.DataFrame(columns=["figure", "quantity", "unit", "paper_value"])
    rows = []
    for fig, g in paper.groupby("figure", sort=False):
        default = g[g["default"].astype(str) == "True"]
        best = g[g["best"].astype(str) == "True"].iloc[0]
        d = default.iloc[0] if len(default) else None
        rows.append({
            "figure": fig, "quantity": best["quantity"], "unit": best["unit"], "paper_value": best["paper_value"],
            "model_default_conventions": d["model_value"] if d is not None else math.nan,
            "ratio_default": d["ratio_model_to_paper"] if d is not None else math.nan,
            "model_closest": best["model_value"], "ratio_closest": best["ratio_model_to_paper"],
            "closest_convention": best["convention"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def extra_work_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Measured arithmetic of each variant beside the model and beside the fused kernel's own count.

    Measured MACs are Nsight Compute's FP32 FLOPs / 2 (FMA = 2, FADD/FMUL = 1, so LRN arithmetic is
    included and max/ReLU are not); ``executed_over_model`` above 1 is work beyond the model's
    pyramid. For fused variants the plan carries what ``kernels.work.fused_work`` counts from the
    kernel's loops for that build: ``kernel_padding_macs_per_image`` (empty register-tile slots and
    padded K) and ``kernel_counted_flops_per_image`` (GEMMs, bias, LRN), what ncu should count:
    ``measured_over_counted`` is that check.
    """
    cols = ["source", "gpu", "variant", "batch", "model_useful_macs_per_image", "model_extra_macs_per_image",
            "kernel_padding_macs_per_image", "measured_macs_per_image", "executed_over_model",
            "kernel_counted_flops_per_image", "flops_per_image", "measured_over_counted"]
    m = measured(tidy)
    if m.empty or "flops_per_image" not in m:
        return pd.DataFrame(columns=cols)
    m = m[m["strategy"].isin(OWN_KERNELS)].dropna(subset=["flops_per_image"])
    model = m["model_useful_macs_per_image"] + m["model_extra_macs_per_image"].fillna(0)
    m = m.assign(measured_macs_per_image=m["flops_per_image"] / 2)
    m = m.assign(executed_over_model=m["measured_macs_per_image"] / model,
                 measured_over_counted=m["flops_per_image"] / m["kernel_counted_flops_per_image"])
    return m.reindex(columns=cols)


# Table name (analysis/figure_list.py) -> (table from the rule's inputs, title, note).
WRITE = {
    "tidy_table": (lambda t: tidy_for_report(t["tidy"]), "Tidy results table",
                   "one row per source x gpu x network x variant x batch; full table in results/tidy.csv"),
    "paper_table": (lambda t: paper_summary(t["paper"]), "Paper (FPGA) vs analytical model",
                    "Alwani, Chen, Ferdman, Milder: Fused-Layer CNN Accelerators, MICRO 2016. "
                    "Every convention tried: results/model/paper_comparison.csv."),
    "extra_work_table": (lambda t: extra_work_table(t["tidy"]),
                         "Arithmetic executed by each kernel vs the model (ncu FLOPs / 2)", ""),
    "provenance_table": (lambda t: t["provenance"], "Provenance and measurement settings", "one row per source x GPU"),
}  # fmt: skip


def write(name: str, out: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    """Write table ``name`` from ``tables`` (tidy, paper, provenance)."""
    if name not in WRITE:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(WRITE)}")
    make, title, note = WRITE[name]
    write_report_table(make(tables), out, title, note)


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    from analysis.inputs import read_inputs

    sm = snakemake  # noqa: F821
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)
    inputs = read_inputs(dict(sm.input.items()))
    for name in sm.output.keys():
        write(name, Path(sm.output[name]), inputs)
        logging.info("wrote %s", sm.output[name])
