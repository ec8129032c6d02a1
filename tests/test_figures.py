"""Tests of the report's figures and tables (analysis/model_figures.py, measured_figures.py,
tables.py, figure_list.py) on the SYNTHETIC FIXTURE: every figure draws, says what it shows, and
falls back to a labelled placeholder (never an empty axis) when nothing was measured; the figure
list is what the Snakefile asks for."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
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
    if item.rule == "measured_figures":  # the workflow passes the config's fusion groups
        measured_figures.draw(name, out, network, t, {"front": ["conv1", "pool2"]})
    else:
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
             "time_breakdown": "time per image (us", "pyramid": "KB", "paper_traffic": "MB per image (log scale)"}
    for name, text in drawn["full"].items():
        assert ("vgg_e" if name == "paper_traffic" else "alexnet") in text, name  # the paper's network
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


def test_paper_marks_read_units_as_the_paper_reading():
    """The paper's MB and KB are read as the paper reading reads them (MiB, KiB), for every mark."""
    marks = paper_marks(read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv"))
    assert marks["fused_bytes"] == pytest.approx(3.6 * 2**20) and marks["lbl_bytes"] == pytest.approx(77 * 2**20)
    assert marks["onchip_bytes"] == pytest.approx(362 * 2**10)
    assert (marks["lbl_value"], marks["fused_value"]) == (77, 3.6)
    # the model's five-layer group counted as the paper counts (reuse buffers only, 4 B per value)
    assert marks["model_onchip_bytes_paper_reading"] == pytest.approx(361_872)
    assert marks["model_fused_bytes_paper_reading"] == pytest.approx((3 * 224 * 224 + 256 * 56 * 56) * 4)


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
    assert len(summary) == paper["figure"].nunique()
    # every row under the same two named sets: no per-row "closest" column any more
    assert not any("closest" in c for c in summary.columns)
    reading = paper[paper["paper_reading"].astype(str) == "True"].set_index("figure")
    default = paper[paper["default"].astype(str) == "True"].set_index("figure")
    for (fig, _), row in zip(paper.groupby("figure", sort=False), summary.itertuples(index=False)):
        assert row[3] == reading.loc[fig, "model_value"] and row[5] == default.loc[fig, "model_value"]
    by_quantity = summary.set_index("paper figure")
    factor = [q for q in by_quantity.index if "arithmetic of recompute" in q]
    assert by_quantity.loc[factor[0], "verdict"].startswith("NOT REPRODUCED")


def test_extra_work_table_compares_executed_with_model():
    """The kernels' counted work is the plan's column, joined; the ratios follow from the files."""
    from analysis.tables import extra_work_table

    tidy = tables([FIXTURE], [])["tidy"]
    t = extra_work_table(tidy)
    assert not t.empty and set(t["variant"]) <= {"lbl", "fused-reuse-t2", "fused-reuse-t4", "fused-recompute-t4"}
    # one row per source x gpu x variant, the batches listed, not one row per batch
    assert not t.duplicated(["run", "variant"]).any() and "batch" not in t.columns
    assert (t["executed / model"] > 0).all()
    plan = pd.read_csv(FIXTURE / "plan.csv").set_index(["variant", "batch"])
    fused = t.set_index("variant").loc["fused-reuse-t4"]
    counted = plan.loc["fused-reuse-t4", "kernel_counted_flops_per_image"].median() / 1e6
    assert fused["kernel's own FLOP count"] == pytest.approx(counted)
    assert fused["ncu / counted"] == pytest.approx(2 * fused["executed MACs (ncu / 2)"] / counted)
    assert t.loc[t["variant"] == "lbl", "kernel's own FLOP count"].isna().all()


def test_extra_work_table_leaves_out_16_bit_variants(archived_run_copy):
    """ncu's FP32 FLOPs of a tensor-core variant are its bias and LRN arithmetic only: no row."""
    from analysis.tables import extra_work_table

    root = archived_run_copy("h200-2026-12-01")  # a recorded run with FP32 and FP16 variants
    t = extra_work_table(tables([], [root])["tidy"])
    assert "lbl" in set(t["variant"]) and not any(v.endswith(("-fp16", "-bf16")) for v in t["variant"])


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
    assert planned == expected and len(expected) == 2 * 3 + 9 + 5
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
    # a run with as many variants as the default one's (two networks, generated kernels too) repeats no colour
    counts = {"lbl": 6, "vendor": 6, "reuse": 9, "recompute": 9}
    many = pd.DataFrame([{"variant": f"{s}{i}", "strategy": s, "tile": str(i), "precision": "fp16"}
                         for s, n in counts.items() for i in range(n)])
    assert len(set(style.variant_palette(many).values())) == sum(counts.values())


def test_archived_figures_say_this_run_measured_nothing(drawn):
    """Every measured figure that falls back to an archive says so, and names the card, not its slug."""
    for name in ("time_breakdown", "occupancy", "gpus_side_by_side", "roofline", "bandwidth_saving"):
        assert NO_GPU_TEXT in drawn["archive"][name], name
        assert NO_GPU_TEXT not in drawn["full"][name], name
    assert "SYNTHETIC-GPU" in drawn["archive"]["occupancy"] and "SYNTHETIC-GPU" in drawn["full"]["occupancy"]


def test_dram_figure_splits_reads_and_writes_against_their_floors(drawn):
    text = drawn["full"]["bandwidth_saving"]
    for part in ("bytes read", "bytes written", "read floor: input + weights/batch", "write floor: output",
                 "also the model of every fused variant"):
        assert part in text, part
    # the paper measured another network: quoted as text, never a legend entry for a marker not drawn
    assert "another network, not plotted" in text


def test_dram_figure_explains_every_point_below_its_floor(tmp_path):
    """On the archived runs fused writes sit below the output they must write: the figure says why."""
    archives = sorted(p for p in (ROOT / "reports" / "archive").glob("*-*") if p.is_dir())
    if not archives:
        pytest.skip("no archived GPU run")
    t = tables([tmp_path / "none"], archives[-1:])
    out = tmp_path / "b.svg"
    measured_figures.draw("bandwidth_saving", out, "alexnet", t, {"front": ["conv1", "pool2"]})
    tidy = t["tidy"]
    m = tidy[~tidy["model_only"].astype(bool) & (tidy["network"] == "alexnet")]
    share = measured_figures.output_share("alexnet", "front", {"front": ["conv1", "pool2"]})
    fl = measured_figures.floors(tidy[tidy["network"] == "alexnet"], share).set_index(["batch", "precision"])
    floor = fl.loc[list(zip(m["batch"], m["precision"])), "write_floor"].to_numpy()  # each at its precision
    below = m["dram_write_bytes_per_image"] < floor
    assert below.any()  # the case the figure must explain
    text = svg_text(out)
    assert "are not counted" in text and "below its floor" in text
    assert "READ below" not in text  # reads never fall below theirs on a real run


def test_write_floor_is_the_plans_output_bytes_or_the_maps_share(tmp_path):
    """The plan's output_bytes_per_image is the write floor; without the column (older plans) the
    output's share of the maps gives the same bytes; without either, no split floors."""
    archives = sorted(p for p in (ROOT / "reports" / "archive").glob("*-*") if p.is_dir())
    if not archives:
        pytest.skip("no archived GPU run")
    tidy = tables([tmp_path / "none"], archives[-1:])["tidy"]
    rows = tidy[(tidy["network"] == "alexnet") & (tidy["group"] == "front")]
    share = measured_figures.output_share("alexnet", "front", {"front": ["conv1", "pool2"]})
    from_plan = measured_figures.floors(rows, math.nan)
    from_share = measured_figures.floors(rows.drop(columns="output_bytes_per_image"), share)
    assert from_plan["write_floor"].notna().all()
    np.testing.assert_allclose(from_plan["write_floor"], from_share["write_floor"], rtol=1e-12)
    np.testing.assert_allclose(from_plan["read_floor"] + from_plan["write_floor"], from_plan["total_floor"])
    assert measured_figures.floors(rows.drop(columns="output_bytes_per_image"), math.nan)["write_floor"].isna().all()


def test_measured_tile_tradeoff_uses_launched_shared_memory(drawn):
    text = drawn["full"]["tile_tradeoff_measured"]
    assert "shared memory per block (KB, ncu)" in text and "227 KiB (sm_90)" in text
    assert "The model's on-chip bytes for these tiles (KB)" in text
    # each point says its precision, not only its tile (one tile runs at several precisions)
    assert re.search(r"(?<![\w-])\d+(x\d+)? (gen )?fp(32|16)\b", text), "no point named by tile and precision"


def test_model_tile_tradeoff_is_honest_about_extra_macs_and_lbl(drawn):
    text = drawn["none"]["tile_tradeoff_model"]
    assert "reuse in y only" in text and "so it has extra MACs" in text
    assert "every layer its own pass (project default): 12.8 MB" in text
    assert "as the lbl kernels run" in text and "Log axes" in text


def test_vgg_dse_names_partitions_and_explains_the_star(tmp_path):
    from pipeline.core.networks import load_network
    from pipeline.model.dse import explore

    out = tmp_path / "dse.svg"
    paper = read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")
    model_figures.draw("dse_pareto", out, "vgg_e", {"dse": explore(load_network("vgg_e")), "paper": paper})
    text = svg_text(out)
    assert "conv1_1..conv3_1" in text  # the one-group partition, named
    assert "paper (FPGA design point)" in text and "counts only the reuse buffers" in text


def test_pyramid_figure_for_both_networks(tmp_path):
    from pipeline.core.networks import load_network
    from pipeline.model.costs import model_table

    for net, group, tiles in (("alexnet", ("conv1", "pool2"), [1, 2, 3, 4, 5, 7, 13]),
                              ("vgg_e", ("conv1_1", "relu3_1"), [1, 2, 4, 7, 8, 14, 28, 56])):
        out = tmp_path / f"{net}.svg"
        model_figures.draw("pyramid", out, net, {"pyramids": model_table(load_network(net), {"g": group}, tiles)})
        text = svg_text(out)
        assert "The pyramid of one tile (model)" in text and "overlap" in text and "reuse keeps K-S" in text
        assert ("4x4 output tile" if net == "alexnet" else "8x8 output tile") in text


def test_report_tables_wrap_and_say_when_they_scroll(tmp_path):
    from analysis.tables import extra_work_table, paper_sensitivity, paper_summary

    t = tables([FIXTURE], [ARCHIVE])
    write_report_table(extra_work_table(t["tidy"]), tmp_path / "w.html", "work")
    html = (tmp_path / "w.html").read_text()
    assert "<wbr>" in html or " " in html.split("<thead>")[1].split("</thead>")[0]
    assert 'id="hint"' in html and "scroll sideways" in html and "overflow-x: auto" in html
    cells = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', html)
    assert cells and not any("e+" in c or "e-" in c for c in cells)  # millions, not e-notation
    paper = read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")
    assert len(paper_summary(paper).columns) <= 8 and len(paper_sensitivity(paper).columns) <= 6
    view = tidy_for_report(t["tidy"])
    assert "dram_MB_per_image" in view and "dram_bytes_per_image" not in view


def test_kernel_labels_number_repeated_launches_and_fold_shared_prefixes():
    k = pd.DataFrame({"source": "s", "gpu": "g", "network": "alexnet", "variant": "lbl", "batch": 1,
                      "kernel": ["lbl_conv_m96", "lbl_lrn", "lbl_maxpool", "lbl_conv_m128", "lbl_lrn", "lbl_maxpool"]})
    assert list(measured_figures.kernel_labels(k)) == ["lbl_conv_m96", "lbl_lrn #1", "lbl_maxpool #1",
                                                       "lbl_conv_m128", "lbl_lrn #2", "lbl_maxpool #2"]
    assert measured_figures.compact_names(["fused_reuse_t2", "fused_reuse_t4", "lbl_maxpool #1", "lbl_maxpool #2",
                                           "conv1"]) == ["fused_reuse_t2/t4", "lbl_maxpool #1/#2", "conv1"]
    # then names that differ in one inner part alone, in braces (the occupancy figure's crowded spot)
    assert measured_figures.compact_names(
        ["fused_recompute_t2x7", "fused_reuse_t2x7", "fused_tc_recompute_t2x13", "fused_tc_recompute_t2x7",
         "fused_tc_reuse_t2x13", "fused_tc_reuse_t2x7", "lbl_conv_m128", "lbl_tc_maxpool #2"]
    ) == ["fused_{recompute,reuse}_t2x7", "fused_tc_{recompute,reuse}_t2x13/t2x7", "lbl_conv_m128", "lbl_tc_maxpool #2"]
    # not the first or last part, nor names of another length
    assert measured_figures.compact_names(["a_x_c", "b_x_c", "lbl_maxpool #1", "lbl_tc_maxpool #1"]) == [
        "a_x_c", "b_x_c", "lbl_maxpool #1", "lbl_tc_maxpool #1"]
