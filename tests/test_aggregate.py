"""Tests of the tidy tables (analysis/collect.py, derive.py, aggregate.py) on the SYNTHETIC FIXTURE in
tests/data/results_fixture, and of the rule that analysis reads record fields, never variant names."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.aggregate import tidy_tables
from analysis.collect import SchemaError, collect, collect_provenance, save_table
from analysis.inputs import read_paper_comparison, read_table
from analysis.paper import paper_value
from analysis.rows import rank, variant_order
from analysis.sources import NO_GPU, SOURCE_THIS_RUN, archive_source, source_title

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "data" / "results_fixture"
ARCHIVE = FIXTURE / "archive" / "synthgpu-2026-11-20"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return tidy_tables([FIXTURE], FIXTURE / "plan.csv", [ARCHIVE])


@pytest.fixture(scope="module")
def tidy(tables) -> pd.DataFrame:
    return tables["tidy"]


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


def test_rows_carry_the_record_and_follow_its_order(tidy):
    """strategy, tile and precision come from the files (or the plan); rows sort by them."""
    fused = row(tidy, "fused-recompute-t4", 16)
    assert (fused["strategy"], fused["tile"], fused["precision"], fused["group"]) == ("recompute", "4", "fp32", "front")
    assert pd.isna(row(tidy, "lbl", 16)["tile"])
    this_run = tidy[(tidy["source"] == SOURCE_THIS_RUN) & (tidy["batch"] == 16)]
    assert list(this_run["variant"]) == ["lbl", "fused-reuse-t2", "fused-reuse-t4", "fused-recompute-t2",
                                         "fused-recompute-t4", "vendor"]
    assert list(tidy["source"].drop_duplicates()) == [SOURCE_THIS_RUN, "archived synthgpu 2026-11-20"]


def test_rank_is_computed_from_the_fields():
    assert rank("lbl", None, "fp32") < rank("reuse", "2x7", "fp32") < rank("reuse", "4", "fp32")  # tile area
    assert rank("reuse", "4", "fp32") < rank("recompute", "2", "fp32") < rank("vendor", float("nan"), "fp32")
    assert rank("no-such-strategy", None, None) > rank("vendor", None, "fp32")
    # a name that says nothing: the order is the fields'
    frame = pd.DataFrame({"variant": ["b", "a", "c"], "strategy": ["vendor", "recompute", "lbl"],
                          "tile": [None, "3", None], "precision": ["fp32"] * 3})
    assert variant_order(frame) == ["c", "a", "b"]


def test_archive_is_labelled_and_only_what_it_measured(tidy):
    arch = tidy[tidy["source"] != SOURCE_THIS_RUN]
    assert set(arch["source"]) == {"archived synthgpu 2026-11-20"}
    assert set(zip(arch["variant"], arch["batch"])) == {("lbl", 128), ("fused-reuse-t4", 128)}
    assert arch["model_dram_bytes_per_image"].notna().all()  # joined from the archive's own plan.csv
    assert source_title("archived synthgpu 2026-11-20") == "archived (synthgpu, 2026-11-20)"
    assert archive_source(Path("x/nvidia-h200-2026-01-31")) == "archived nvidia-h200 2026-01-31"


def test_derived_values_follow_from_the_files(tidy):
    lbl, fused = row(tidy, "lbl", 128), row(tidy, "fused-reuse-t4", 128)
    assert fused["speedup_vs_lbl"] == pytest.approx(lbl["us_per_image"] / fused["us_per_image"])
    assert fused["speedup_vs_lbl_lo"] < fused["speedup_vs_lbl"] < fused["speedup_vs_lbl_hi"]
    assert fused["achieved_flops_per_s"] == pytest.approx(fused["flops_per_image"] / (fused["us_per_image"] * 1e-6))
    assert fused["ai_dram_flops_per_byte"] == pytest.approx(fused["flops_per_image"] / fused["dram_bytes_per_image"])
    assert fused["ai_l2_flops_per_byte"] == pytest.approx(fused["flops_per_image"] / fused["l2_sm_bytes_per_image"])
    assert fused["dram_ratio_to_model"] == pytest.approx(fused["dram_bytes_per_image"] / fused["model_dram_bytes_per_image"])
    assert fused["dram_saving_vs_lbl_pct"] > 80  # fixture: fused avoids lbl's round trips at b128
    assert lbl["speedup_vs_lbl"] == pytest.approx(1.0)
    assert lbl["n_kernels"] == 6 and fused["n_kernels"] == 1


def test_model_quantities_are_joined_from_the_plan(tidy):
    """Compulsory traffic, weights, largest intermediate and the kernels' counted work are plan.csv's."""
    plan = pd.read_csv(FIXTURE / "plan.csv").set_index(["variant", "batch"])
    for variant, batch in (("lbl", 1), ("fused-reuse-t4", 128), ("fused-recompute-t2", 16)):
        r, p = row(tidy, variant, batch), plan.loc[(variant, batch)]
        for col in ("compulsory_dram_bytes_per_image", "weight_bytes", "largest_intermediate_bytes_per_image",
                    "kernel_padding_macs_per_image", "kernel_counted_flops_per_image", "model_useful_macs_per_image"):
            assert r[col] == pytest.approx(p[col], nan_ok=True), (variant, col)
    fused = row(tidy, "fused-reuse-t4", 128)
    assert fused["compulsory_dram_bytes_per_image"] == 618_348 + 173_056 + fused["weight_bytes"] / 128
    assert fused["dram_ratio_to_compulsory"] == pytest.approx(fused["dram_bytes_per_image"]
                                                              / fused["compulsory_dram_bytes_per_image"])
    assert math.isnan(row(tidy, "lbl", 128)["kernel_counted_flops_per_image"])  # fused only


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
    df = tidy_tables([tmp_path], FIXTURE / "plan.csv", [])["tidy"]
    assert len(df) == 18 and df["model_only"].all() and set(df["gpu"]) == {NO_GPU}
    assert df["us_per_image"].isna().all() and (df["model_dram_bytes_per_image"].notna() == (df["strategy"] != "vendor")).all()
    assert (df["missing"] == "no GPU results").all()
    assert set(df["strategy"]) == {"lbl", "reuse", "recompute", "vendor"}  # the plan's records


def test_gpu_dir_given_directly_and_planned_but_unmeasured(tmp_path):
    gpu = tmp_path / "synthgpu"
    shutil.copytree(FIXTURE / "synthgpu", gpu)
    shutil.rmtree(gpu / "alexnet" / "fused-reuse-t2")
    df = collect([gpu], FIXTURE / "plan.csv", [])
    r = row(df, "fused-reuse-t2", 16)
    assert r["model_only"] and "not measured" in r["missing"] and r["strategy"] == "reuse"


def test_a_file_of_an_older_schema_is_refused_with_the_fix(tmp_path):
    gpu = tmp_path / "synthgpu"
    shutil.copytree(FIXTURE / "synthgpu", gpu)
    t = gpu / "alexnet" / "lbl" / "b16" / "time.json"
    t.write_text(json.dumps({k: v for k, v in json.loads(t.read_text()).items() if k != "schema_version"}))
    with pytest.raises(SchemaError, match=r"schema_version missing.*--migrate"):
        collect([gpu], FIXTURE / "plan.csv", [])


def test_kernels_and_ceilings_tables(tables):
    k = tables["kernels"]
    lbl = k[(k["variant"] == "lbl") & (k["batch"] == 128) & (k["source"] == SOURCE_THIS_RUN)]
    assert sorted(lbl["kernel"]) == sorted(["conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2"])
    assert set(lbl["strategy"]) == {"lbl"}
    assert (k["achieved_flops_per_s"].dropna() > 0).all()
    assert (k["duration_us"] > 0).all() and (k["shared_bytes"] > 0).all()
    c = tables["ceilings"]
    assert len(c) == 2 and c["l2_bytes"].eq(50 * 2**20).all() and c["fp32_flop_per_s"].eq(5.1e13).all()


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
    assert list(read_table(tmp_path / "tidy.csv")["tile"].dropna().unique()) == ["2", "4"]  # labels stay labels


def test_provenance_of_the_archived_h200_run():
    """Genuine archived results (reports/archive): the card, versions and ncu settings are read back."""
    archive = REPO / "reports" / "archive" / "h200-2026-11-26"
    (r,) = collect_provenance([], [archive]).to_dict("records")
    assert r["source"] == "archived h200 2026-11-26" and r["gpu_name"] == "NVIDIA H200"
    assert r["ncu_cache_control"] == "all" and r["ncu_clock_control"] == "none"
    assert r["gpu_uuid"].startswith("GPU-") and r["driver_version"]


# Variant-name parsing, in any spelling analysis ever used: the record fields say it instead.
NAME_PARSING = re.compile(
    r"""["'](reuse|recompute|lbl|vendor|fused)["']\s+(not\s+)?in\s+\w"""  # "reuse" in v
    r"""|rsplit\(\s*["']-t|split\(\s*["']-t|["']-t["']\s+in\b"""  # v.rsplit("-t"), "-t" in v
    r"""|\b(strategy_of|tile_of|variant_rank|_tile)\s*\("""  # the old helpers
    r"""|\.(startswith|endswith)\(\s*["'](fused|lbl|vendor|reuse|recompute)"""
    r"""|\[["']variant["']\]\s*[!=]=\s*["']"""  # df["variant"] == "lbl"
)


def test_analysis_reads_fields_never_variant_names():
    offenders = []
    for path in sorted((REPO / "analysis").glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_PARSING.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "variant names parsed in analysis/:\n" + "\n".join(offenders)
    # one reader of archived names: the migration's record helper
    parsers = [p.name for p in (REPO / "analysis").glob("*.py") if "Variant.parse(" in p.read_text()]
    assert parsers == ["archive.py"] and (REPO / "analysis" / "archive.py").read_text().count("Variant.parse(") == 1


def test_the_name_check_would_catch_the_old_code():
    old = ['if "reuse" in variant:', 'tail = variant.rsplit("-t", 1)', "strategy_of(variant)",
           'k[k["variant"] == "lbl"]', 'reuse = sorted((v for v in variants if "reuse" in v))']
    assert all(NAME_PARSING.search(line) for line in old)


def test_speedups_compare_within_a_precision():
    """x lbl is against lbl of the variant's own precision (same GEMM core: the ratio is fusion),
    x vendor against the fastest PyTorch anchor of that precision (the best a user could pick)."""
    import pandas as pd

    from analysis.derive import derive

    rows = [("lbl", "lbl", "fp32", 24.0), ("vendor-cl", "vendor", "fp32", 41.0), ("vendor", "vendor", "fp32", 50.0),
            ("lbl-fp16", "lbl", "fp16", 9.4), ("vendor-cl-fp16", "vendor", "fp16", 31.4),
            ("vendor-compile-fp16", "vendor", "fp16", 11.6), ("fused-reuse-t4x7-fp16", "reuse", "fp16", 8.9)]
    df = pd.DataFrame([{"source": "this run", "gpu": "h200", "network": "alexnet", "batch": 128, "variant": v,
                        "strategy": s, "precision": p, "us_per_image_median": us, "us_per_image_q1": us,
                        "us_per_image_q3": us} for v, s, p, us in rows])  # fmt: skip
    for c in ("dram_bytes_per_image", "model_dram_bytes_per_image", "compulsory_dram_bytes_per_image", "flops_per_image",
              "l2_sm_bytes_per_image", "l2_bytes_per_image", "l1_bytes_per_image", "model_useful_macs_per_image"):
        df[c] = float("nan")
    d = derive(df).set_index("variant")
    assert d.loc["fused-reuse-t4x7-fp16", "speedup_vs_lbl"] == pytest.approx(9.4 / 8.9)
    assert d.loc["fused-reuse-t4x7-fp16", "speedup_vs_vendor"] == pytest.approx(11.6 / 8.9)
    assert d.loc["lbl", "speedup_vs_vendor"] == pytest.approx(41.0 / 24.0)
    assert d.loc["lbl-fp16", "speedup_vs_lbl"] == pytest.approx(1.0)


# ------------------------------------------------------------------ compute ceilings, cuDNN convs alone
# A recorded run with FP32 and FP16 variants, measured before the tensor-core ceilings and the convs
# alone existed; tests add those to a copy (archived_run_copy, tests/conftest.py) with made-up values.
RECORDED = "h200-2026-12-01"
TC_FP16_TEST_CEILING = 6.0e14  # made up for the test, not a measurement
CONVS_ALONE_TEST = {"convs_alone": [{"layer": "conv1", "us_per_image_median": 2.0},
                                    {"layer": "conv2", "us_per_image_median": 3.0}]}  # made up too


def recorded_tidy(root: Path) -> pd.DataFrame:
    return tidy_tables([], None, [root])["tidy"]


def test_16_bit_rows_count_the_models_useful_flops_not_ncus(archived_run_copy):
    """ncu's FLOP metrics miss HMMA: a 16-bit row's achieved FLOP/s (and intensities) use the model's
    useful FLOPs; fp32 rows keep ncu's executed FP32 FLOPs."""
    t = recorded_tidy(archived_run_copy(RECORDED))
    src = f"archived h200 {RECORDED[5:]}"
    fp16, fp32 = row(t, "fused-reuse-t4x7-fp16", 128, src), row(t, "fused-reuse-t2x7", 128, src)
    assert fp16["flops_per_image"] < 0.1 * fp16["model_useful_flops_per_image"]  # what ncu saw: no HMMA
    useful = fp16["model_useful_flops_per_image"]
    assert fp16["achieved_flops_per_s"] == pytest.approx(useful / (fp16["us_per_image"] * 1e-6))
    assert fp16["ai_dram_flops_per_byte"] == pytest.approx(useful / fp16["dram_bytes_per_image"])
    assert fp16["roofline_flops_source"] == "model useful MACs x 2"
    assert fp32["achieved_flops_per_s"] == pytest.approx(fp32["flops_per_image"] / (fp32["us_per_image"] * 1e-6))
    assert fp32["roofline_flops_source"] == "ncu FP32 instructions"


def test_each_row_gets_the_compute_ceiling_of_its_own_precision(archived_run_copy):
    """fp32 against the FP32 FFMA peak; fp16 against the tensor-core one, NaN where the run's
    ceilings.json has none (as archived) rather than falling back to FP32."""
    src = f"archived h200 {RECORDED[5:]}"
    as_archived = recorded_tidy(archived_run_copy(RECORDED))
    ceil = json.loads((REPO / "reports" / "archive" / RECORDED / "h200" / "ceilings.json").read_text())
    lbl = row(as_archived, "lbl", 128, src)
    useful = 2 * lbl["model_useful_macs_per_image"] / (lbl["us_per_image"] * 1e-6)
    assert lbl["useful_flops_per_s"] == pytest.approx(useful)
    assert lbl["pct_of_compute_ceiling"] == pytest.approx(100 * useful / ceil["fp32_flop_per_s"])
    assert math.isnan(row(as_archived, "lbl-fp16", 128, src)["pct_of_compute_ceiling"])

    t = recorded_tidy(archived_run_copy(RECORDED, {"tc_fp16_flop_per_s": TC_FP16_TEST_CEILING}))
    fp16 = row(t, "lbl-fp16", 128, src)
    assert fp16["compute_ceiling_flop_per_s"] == TC_FP16_TEST_CEILING
    assert fp16["pct_of_compute_ceiling"] == pytest.approx(100 * fp16["useful_flops_per_s"] / TC_FP16_TEST_CEILING)
    assert row(t, "lbl", 128, src)["pct_of_compute_ceiling"] == pytest.approx(lbl["pct_of_compute_ceiling"])


def test_convs_alone_reach_the_tidy_table_and_bound_each_precision(archived_run_copy):
    """vendor-cl's convs alone (time.json) become its row's sum and breakdown; every row of that
    precision and batch is compared with the sum; other precisions have no such reference."""
    src = f"archived h200 {RECORDED[5:]}"
    t = recorded_tidy(archived_run_copy(RECORDED, times={"vendor-cl-fp16/b128": CONVS_ALONE_TEST}))
    anchor = row(t, "vendor-cl-fp16", 128, src)
    assert anchor["convs_alone_us_per_image"] == 5.0 and anchor["convs_alone_by_layer"] == "conv1:2;conv2:3"
    fused = row(t, "fused-reuse-t4x7-fp16", 128, src)
    assert fused["speedup_vs_cudnn_convs_alone"] == pytest.approx(5.0 / fused["us_per_image"])
    assert math.isnan(row(t, "fused-reuse-t2x7", 128, src)["speedup_vs_cudnn_convs_alone"])  # fp32: none timed
    assert math.isnan(row(t, "lbl-fp16", 16, src)["speedup_vs_cudnn_convs_alone"])  # another batch


def test_convs_alone_sum_is_never_partial():
    from analysis.collect import convs_alone_columns

    assert convs_alone_columns(None) == {} and convs_alone_columns([]) == {}
    c = convs_alone_columns([{"layer": "conv1", "us_per_image_median": 2.0}, {"layer": "conv2"}])
    assert math.isnan(c["convs_alone_us_per_image"]) and c["convs_alone_by_layer"] == "conv1:2;conv2:nan"


def test_summary_gives_compute_ceiling_shares_and_the_convs_alone(archived_run_copy, tmp_path):
    """The table the workflow prints, on a recorded run read as this run's results."""
    from analysis.summary import summary_table

    root = archived_run_copy(RECORDED, {"tc_fp16_flop_per_s": TC_FP16_TEST_CEILING},
                             {"vendor-cl-fp16/b128": CONVS_ALONE_TEST})
    t = tidy_tables([root], root / "plan.csv")["tidy"]
    save_table(t, tmp_path / "tidy.csv")
    text = summary_table(tmp_path / "tidy.csv")
    assert "% compute ceiling" in text and "x cuDNN convs" in text
    assert "vendor-cl-fp16 b128: conv1 2 + conv2 3 = 5" in text
    assert "lower bound on any layer-by-layer pass built from cuDNN's convolutions" in text
    lbl16 = row(t, "lbl-fp16", 128)
    cells = next(l.split() for l in text.splitlines() if "lbl-fp16" in l.split() and "128" in l.split())
    assert f"{lbl16['pct_of_compute_ceiling']:.3g}" in cells and f"{5.0 / lbl16['us_per_image']:.3g}" in cells


def test_launch_mode_reaches_the_tidy_table():
    """The graphed run (h200-2026-12-01-graphs, genuine time.json files) reads `graph` with the
    eager time beside it; a run archived before graph launches reads `eager`, which it was."""
    t = tidy_tables([], None, [REPO / "reports/archive/h200-2026-12-01-graphs",
                               REPO / "reports/archive/h200-2026-12-01"])["tidy"]
    measured = t[t["us_per_image"].notna()]
    by_source = measured.groupby("source")["launch"].unique().to_dict()
    assert list(by_source["archived h200 2026-12-01 graphs"]) == ["graph"]
    assert list(by_source["archived h200 2026-12-01"]) == ["eager"]
    anchor = row(t, "vendor-cl-fp16", 1, "archived h200 2026-12-01 graphs")
    assert anchor["eager_us_per_batch_calibration"] > anchor["us_per_batch_median"]  # Python's launch loop


def test_output_counted_as_written_where_ncu_saw_it_in_l2():
    """The graphs run, batch 128: the fused fp16 pass ends its ncu range with most of its 86.5 KB
    output still in L2 (29.7 KB written); counted as written it is 1.01x the compulsory bytes.
    lbl writes more than its output, so its count is ncu's total."""
    t = tidy_tables([], None, [REPO / "reports/archive/h200-2026-12-01-graphs"])["tidy"]
    src = "archived h200 2026-12-01 graphs"
    fused, lbl = row(t, "fused-reuse-t4x7-fp16", 128, src), row(t, "lbl-fp16", 128, src)
    assert fused["output_bytes_per_image"] == 256 * 13 * 13 * 2
    assert fused["dram_write_bytes_per_image"] < fused["output_bytes_per_image"]
    assert fused["dram_bytes_per_image_output_written"] == pytest.approx(
        fused["dram_read_bytes_per_image"] + fused["output_bytes_per_image"])
    assert 1.0 < fused["dram_ratio_to_compulsory_output_written"] < 1.2 < lbl["dram_ratio_to_compulsory"]
    assert lbl["dram_bytes_per_image_output_written"] == pytest.approx(lbl["dram_bytes_per_image"])
    unprofiled = row(t, "fused-reuse-t4x7-fp16", 16, src)
    assert math.isnan(unprofiled["dram_bytes_per_image_output_written"])  # no counters: no number
