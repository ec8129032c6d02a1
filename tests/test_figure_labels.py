"""Text in the report's figures never prints over other text.

matplotlib keeps text as SVG text (``svg.fonttype: none``), so the figures can be checked as files:
every ``<text>`` element is given a box estimated from its font size and the length of its string
(0.6 em per character, which covers DejaVu Sans and Arial; 0.95 em tall around the baseline), moved
by the transforms above it, and no two boxes of a figure may intersect. The roofline and occupancy
figures are drawn from the synthetic fixture and from every archived GPU run (reports/archive/),
the runs whose labels used to collide; the other figures are checked on the fixture.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis import figure_list, measured_figures, model_figures
from analysis.aggregate import tidy_tables
from analysis.inputs import read_dse, read_paper_comparison, read_pyramids

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "results_fixture"
ARCHIVES = sorted(p for p in (ROOT / "reports" / "archive").glob("*-*") if p.is_dir())
GROUPS = {"front": ["conv1", "pool2"]}
SVG = "{http://www.w3.org/2000/svg}"
EM_WIDTH, ASCENT, DESCENT = 0.6, 0.75, 0.2


def _matrix(transform: str | None) -> np.ndarray:
    m = np.eye(3)
    for op, args in re.findall(r"(\w+)\(([^)]*)\)", transform or ""):
        v = [float(a) for a in re.split(r"[\s,]+", args.strip()) if a]
        if op == "translate":
            t = np.array([[1, 0, v[0]], [0, 1, v[1] if len(v) > 1 else 0], [0, 0, 1]])
        elif op == "scale":
            t = np.diag([v[0], v[1] if len(v) > 1 else v[0], 1])
        elif op == "rotate":
            a = math.radians(v[0])
            r = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
            if len(v) == 3:
                r = np.array([[1, 0, v[1]], [0, 1, v[2]], [0, 0, 1]]) @ r @ np.array([[1, 0, -v[1]], [0, 1, -v[2]],
                                                                                    [0, 0, 1]])
            t = r
        elif op == "matrix":
            t = np.array([[v[0], v[2], v[4]], [v[1], v[3], v[5]], [0, 0, 1]])
        else:
            raise ValueError(f"unknown SVG transform {op}")
        m = m @ t
    return m


def _style(el, key: str, default: str | None = None) -> str | None:
    m = re.search(rf"{key}:\s*([^;]+)", el.get("style", ""))
    return m.group(1).strip() if m else default


def _box(m: np.ndarray, x: float, y: float, text: str, size: float, anchor: str) -> tuple[float, ...]:
    w = EM_WIDTH * size * len(text)
    x0 = x - {"start": 0, "middle": w / 2, "end": w}[anchor]
    corners = np.array([[x0, y - ASCENT * size, 1], [x0 + w, y - ASCENT * size, 1], [x0, y + DESCENT * size, 1],
                        [x0 + w, y + DESCENT * size, 1]]).T
    p = m @ corners
    return p[0].min(), p[1].min(), p[0].max(), p[1].max()


def text_boxes(svg: Path) -> list[tuple[str, tuple[float, ...]]]:
    """(text, (x0, y0, x1, y1)) for every non-empty <text> element, in SVG user units."""
    out = []

    def walk(el, m):
        m = m @ _matrix(el.get("transform"))
        if el.tag == f"{SVG}text":
            size = float((_style(el, "font-size", "10px") or "10px").removesuffix("px"))
            anchor = _style(el, "text-anchor", "start")
            spans = el.findall(f"{SVG}tspan")
            boxes = []
            if spans:  # mathtext: one tspan per glyph run
                for t in spans:
                    s = float((_style(t, "font-size", f"{size}px") or "").removesuffix("px"))
                    if (t.text or "").strip():
                        boxes.append(_box(m, float(t.get("x", 0)), float(t.get("y", 0)), t.text, s, "start"))
                label = "".join(t.text or "" for t in spans)
            elif (el.text or "").strip():
                boxes.append(_box(m, float(el.get("x", 0)), float(el.get("y", 0)), el.text, size, anchor))
                label = el.text
            if boxes:
                out.append((label.strip(), (min(b[0] for b in boxes), min(b[1] for b in boxes),
                                            max(b[2] for b in boxes), max(b[3] for b in boxes))))
            return
        for child in el:
            walk(child, m)

    walk(ET.parse(svg).getroot(), np.eye(3))
    return out


def overlaps(svg: Path, slack: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of texts whose estimated boxes intersect by more than ``slack`` units both ways."""
    boxes = text_boxes(svg)
    bad = []
    for (ta, a), (tb, b) in combinations(boxes, 2):
        if min(a[2], b[2]) - max(a[0], b[0]) > slack and min(a[3], b[3]) - max(a[1], b[1]) > slack:
            bad.append((ta, tb))
    return bad


def measured_tables(results: list[Path], archives: list[Path]) -> dict:
    return {**tidy_tables(results, FIXTURE / "plan.csv", archives),
            "paper": read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")}


SOURCES = [("fixture", [FIXTURE], [FIXTURE / "archive" / "synthgpu-2026-11-20"])] + [
    (a.name, [], [a]) for a in ARCHIVES]


@pytest.mark.parametrize("name", ["roofline", "occupancy"])
@pytest.mark.parametrize("source, results, archives", SOURCES, ids=[s[0] for s in SOURCES])
def test_roofline_and_occupancy_labels_do_not_overlap(tmp_path, name, source, results, archives):
    out = tmp_path / f"{name}.svg"
    measured_figures.draw(name, out, "alexnet", measured_tables(results or [tmp_path / "none"], archives), GROUPS)
    assert len(text_boxes(out)) > 10, "the figure has hardly any text: was it drawn?"
    assert overlaps(out) == [], f"{source}: {name}: text boxes intersect"


@pytest.mark.skipif(not ARCHIVES, reason="no archived GPU run in reports/archive")
def test_archived_lbl_kernels_are_all_named_once(tmp_path):
    """The two LRN launches get their own labels, and the 0-FLOP max pools are named, not dropped."""
    path = tmp_path / "roofline.svg"
    measured_figures.draw("roofline", path, "alexnet", measured_tables([tmp_path / "none"], [ARCHIVES[-1]]), GROUPS)
    texts = [t for t, _ in text_boxes(path)]
    assert "lbl_lrn #1" in texts and "lbl_lrn #2" in texts and "lbl_lrn" not in texts
    assert any("lbl_maxpool #1" in t and "0 FP32 FLOPs" in t for t in texts)
    assert any("no L1 ceiling" in t for t in texts) and not any(t == "L1 intensity" for t in texts)


OTHER = [i.name for i in figure_list.items() if i.rule != "tables" and i.name not in ("roofline", "occupancy")]


@pytest.mark.parametrize("name", OTHER)
def test_other_figures_have_no_overlapping_text(tmp_path, name):
    (item,) = [i for i in figure_list.items() if i.name == name]
    if item.rule == "model_figures":
        for network in ("alexnet", "vgg_e"):
            tables = {"dse": read_dse(FIXTURE / "model" / "alexnet" / "dse.csv") if network == "alexnet"
                      else read_dse(Path("/nonexistent")),
                      "pyramids": read_pyramids(FIXTURE / "model" / "alexnet" / "pyramids.csv"),
                      "paper": read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")}
            if network == "vgg_e":
                from pipeline.model.costs import model_table
                from pipeline.model.dse import explore
                from pipeline.core.networks import load_network

                net = load_network("vgg_e")
                tables["pyramids"] = model_table(net, {"first5": ("conv1_1", "relu3_1")}, [1, 2, 4, 8, 14, 28, 56])
                dse = explore(net)
                tables["dse"] = dse
            out = tmp_path / f"{network}_{name}.svg"
            model_figures.draw(name, out, network, tables)
            assert overlaps(out) == [], f"{network}: {name}: text boxes intersect"
    else:
        for source, results, archives in SOURCES[:1] + SOURCES[-1:]:
            out = tmp_path / f"{source}_{name}.svg"
            measured_figures.draw(name, out, "alexnet", measured_tables(results or [tmp_path / "none"], archives),
                                  GROUPS)
            assert overlaps(out) == [], f"{source}: {name}: text boxes intersect"


def test_the_check_sees_overlapping_labels(tmp_path):
    """The estimate is not so loose that it misses what the issue was about: two labels at one point."""
    from analysis import style

    fig, axes = style.figure()
    ax = axes[0, 0]
    ax.scatter([50, 50.5], [1, 1])
    ax.set_xlim(0, 100)
    ax.annotate("lbl_conv_m96", (50, 1), xytext=(-4, 4), textcoords="offset points", ha="right")
    ax.annotate("lbl_conv_m128", (50.5, 1), xytext=(-4, 4), textcoords="offset points", ha="right")
    style.save(fig, tmp_path / "bad.svg")
    assert ("lbl_conv_m96", "lbl_conv_m128") in overlaps(tmp_path / "bad.svg")
    plt.close("all")


@pytest.mark.parametrize("tc_ceilings", [False, True], ids=["as archived", "with tensor-core ceilings"])
def test_roofline_draws_each_precisions_own_compute_roof(tmp_path, archived_run_copy, tc_ceilings):
    """A recorded FP32 + FP16 run: the FP16 roof is drawn when ceilings.json has it (a made-up value
    added to a copy) and said to be missing when it has not; 16-bit lbl kernels stay off the right."""
    extra = {"tc_fp16_flop_per_s": 6.0e14, "tc_bf16_flop_per_s": 6.1e14} if tc_ceilings else None  # test values
    root = archived_run_copy("h200-2026-12-01", extra)
    out = tmp_path / "roofline.svg"
    measured_figures.draw("roofline", out, "alexnet", measured_tables([tmp_path / "none"], [root]), GROUPS)
    texts = [t for t, _ in text_boxes(out)]
    assert any(t.startswith("FP32 peak (FFMA) 63 TFLOP/s") for t in texts)
    assert any(t.startswith("FP16 peak (tensor cores, mma.sync) 600 TFLOP/s") for t in texts) == tc_ceilings
    assert not any(t.startswith("BF16 peak") for t in texts)  # no BF16 variant in this run
    assert any(t.startswith("No FP16 compute roof") for t in texts) != tc_ceilings
    assert any("the model's useful FLOPs" in t for t in texts)
    assert any("lbl-fp16 are not drawn" in t for t in texts) and "lbl_tc_conv_m96" not in texts
    assert overlaps(out) == []
