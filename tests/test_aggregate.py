"""Tests of analysis/aggregate.py on the SYNTHETIC FIXTURE in tests/data/results_fixture."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.aggregate import (
    NO_GPU,
    SOURCE_THIS_RUN,
    archive_source,
    block_bytes,
    collect,
    collect_ceilings,
    collect_kernels,
    compulsory_dram_bytes_per_image,
    groups_from_config,
    paper_value,
    read_paper_comparison,
    save_table,
    source_title,
)

FIXTURE = Path(__file__).resolve().parent / "data" / "results_fixture"
ARCHIVE = FIXTURE / "archive" / "synthgpu-2026-11-20"
GROUPS = {"alexnet": ("conv1", "pool2")}


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return collect([FIXTURE], FIXTURE / "plan.csv", [ARCHIVE], GROUPS)


def row(df: pd.DataFrame, variant: str, batch: int, source: str = SOURCE_THIS_RUN) -> pd.Series:
    hit = df[(df["variant"] == variant) & (df["batch"] == batch) & (df["source"] == source)]
    assert len(hit) == 1, f"{variant} b{batch} {source}: {len(hit)} rows"
    return hit.iloc[0]


def test_one_row_per_key_and_units_in_names(tidy):
    assert not tidy.duplicated(["source", "gpu", "network", "variant", "batch"]).any()
    assert len(tidy[tidy["source"] == SOURCE_THIS_RUN]) == 6 * 3  # plan: 6 variants x 3 batches
    for col in ("us_per_image", "dram_bytes_per_image", "energy_mj_per_image", "achieved_flops_per_s",
                "ai_dram_flops_per_byte", "ai_l2_flops_per_byte", "ai_l1_flops_per_byte"):
        assert col in tidy.columns


def test_archive_is_labelled_and_only_what_it_measured(tidy):
    arch = tidy[tidy["source"] != SOURCE_THIS_RUN]
    assert set(arch["source"]) == {"archived synthgpu 2026-11-20"}
    assert set(zip(arch["variant"], arch["batch"])) == {("lbl", 128), ("fused-reuse-t4", 128)}
    assert source_title("archived synthgpu 2026-11-20") == "archived (synthgpu, 2026-11-20)"
    assert archive_source(Path("x/nvidia-h200-2026-01-31")) == "archived nvidia-h200 2026-01-31"


def test_derived_values_follow_from_the_files(tidy):
    lbl, fused = row(tidy, "lbl", 128), row(tidy, "fused-reuse-t4", 128)
    assert fused["speedup_vs_lbl"] == pytest.approx(lbl["us_per_image"] / fused["us_per_image"])
    assert fused["speedup_vs_lbl_lo"] < fused["speedup_vs_lbl"] < fused["speedup_vs_lbl_hi"]
    assert fused["achieved_flops_per_s"] == pytest.approx(fused["flops_per_image"] / (fused["us_per_image"] * 1e-6))
    assert fused["ai_dram_flops_per_byte"] == pytest.approx(fused["flops_per_image"] / fused["dram_bytes_per_image"])
    assert fused["dram_ratio_to_model"] == pytest.approx(fused["dram_bytes_per_image"] / fused["model_dram_bytes_per_image"])
    assert fused["dram_saving_vs_lbl_pct"] > 80  # fixture: fused avoids lbl's round trips at b128
    assert lbl["speedup_vs_lbl"] == pytest.approx(1.0)
    assert lbl["n_kernels"] == 6 and fused["n_kernels"] == 1


def test_missing_measurements_are_nan_with_a_note(tidy):
    no_time = row(tidy, "vendor", 1)
    assert math.isnan(no_time["us_per_image"]) and "no time.json" in no_time["missing"]
    assert not no_time["model_only"]  # its profile exists
    no_prof = row(tidy, "fused-recompute-t4", 128)
    assert math.isnan(no_prof["dram_bytes_per_image"]) and "profile unavailable" in no_prof["missing"]
    assert not math.isnan(no_prof["us_per_image"])
    failed = row(tidy, "fused-recompute-t2", 16)
    assert "verification FAILED" in failed["missing"] and failed["model_only"]
    assert math.isnan(failed["us_per_image"]) and math.isnan(failed["dram_bytes_per_image"])


def test_model_only_when_no_gpu_results(tmp_path):
    (tmp_path / "model").mkdir()
    df = collect([tmp_path], FIXTURE / "plan.csv", [], GROUPS)
    assert len(df) == 18 and df["model_only"].all() and set(df["gpu"]) == {NO_GPU}
    assert df["us_per_image"].isna().all() and df["model_dram_bytes_per_image"].notna().all()
    assert (df["missing"] == "no GPU results").all()


def test_gpu_dir_given_directly_and_planned_but_unmeasured(tmp_path):
    gpu = tmp_path / "synthgpu"
    shutil.copytree(FIXTURE / "synthgpu", gpu)
    shutil.rmtree(gpu / "alexnet" / "fused-reuse-t2")
    df = collect([gpu], FIXTURE / "plan.csv", [], GROUPS)
    r = row(df, "fused-reuse-t2", 16)
    assert r["model_only"] and "not measured" in r["missing"]


def test_compulsory_traffic_matches_design_numbers():
    b = block_bytes("alexnet", "conv1", "pool2")
    assert b["input_bytes_per_image"] == 618_348  # 3x227x227 floats
    assert b["output_bytes_per_image"] == 173_056  # 256x13x13 floats
    assert b["weight_bytes"] == pytest.approx(1.37e6, rel=0.01)
    assert b["largest_intermediate_bytes_per_image"] == 96 * 55 * 55 * 4
    assert compulsory_dram_bytes_per_image("alexnet", "conv1", "pool2", 1) > compulsory_dram_bytes_per_image(
        "alexnet", "conv1", "pool2", 128)


def test_groups_from_config():
    cfg = {"networks": {"alexnet": {"groups": {"front": ["conv1", "pool2"], "b": ["conv3", "pool5"]}},
                        "vgg_e": {"groups": {"first5": ["conv1_1", "relu3_1"]}}},
           "kernels": {"network": "alexnet", "group": "front"}}
    assert groups_from_config(cfg) == {"alexnet": ("conv1", "pool2"), "vgg_e": ("conv1_1", "relu3_1")}


def test_kernels_and_ceilings_tables():
    k = collect_kernels([FIXTURE], [ARCHIVE])
    lbl = k[(k["variant"] == "lbl") & (k["batch"] == 128) & (k["source"] == SOURCE_THIS_RUN)]
    assert sorted(lbl["kernel"]) == sorted(["conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2"])
    assert (k["achieved_flops_per_s"].dropna() > 0).all()
    c = collect_ceilings([FIXTURE], [ARCHIVE])
    assert len(c) == 2 and c["l2_cache_bytes"].eq(50 * 2**20).all()


def test_paper_value_lookup_by_figure_id():
    """The fixture's paper_comparison.csv is genuine output of pipeline/model/paper.py (model only)."""
    paper = read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")
    assert paper_value(paper, "vgg_fused_dram") == 3.6
    assert paper_value(paper, "vgg_lbl_dram") == 77
    assert math.isnan(paper_value(paper, "no_such_figure"))


def test_save_csv_and_parquet_round_trip(tidy, tmp_path):
    save_table(tidy, tmp_path / "tidy.csv", tmp_path / "tidy.parquet")
    back = pd.read_parquet(tmp_path / "tidy.parquet")
    assert len(back) == len(tidy) and list(back.columns) == list(tidy.columns)
    assert back["us_per_image"].equals(tidy["us_per_image"])


def test_provenance_of_the_archived_h200_run():
    """Genuine archived results (reports/archive): the card, versions and ncu settings are read back."""
    from analysis.aggregate import collect_provenance

    archive = Path(__file__).resolve().parents[1] / "reports" / "archive" / "h200-2026-11-26"
    (row,) = collect_provenance([], [archive]).to_dict("records")
    assert row["source"] == "archived h200 2026-11-26" and row["gpu_name"] == "NVIDIA H200"
    assert row["ncu_cache_control"] == "all" and row["ncu_clock_control"] == "none"
    assert row["gpu_uuid"].startswith("GPU-") and row["driver_version"]
