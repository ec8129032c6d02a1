"""Phase breakdown: names from the kernel source, shares, and the real measurement on a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from kernels.registry import VARIANTS, nvcc_flags
from pipeline.core.gpu import REPO, gpu_skip_reason
from pipeline.stages.phases import fused_phase_names, phase_rows

SKIP = gpu_skip_reason()


# ------------------------------------------------------------------ CPU
def test_phase_names_come_from_the_kernel_enum():
    names = fused_phase_names()
    assert names == ("shift", "conv1", "norm1", "pool1", "conv2", "norm2", "pool2")
    # the layers' names in the network file, so lbl kernels and fused phases share a vocabulary
    from kernels.api import group_layers

    layer_names = {l.name for l in group_layers()}
    assert set(names) - {"shift"} <= layer_names


def test_phase_names_refuse_a_malformed_enum():
    with pytest.raises(ValueError, match="no `enum Phase"):
        fused_phase_names("int main() {}")
    with pytest.raises(ValueError, match="end with NPHASE"):
        fused_phase_names("enum Phase { PH_A, PH_B };")


@pytest.mark.parametrize("source", ["fused.cu", "fused_tc.cu"])
def test_every_phase_has_a_mark_in_the_kernel(source):
    src = (REPO / "kernels" / source).read_text()
    names = fused_phase_names(src)
    assert {"conv1", "norm1", "pool1", "conv2", "norm2", "pool2"} <= set(names)
    for name in names:
        assert f"PHASE_MARK(PH_{name.upper()})" in src, name


def test_phase_rows_scale_shares_to_the_timed_median():
    rows = phase_rows(["a", "b", "c"], [1, 3, 0], us_per_image=20.0)
    assert [r["share"] for r in rows] == [0.25, 0.75, 0.0]
    assert sum(r["us_per_image"] for r in rows) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="not all zero"):
        phase_rows(["a"], [0], 1.0)
    with pytest.raises(ValueError, match="2 phase names but 1"):
        phase_rows(["a", "b"], [1], 1.0)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("timing", [0, 1])
def test_fused_builds_with_and_without_phase_marks(tmp_path, timing):
    """The marks compile (and cost no spills); without them the kernel is the timed one."""
    from pipeline.stages.build import nvcc_command

    v = "fused-reuse-t4"
    cmd = nvcc_command(REPO / VARIANTS[v].source, [*nvcc_flags(v), f"-DPHASE_TIMING={timing}"], "sm_90",
                       tmp_path / "k.cubin")  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "0 bytes spill stores" in r.stdout + r.stderr


# ------------------------------------------------------------------ GPU
@pytest.mark.gpu
@pytest.mark.skipif(SKIP is not None, reason=f"needs an NVIDIA GPU: {SKIP}")
@pytest.mark.parametrize("variant", ["lbl", "fused-reuse-t4", "fused-recompute-t2", "lbl-fp16",
                                     "fused-reuse-t2x7-fp16", "fused-recompute-t4-bf16"])
@pytest.mark.parametrize("batch,h,w", [(3, 227, 227), (2, 231, 199)])
def test_measure_phases_on_the_gpu(variant, batch, h, w):
    from pipeline.stages.phases import measure_phases

    res = measure_phases(variant, batch, h, w, launches=5)
    rows = res["phases"]
    shares = np.array([r["share"] for r in rows])
    assert shares.sum() == pytest.approx(1.0)
    assert sum(r["us_per_image"] for r in rows) == pytest.approx(res["us_per_image_median"])
    by = {r["phase"]: r["share"] for r in rows}
    assert by["conv1"] > 0.05 and by["conv2"] > 0.05  # the GEMMs are real work in every variant
    if VARIANTS[variant].strategy == "lbl":
        assert [r["phase"] for r in rows] == ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2"]
    else:
        assert [r["phase"] for r in rows] == list(fused_phase_names((REPO / VARIANTS[variant].source).read_text()))
        assert res["instrumented_max_rel_diff"] < 1e-5  # the marks change timing, not results
        if "PYTEST_XDIST_WORKER" not in os.environ:  # two timings apart: meaningless while xdist's -n shares the GPU
            assert 0.8 < res["instrumented_over_timed"] < 1.25
        assert all(s > 0 for s in shares)


def _write_phases(d, variant, names, amounts, us, time_us=None):
    from pipeline.stages.phases import phase_rows

    record = {"schema_version": 2, **VARIANTS[variant].record()}  # what every result file starts with
    d.mkdir(parents=True)
    (d / "phases.json").write_text(json.dumps({**record, "us_per_image_median": us,
                                               "phases": phase_rows(names, amounts, us)}))  # fmt: skip
    if time_us is not None:
        (d / "time.json").write_text(json.dumps({**record, "us_per_image_median": time_us}))


def test_collect_phases_scales_to_the_timing_stage(tmp_path):
    from analysis.collect import collect_phases

    g = tmp_path / "results" / "somegpu"
    (g).mkdir(parents=True)
    (g / "provenance.json").write_text("{}")
    _write_phases(g / "alexnet" / "lbl" / "b128", "lbl", ["conv1", "conv2"], [1.0, 3.0], 30.0, time_us=24.0)
    _write_phases(g / "alexnet" / "fused-reuse-t4" / "b128", "fused-reuse-t4", ["conv1", "conv2"], [1, 1], 32.0)
    df = collect_phases([tmp_path / "results"])
    lbl = df[df["variant"] == "lbl"].set_index("phase")
    assert lbl.loc["conv2", "us_per_image"] == pytest.approx(18.0) and set(lbl["scaled_to"]) == {"time.json"}
    fused = df[df["variant"] == "fused-reuse-t4"].set_index("phase")
    assert fused["us_per_image"].sum() == pytest.approx(32.0) and set(fused["scaled_to"]) == {"phases.json"}
    assert set(df["strategy"]) == {"lbl", "reuse"}


def test_time_breakdown_figure_draws_and_placeholders(tmp_path):
    from analysis.collect import collect_phases
    from analysis.measured_figures import time_breakdown

    time_breakdown(pd.DataFrame(), tmp_path / "empty.svg", "alexnet")
    assert "no GPU measurements" in (tmp_path / "empty.svg").read_text()
    g = tmp_path / "results" / "somegpu"
    _write_phases(g / "alexnet" / "lbl" / "b128", "lbl", ["conv1", "norm1", "conv2"], [2, 1, 5], 24.0)
    _write_phases(g / "alexnet" / "fused-reuse-t4" / "b128", "fused-reuse-t4", ["shift", "conv1", "conv2"], [1, 4, 5], 32.0)
    (g / "provenance.json").write_text("{}")
    time_breakdown(collect_phases([tmp_path / "results"]), tmp_path / "tb.svg", "alexnet")
    svg = (tmp_path / "tb.svg").read_text()
    assert "batch 128" in svg and "24.0 us" in svg and "32.0 us" in svg
    assert "conv1 + conv2 kernels alone (21.0 us)" in svg


def test_phases_of_the_archived_h200_run():
    """Genuine phases.json files (reports/archive/h200-2026-11-26-run2) read back and checked."""
    from analysis.collect import collect_phases

    archive = REPO / "reports" / "archive" / "h200-2026-11-26-run2"
    df = collect_phases([], [archive])
    assert set(df["source"]) == {"archived h200 2026-11-26 run2"} and set(df["batch"]) == {128}
    assert set(df["variant"]) == {"lbl", "fused-reuse-t2", "fused-reuse-t4", "fused-recompute-t2", "fused-recompute-t4"}
    assert set(df["scaled_to"]) == {"time.json"}
    for variant, g in df.groupby("variant"):
        timed = json.loads((archive / "h200" / "alexnet" / variant / "b128" / "time.json").read_text())
        assert g["us_per_image"].sum() == pytest.approx(timed["us_per_image_median"])
        assert g["share"].sum() == pytest.approx(1.0)
        if variant != "lbl":
            assert (g["share"] > 0).all() and (g["instrumented_over_timed"].between(1.0, 1.1)).all()
    lbl = df[df["variant"] == "lbl"].set_index("phase")["us_per_image"]
    assert list(lbl.index) == ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2"]
    assert lbl[["conv1", "conv2"]].sum() > 0.8 * lbl.sum()  # lbl's time is its two GEMMs


def test_the_workflow_summary_prints_the_breakdown(tmp_path):
    from analysis.collect import collect_phases
    from analysis.summary import phases_table

    assert phases_table(tmp_path / "missing.csv") == ""
    df = collect_phases([], [REPO / "reports" / "archive" / "h200-2026-11-26-run2"])
    df.assign(source="this run").to_csv(tmp_path / "tidy_phases.csv", index=False)
    text = phases_table(tmp_path / "tidy_phases.csv")
    lines = text.splitlines()
    assert lines[0].startswith("Where the time goes") and "conv1" in lines[1] and "total" in lines[1]
    assert lines[1].split()[0] == "network" and lines[2].split()[:2] == ["alexnet", "lbl"] and len(lines) == 2 + 5
