"""Tests of the report's figures and tables (analysis/model_figures.py, measured_figures.py,
tables.py, figure_list.py) on the SYNTHETIC FIXTURE: every figure draws, says what it shows, and
falls back to a labelled placeholder (never an empty axis) when nothing was measured; the figure
list is what the Snakefile asks for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from analysis import figure_list, measured_figures, model_figures
from analysis.aggregate import tidy_tables
from analysis.inputs import read_dse, read_paper_comparison, read_pyramids
from analysis.measured_figures import NO_GPU_TEXT
from analysis.paper import paper_marks
from analysis.tables import tidy_for_report, write_report_table

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "data" / "results_fixture"
ARCHIVE = FIXTURE / "archive" / "synthgpu-2026-11-20"
FIGURES = [i.name for i in figure_list.items() if i.rule != "tables"]
MEASURED = [i.name for i in figure_list.items("measured_figures")]
DRAWERS = {"model_figures": model_figures.draw, "measured_figures": measured_figures.draw}


def draw(name: str, out: Path, network: str, t: dict) -> None:
    (item,) = [i for i in figure_list.items() if i.name == name]
    DRAWERS[item.rule](name, out, network, t)


def tables(results: list[Path], archives: list[Path]) -> dict[str, pd.DataFrame]:
    return {
        **tidy_tables(results, FIXTURE / "plan.csv", archives),
        "dse": read_dse(FIXTURE / "model" / "alexnet" / "dse.csv"),
        "pyramids": read_pyramids(FIXTURE / "model" / "alexnet" / "pyramids.csv"),
        "paper": read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv"),
    }


def svg_text(path: Path) -> str:
    """All text of an SVG (fonts are kept as text, so titles and labels are searchable)."""
    root = ET.parse(path).getroot()  # also proves the file is well-formed XML
    return " ".join(t.strip() for t in root.itertext() if t.strip())


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Every figure drawn three ways: full fixture, archive only, and no GPU results at all."""
    out: dict[str, dict[str, str]] = {}
    empty = tmp_path_factory.mktemp("no_gpu")
    for mode, res, arch in (("full", [FIXTURE], [ARCHIVE]), ("archive", [empty], [ARCHIVE]), ("none", [empty], [])):
        d = tmp_path_factory.mktemp(mode)
        t = tables(res, arch)
        out[mode] = {}
        for name in FIGURES:
            draw(name, d / f"{name}.svg", "alexnet", t)
            out[mode][name] = svg_text(d / f"{name}.svg")
    return out


def test_every_figure_draws_with_title_and_units(drawn):
    units = {"dse_pareto": "(KB)", "tile_tradeoff_model": "(KB)", "roofline": "(FLOP / byte)",
             "bandwidth_saving": "(MB, log scale)", "tile_tradeoff_measured": "(us, median)", "speedup": "speedup (x",
             "energy": "(mJ", "occupancy": "(% of max warps)", "gpus_side_by_side": "(us, median)",
             "time_breakdown": "time per image (us"}
    for name, text in drawn["full"].items():
        assert "alexnet" in text, name
        assert units[name] in text, f"{name}: no axis unit {units[name]!r}"
        assert NO_GPU_TEXT not in text, name


def test_measured_figures_show_variants_and_ceilings(drawn):
    full = drawn["full"]
    for v in ("lbl", "fused-reuse-t4", "vendor"):
        assert v in full["bandwidth_saving"] and v in full["roofline"]
    assert "TB/s (measured)" in full["roofline"] and "FP32 peak" in full["roofline"]
    assert "conv2" in full["roofline"]  # lbl kernels are labelled
    assert "L2 (50 MiB)" in full["bandwidth_saving"] and "batch 45" in full["bandwidth_saving"]
    assert "paper (FPGA" in full["bandwidth_saving"]
    assert "this run" in full["speedup"] and "archived" not in full["speedup"]


def test_archived_results_are_labelled_as_archived(drawn):
    for name in ("roofline", "bandwidth_saving", "speedup", "energy", "occupancy", "time_breakdown"):
        assert "archived (synthgpu, 2026-11-20)" in drawn["archive"][name], name


def test_placeholders_without_gpu_but_model_figures_drawn(drawn):
    for name in MEASURED:
        assert NO_GPU_TEXT in drawn["none"][name], name
    for name in ("dse_pareto", "tile_tradeoff_model"):
        assert NO_GPU_TEXT not in drawn["none"][name]
        assert "Pareto" in drawn["none"]["dse_pareto"] and "reuse" in drawn["none"]["tile_tradeoff_model"]


def test_model_figure_placeholder_when_model_missing(tmp_path):
    model_figures.draw("dse_pareto", tmp_path / "d.svg", "alexnet", {})
    assert "no design-space results" in svg_text(tmp_path / "d.svg")


def test_paper_marks_convert_units():
    marks = paper_marks(read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv"))
    assert marks["fused_bytes"] == pytest.approx(3.6e6) and marks["lbl_bytes"] == pytest.approx(77e6)
    assert marks["onchip_bytes"] == pytest.approx(362e3)


def test_unknown_figure_is_an_error(tmp_path):
    for module in (model_figures, measured_figures):
        with pytest.raises(ValueError, match="unknown .*figure 'nope'"):
            module.draw("nope", tmp_path / "x.svg", "alexnet", {})


def test_report_table_is_html_with_every_row(tmp_path):
    t = tables([FIXTURE], [ARCHIVE])["tidy"]
    view = tidy_for_report(t)
    write_report_table(view, tmp_path / "t.html", "Tidy <table>", "note & more")
    html = (tmp_path / "t.html").read_text()
    assert html.count("<tr>") == len(view) + 1  # header + rows
    assert "Tidy &lt;table&gt;" in html and "note &amp; more" in html
    assert "archived synthgpu 2026-11-20" in html and "<script src" not in html


def test_paper_summary_one_row_per_paper_figure():
    from analysis.tables import paper_summary

    paper = read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")
    summary = paper_summary(paper)
    assert list(summary["figure"]) == list(dict.fromkeys(paper["figure"]))
    vgg = summary.set_index("figure").loc["vgg_fused_dram"]
    assert vgg.paper_value == 3.6 and abs(vgg.ratio_closest - 1) <= abs(vgg.ratio_default - 1)


def test_extra_work_table_compares_executed_with_model():
    """The kernels' counted work is the plan's column, joined; the ratios follow from the files."""
    from analysis.tables import extra_work_table

    tidy = tables([FIXTURE], [])["tidy"]
    t = extra_work_table(tidy)
    assert not t.empty and set(t["variant"]) <= {"lbl", "fused-reuse-t2", "fused-reuse-t4", "fused-recompute-t4"}
    assert (t["executed_over_model"] > 0).all()
    plan = pd.read_csv(FIXTURE / "plan.csv").set_index(["variant", "batch"])
    fused = t[t["variant"] == "fused-reuse-t4"].set_index("batch")
    assert (fused["kernel_counted_flops_per_image"] == plan.loc["fused-reuse-t4", "kernel_counted_flops_per_image"]).all()
    assert fused["measured_over_counted"].equals(fused["flops_per_image"] / fused["kernel_counted_flops_per_image"])
    assert t.loc[t["variant"] == "lbl", "kernel_counted_flops_per_image"].isna().all()


def test_every_item_has_its_drawing_and_caption():
    """The list, the scripts' dispatch tables and reports/*.rst name the same figures."""
    from analysis.tables import WRITE

    for rule, names in (("model_figures", model_figures.DRAW), ("measured_figures", measured_figures.DRAW),
                        ("tables", WRITE)):
        assert [i.name for i in figure_list.items(rule)] == list(names), rule
    for item in figure_list.items():
        assert (ROOT / item.report_args()["caption"]).exists(), item.caption
    assert len({i.path for i in figure_list.items()}) == len(figure_list.items())


def test_the_figure_list_drives_the_snakefile(tmp_path):
    """A dry run plans every figure and table of the list, per network where it is per network."""
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--configfile",
         str(ROOT / "tests" / "data" / "config.yaml"), "-n"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "FUSED_LAYER_NO_GPU": "1"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    planned = set(re.findall(r"results/figures/\S+?\.(?:svg|html)", r.stdout))
    expected = set(figure_list.targets(["alexnet", "vgg_e"]))
    assert planned == expected and len(expected) == 2 * 2 + 8 + 4
    assert "MEASURED_FIGURES" not in (ROOT / "Snakefile").read_text()


def test_palette_from_the_record_one_colour_per_variant():
    """Colours follow strategy and rank order (tile, precision), whatever the variants are called."""
    from analysis import style

    rows = pd.DataFrame({"variant": ["x", "y", "z", "w", "v"], "strategy": ["lbl", "lbl", "reuse", "reuse", "vendor"],
                         "tile": [None, None, "4", "2", None], "precision": ["fp16", "fp32", "fp32", "fp32", "fp32"]})
    pal = style.variant_palette(rows)
    assert len(set(pal.values())) == 5
    base = style.strategy_palette()
    assert pal["y"] == base["lbl"] and pal["w"] == base["reuse"] and pal["v"] == base["vendor"]  # first in rank
