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

from analysis.rows import measured, sort_rows
from kernels.registry import DEFAULT_PRECISION
from pipeline.core.strategy import Strategy
from pipeline.model.paper import DEFAULTS_TEXT, MATCH_TOLERANCE, PAPER_READING_TEXT

OWN_KERNELS = [str(s) for s in Strategy if s.own_kernels]  # the project's CUDA kernels: lbl and fused

def _header(name: str) -> str:
    """A column name that may wrap: a break opportunity after every underscore."""
    return escape(str(name)).replace("_", "_<wbr>")


def _cell(x) -> str:
    if isinstance(x, bool) or x is None:
        return f"<td>{escape(str(x))}</td>"
    if isinstance(x, float):
        if math.isnan(x):
            return '<td class="na">-</td>'
        txt = f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"
        return f'<td class="num" data-v="{x!r}">{txt}</td>'
    if isinstance(x, (int, np.integer)):
        return f'<td class="num" data-v="{int(x)}">{int(x)}</td>'
    text = str(x)
    if " " not in text:
        return f'<td class="tok">{escape(text)}</td>'  # a name (variant, gpu): never broken at its hyphens
    return f'<td class="long">{escape(text)}</td>' if len(text) > 24 else f"<td>{escape(text)}</td>"


def write_report_table(df: pd.DataFrame, path: Path, title: str = "", note: str = "") -> None:
    """A self-contained HTML table for the Snakemake report (sortable by clicking a header).

    Snakemake 9's report shows HTML results in an iframe but offers CSV/TSV only as downloads, so
    tables go in as HTML. No external scripts or styles: the report must work offline. Headers
    wrap (at spaces and underscores), long text cells wrap, and a table still wider than the
    report's frame scrolls sideways inside it, with a line saying so above it.
    """
    head = "".join(f"<th onclick=\"sortBy({i})\">{_header(c)}</th>" for i, c in enumerate(df.columns))
    body = "\n".join("<tr>" + "".join(_cell(x) for x in row) + "</tr>" for row in df.itertuples(index=False))
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in (note.split("\n") if note else []))
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title or 'table')}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 13px; margin: 8px; }}
h1 {{ font-size: 16px; }} p.note {{ color: #555; max-width: 60em; margin: 4px 0; }}
p#hint {{ color: #8a5a00; display: none; margin: 4px 0; }}
div.frame {{ overflow-x: auto; max-width: 100%; }}
table {{ border-collapse: collapse; }}
th {{ position: sticky; top: 0; background: #eef2f7; cursor: pointer; text-align: left; padding: 3px 4px;
      border-bottom: 2px solid #999; vertical-align: bottom; min-width: 3.5em; max-width: 7em;
      white-space: normal; overflow-wrap: break-word; }}
td {{ padding: 2px 4px; border-bottom: 1px solid #ddd; white-space: normal; vertical-align: top; }}
td.long {{ min-width: 9em; max-width: 28em; }} td.tok {{ white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }} td.na {{ color: #aaa; text-align: center; }}
tr:hover td {{ background: #f6f8fb; }}
</style></head><body>
{f'<h1>{escape(title)}</h1>' if title else ''}{notes}
<p id="hint">&rarr; This table is wider than the frame: scroll sideways to see every column.</p>
<div class="frame" id="frame"><table id="t"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table></div>
<script>
function sortBy(i) {{
  const tb = document.querySelector("#t tbody"), rows = Array.from(tb.rows);
  const key = r => {{ const c = r.cells[i]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; }};
  const dir = tb.dataset.col == i && tb.dataset.dir == "1" ? -1 : 1;
  rows.sort((a, b) => {{ const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; }});
  tb.dataset.col = i; tb.dataset.dir = dir; rows.forEach(r => tb.appendChild(r));
}}
function hint() {{
  const f = document.getElementById("frame");
  document.getElementById("hint").style.display = f.scrollWidth > f.clientWidth + 1 ? "block" : "none";
}}
window.addEventListener("load", hint); window.addEventListener("resize", hint);
</script>
</body></html>
"""
    Path(path).write_text(html)


# Columns of the tidy table shown in the report (all columns stay in results/tidy.csv), and the
# units they are shown in: bytes as MB or KB, FLOP/s as TFLOP/s, so no cell needs e-notation.
REPORT_TABLE_COLUMNS = [
    "source", "gpu", "network", "variant", "batch", "model_only", "verify_passed", "us_per_image",
    "us_per_image_q1", "us_per_image_q3", "launch", "speedup_vs_lbl", "speedup_vs_vendor", "convs_alone_us_per_image",
    "convs_alone_by_layer", "speedup_vs_cudnn_convs_alone", "dram_bytes_per_image",
    "model_dram_bytes_per_image", "dram_ratio_to_model", "dram_ratio_to_compulsory",
    "dram_ratio_to_compulsory_output_written", "l2_bytes_per_image",
    "achieved_flops_per_s", "ai_dram_flops_per_byte", "useful_flops_per_s", "compute_ceiling_flop_per_s",
    "pct_of_compute_ceiling", "energy_mj_per_image", "registers_max", "shared_bytes_max",
    "spill_bytes_total", "achieved_occupancy_pct", "throttled", "missing",
]
REPORT_UNITS = {  # column -> (shown as, divide by)
    "dram_bytes_per_image": ("dram_MB_per_image", 1e6),
    "model_dram_bytes_per_image": ("model_dram_MB_per_image", 1e6),
    "l2_bytes_per_image": ("l2_MB_per_image", 1e6),
    "achieved_flops_per_s": ("achieved_TFLOP_per_s", 1e12),
    "useful_flops_per_s": ("useful_TFLOP_per_s", 1e12),
    "compute_ceiling_flop_per_s": ("compute_ceiling_TFLOP_per_s", 1e12),
    "shared_bytes_max": ("shared_KB_max", 1e3),
}


# Shown after ``network``: the fusion group and the implementation (``impl``: "gen" for generated
# kernels, the PyTorch anchor's path; "" for hand-written kernels), the record columns that say which
# lbl and which anchor a speedup is against (analysis/derive.py).
RECORD_VIEW_COLUMNS = ["group", "impl"]


def report_columns() -> list[str]:
    """REPORT_TABLE_COLUMNS with RECORD_VIEW_COLUMNS after ``network``."""
    cols = [c for c in REPORT_TABLE_COLUMNS if c not in RECORD_VIEW_COLUMNS]
    at = cols.index("network") + 1
    return [*cols[:at], *RECORD_VIEW_COLUMNS, *cols[at:]]


def tidy_for_report(tidy: pd.DataFrame) -> pd.DataFrame:
    """The report's view of the tidy table: the columns a reader compares, in a fixed order, in
    readable units (the column name says which)."""
    view = tidy[[c for c in report_columns() if c in tidy.columns]].copy()
    for col, (name, scale) in REPORT_UNITS.items():
        if col in view:
            view[col] = pd.to_numeric(view[col], errors="coerce") / scale
    return view.rename(columns={c: n for c, (n, _) in REPORT_UNITS.items()})


PAPER_TABLE_NOTE = (
    "Alwani, Chen, Ferdman, Milder: Fused-Layer CNN Accelerators, MICRO 2016. Every figure is set beside the "
    "model under two named sets of conventions, the same for every row:\n"
    f"- {PAPER_READING_TEXT}.\n- {DEFAULTS_TEXT}.\n"
    "Ratios are model / paper. Other combinations are in the sensitivity table, never picked per row; every "
    "combination is in results/model/paper_comparison.csv."
)


def _flag(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col].astype(str).str.lower().isin(["true", "1"]) if col in df else pd.Series(False, index=df.index)


def paper_summary(paper: pd.DataFrame) -> pd.DataFrame:
    """One row per paper figure: the paper's value, the model under the paper reading and under the
    project's defaults (the same two sets of conventions for every row), and the figure's verdict."""
    cols = ["paper figure", "paper", "unit", "model, paper reading", "ratio, paper reading",
            "model, project defaults", "ratio, project defaults", "verdict"]
    if paper.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for fig, g in paper.groupby("figure", sort=False):
        reading, default = g[_flag(g, "paper_reading")], g[_flag(g, "default")]
        r = reading.iloc[0] if len(reading) else None
        d = default.iloc[0] if len(default) else None
        first = g.iloc[0]
        net = f"{first['network']}: " if isinstance(first.get("network"), str) else ""
        rows.append({
            "paper figure": f"{net}{first['quantity']}", "paper": first["paper_value"], "unit": first["unit"],
            "model, paper reading": r["model_value"] if r is not None else math.nan,
            "ratio, paper reading": r["ratio_model_to_paper"] if r is not None else math.nan,
            "model, project defaults": d["model_value"] if d is not None else math.nan,
            "ratio, project defaults": d["ratio_model_to_paper"] if d is not None else math.nan,
            "verdict": first.get("verdict", "") if isinstance(first.get("verdict"), str) else "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _conventions(text) -> dict[str, str]:
    """'lbl=merged; unit=MB=10^6 B' -> {'lbl': 'merged', 'unit': 'MB=10^6 B'}."""
    if not isinstance(text, str) or not text:
        return {}
    return dict(part.split("=", 1) for part in text.split("; ") if "=" in part)


def paper_sensitivity(paper: pd.DataFrame) -> pd.DataFrame:
    """Every combination of conventions tried, per figure, written as what it changes from the paper
    reading (fewest changes first): what each convention does to the ratio. No row is singled out."""
    cols = ["figure", "paper", "changed from the paper reading", "model", "ratio", "within tolerance"]
    if paper.empty:
        return pd.DataFrame(columns=cols)
    from pipeline.model.paper import MATCH_TOLERANCE

    rows = []
    for fig, g in paper.groupby("figure", sort=False):
        reading = g[_flag(g, "paper_reading")]
        base = _conventions(reading["convention"].iloc[0]) if len(reading) else {}
        for _, r in g.iterrows():
            conv = _conventions(r["convention"])
            changed = [f"{k}={v}" for k, v in conv.items() if v != base.get(k)]
            rows.append({
                "figure": fig, "paper": f"{r['paper_value']:g} {r['unit']}",
                "changed from the paper reading": "; ".join(changed) if changed else
                f"(the paper reading: {r['convention'] or 'no convention involved'})",
                "model": r["model_value"], "ratio": r["ratio_model_to_paper"],
                "within tolerance": "yes" if abs(r["ratio_model_to_paper"] - 1) <= MATCH_TOLERANCE else "",
                "_n": len(changed),
            })  # fmt: skip
    df = pd.DataFrame(rows)
    order = {f: i for i, f in enumerate(dict.fromkeys(df["figure"]))}
    df = df.sort_values(["figure", "_n"], key=lambda c: c.map(order) if c.name == "figure" else c, kind="stable")
    return df.drop(columns="_n").reset_index(drop=True)[cols]


EXTRA_WORK_MACS = {  # tidy column -> shown as (millions per image)
    "model_useful_macs_per_image": "model useful MACs",
    "model_extra_macs_per_image": "model extra MACs",
    "kernel_padding_macs_per_image": "kernel padding MACs",
    "measured_macs_per_image": "executed MACs (ncu / 2)",
    "kernel_counted_flops_per_image": "kernel's own FLOP count",
}


def extra_work_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Measured arithmetic of each variant beside the model and beside the fused kernel's own count,
    one row per source x GPU x network x variant (per-image counts do not depend on the batch: the batches
    measured are listed, and ``spread over batches %`` says how far they differ).

    Measured MACs are Nsight Compute's FP32 FLOPs / 2 (FMA = 2, FADD/FMUL = 1, so LRN arithmetic is
    included and max/ReLU are not); ``executed / model`` above 1 is work beyond the model's
    pyramid. FP32 variants only: ncu does not count tensor-core work. For fused variants the plan
    carries what ``kernels.work.fused_work`` counts from the
    kernel's loops for that build: padding MACs (empty register-tile slots and padded K) and the
    FLOPs ncu should count (GEMMs, bias, LRN): ``ncu / counted`` is that check.
    """
    cols = ["run", "network", "variant", "batches", *EXTRA_WORK_MACS.values(), "executed / model", "ncu / counted",
            "spread over batches %"]
    m = measured(tidy)
    if m.empty or "flops_per_image" not in m:
        return pd.DataFrame(columns=cols)
    # fp32 only: ncu's FP32 FLOP counters miss the 16-bit kernels' tensor-core (HMMA) work entirely
    fp32 = m["precision"].fillna(DEFAULT_PRECISION) == DEFAULT_PRECISION
    m = m[m["strategy"].isin(OWN_KERNELS) & fp32].dropna(subset=["flops_per_image"])
    if m.empty:
        return pd.DataFrame(columns=cols)
    m = m.assign(measured_macs_per_image=m["flops_per_image"] / 2)
    rows = []
    for (source, gpu, network, variant), g in sort_rows(m, ["source", "gpu", "network", "variant", "batch"]).groupby(
            ["source", "gpu", "network", "variant"], sort=False):  # fmt: skip
        run = source if gpu in source else f"{source}: {gpu}"  # archived sources name their card already
        row = {"run": run, "network": network, "variant": variant,
               "batches": " ".join(str(int(b)) for b in sorted(g["batch"].unique()))}
        for col, name in EXTRA_WORK_MACS.items():
            row[name] = float(pd.to_numeric(g[col], errors="coerce").median()) / 1e6 if col in g else math.nan
        extra = row["model extra MACs"]
        model = row["model useful MACs"] + (0 if math.isnan(extra) else extra)
        row["executed / model"] = row["executed MACs (ncu / 2)"] / model if model else math.nan
        row["ncu / counted"] = 2 * row["executed MACs (ncu / 2)"] / row["kernel's own FLOP count"]
        lo, hi = g["flops_per_image"].min(), g["flops_per_image"].max()
        row["spread over batches %"] = 100 * (hi - lo) / lo if lo > 0 else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


# Table name (analysis/figure_list.py) -> (table from the rule's inputs, title, note).
WRITE = {
    "tidy_table": (lambda t: tidy_for_report(t["tidy"]), "Tidy results table",
                   "one row per source x gpu x network x variant x batch; full table in results/tidy.csv"),
    "paper_table": (lambda t: paper_summary(t["paper"]), "Paper (FPGA) vs analytical model", PAPER_TABLE_NOTE),
    "paper_sensitivity_table": (lambda t: paper_sensitivity(t["paper"]),
                                "Paper vs model: every combination of conventions (sensitivity)",
                                "One row per paper figure and combination of conventions, those closest to the "
                                f"paper reading first. Tolerance: {100 * MATCH_TOLERANCE:.0f} %. A combination "
                                "that matches one figure is not thereby the paper's convention: see the "
                                "paper-vs-model table for the one reading applied to every figure."),
    "extra_work_table": (lambda t: extra_work_table(t["tidy"]),
                         "Arithmetic executed by each kernel vs the model (ncu FLOPs / 2)",
                         "Millions per image; one row per run x network x variant (per-image counts do not depend on the batch: "
                         "the last column is how far the batches measured differ)."),
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
