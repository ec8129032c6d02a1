"""The report per network (issue 13 item 5): speedups against the lbl of the same network, precision
and kernel family and the fastest anchor of the same network and precision, the summary and tables
grouped by network, roofline and speedup over both networks, and the VGG-E traffic figure beside
the paper.

Inputs: a copy of the archived H200 run (reports/archive/h200-2026-12-01, real AlexNet results)
with SYNTHETIC rows added here, in tests only: generated AlexNet kernels and VGG-E's first five
layers (``vgg_e.first5.*``), written as result files in the agreed format (record with ``impl``,
names prefixed ``<network>.<group>.`` for a network other than alexnet/front). Their numbers are
made up (times) or the model's (plan columns); none of them is a measurement.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import figure_list, measured_figures
from analysis.aggregate import tidy_tables
from analysis.collect import save_table
from analysis.derive import derive
from analysis.inputs import read_paper_comparison, read_table
from analysis.summary import summary_table
from analysis.tables import extra_work_table, tidy_for_report, write
from pipeline.core.networks import load_network
from pipeline.model.costs import group_costs, group_input_shape
from pipeline.stages.plan import lbl_gpu_dram_bytes_per_image

REPO = Path(__file__).resolve().parents[1]
ARCHIVED = REPO / "reports" / "archive" / "h200-2026-12-01"
GPU = "h200"
SYNTHETIC = "SYNTHETIC (tests/test_report_networks.py), not a measurement"
GROUPS = {"alexnet": {"front": ["conv1", "pool2"]}, "vgg_e": {"first5": ["conv1_1", "relu3_1"]}}

# (network, group, variant, strategy, tile, precision, impl, us per image at each batch)
VGG = "vgg_e.first5."
SYNTH_VARIANTS = [
    ("alexnet", "front", "lbl-gen-fp16", "lbl", None, "fp16", "gen", {1: 140.0, 16: 14.0, 128: 10.0}),
    ("alexnet", "front", "fused-reuse-t2x7-gen-fp16", "reuse", "2x7", "fp16", "gen", {1: 120.0, 16: 11.0, 128: 8.0}),
    ("vgg_e", "first5", VGG + "lbl-gen-fp16", "lbl", None, "fp16", "gen", {1: 300.0, 16: 120.0, 64: 95.0}),
    ("vgg_e", "first5", VGG + "fused-reuse-t2x14-gen-fp16", "reuse", "2x14", "fp16", "gen",
     {1: 280.0, 16: 80.0, 64: 70.0}),
    ("vgg_e", "first5", VGG + "vendor-cl-fp16", "vendor", None, "fp16", "cl", {1: 900.0, 16: 90.0, 64: 84.0}),
]  # fmt: skip
PROFILED = {"alexnet": 128, "vgg_e": 64}
SMEM_PER_BLOCK = 150_000  # the synthetic generated kernel's shared memory per block


def _model(network: str, group: str, strategy: str, tile: str | None) -> dict:
    """The model's numbers for a synthetic variant at 2 B/value (what the plan would carry)."""
    first, last = GROUPS[network][group]
    net = load_network(network)
    layers, ins = net.group(first, last), group_input_shape(net, first)
    ref = group_costs(layers, ins, 1, "reuse", ("x", "y"), 2)
    if strategy in ("reuse", "recompute"):
        rows, cols = (int(x) for x in tile.split("x"))
        c = group_costs(layers, ins, (rows, cols), strategy, ("y",), 2, split="balanced")
        maps, onchip = c.dram_bytes_per_image_fused, c.onchip_bytes
    elif strategy == "lbl":
        maps, onchip = lbl_gpu_dram_bytes_per_image(layers, ins, 2), 0
    else:
        maps = onchip = math.nan
    return {"maps": maps, "onchip": onchip, "weights": ref.weight_bytes, "compulsory": ref.dram_bytes_per_image_fused,
            "useful": ref.useful_macs_per_image}  # fmt: skip


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def synthetic_run(tmp: Path, networks: tuple[str, ...] = ("alexnet", "vgg_e")) -> Path:
    """A results root: the archived H200 run as copied, plus the synthetic variants of ``networks``
    (result files and plan rows). ``("alexnet",)`` without generated kernels: ``()``."""
    root = tmp / "results"
    shutil.copytree(ARCHIVED, root)
    plan = pd.read_csv(root / "plan.csv", dtype={"tile": str})
    extra = []
    for network, group, variant, strategy, tile, precision, impl, times in SYNTH_VARIANTS:
        if network not in networks:
            continue
        record = {"variant": variant, "network": network, "group": group, "strategy": strategy, "tile": tile,
                  "precision": precision, "impl": impl}  # fmt: skip
        base = root / GPU / network / variant
        _write(base / "verify.json", {"schema_version": 2, **record, "passed": True, "rel_l2_error": 1e-4,
                                      "rtol": 2.5e-3, "note": SYNTHETIC})  # fmt: skip
        m = _model(network, group, strategy, tile)
        for batch, us in times.items():
            _write(base / f"b{batch}" / "time.json", {
                "schema_version": 2, **record, "batch": batch, "gpu_name": "NVIDIA H200", "note": SYNTHETIC,
                "us_per_image_median": us, "us_per_image_q1": us * 0.99, "us_per_image_q3": us * 1.01,
                "us_per_batch_median": us * batch, "energy_mj_per_image": us * 0.4})  # fmt: skip
            if batch == PROFILED[network]:
                own = strategy != "vendor"
                dram = (m["maps"] + m["weights"] / batch) * 1.05 if own else 30e6
                smem = SMEM_PER_BLOCK if strategy == "reuse" else 40_000
                _write(base / f"b{batch}" / "profile.json", {
                    "schema_version": 2, **record, "batch": batch, "available": True, "note": SYNTHETIC,
                    "dram_read_bytes_per_image": 0.6 * dram, "dram_write_bytes_per_image": 0.4 * dram,
                    "dram_bytes_per_image": dram, "l2_bytes_per_image": 3 * dram, "l2_sm_bytes_per_image": 2 * dram,
                    "flops_per_image": 2.0 * m["useful"] / 50, "range_duration_us": us * batch,
                    "kernels": [{"name": f"synthetic_{strategy}", "flops": 2.0 * m["useful"] / 50 * batch,
                                 "dram_read_bytes": 0.6 * dram * batch, "dram_write_bytes": 0.4 * dram * batch,
                                 "l2_bytes": 3 * dram * batch, "l2_sm_sectors": 2 * dram * batch / 32,
                                 "achieved_occupancy_pct": 20.0, "theoretical_occupancy_pct": 25.0,
                                 "registers": 128, "shared_static_bytes": 0, "shared_dynamic_bytes": smem,
                                 "duration_ns": us * batch * 1e3}]})  # fmt: skip
            extra.append({**record, "tile": tile, "batch": batch,
                          "model_dram_bytes_per_image": m["maps"] + m["weights"] / batch,
                          "model_onchip_bytes": m["onchip"], "model_useful_macs_per_image": m["useful"],
                          "model_extra_macs_per_image": math.nan,
                          "compulsory_dram_bytes_per_image": m["compulsory"] + m["weights"] / batch,
                          "weight_bytes": m["weights"],
                          "onchip_bytes_per_block": SMEM_PER_BLOCK if strategy == "reuse" else math.nan})  # fmt: skip
    pd.concat([plan, pd.DataFrame(extra)], ignore_index=True).to_csv(root / "plan.csv", index=False)
    return root


def _tables(root: Path) -> dict[str, pd.DataFrame]:
    out = tidy_tables([root], root / "plan.csv", [])
    out["paper"] = read_paper_comparison(ARCHIVED / "model" / "paper_comparison.csv")
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _tables(synthetic_run(tmp_path_factory.mktemp("both")))


@pytest.fixture(scope="module")
def alexnet_only(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _tables(synthetic_run(tmp_path_factory.mktemp("alexnet"), networks=()))


def at(tidy: pd.DataFrame, network: str, variant: str, batch: int) -> pd.Series:
    hit = tidy[(tidy["network"] == network) & (tidy["variant"] == variant) & (tidy["batch"] == batch)]
    assert len(hit) == 1, (network, variant, batch, len(hit))
    return hit.iloc[0]


def us(network: str, variant: str, batch: int) -> float:
    if variant in {v for _, _, v, *_ in SYNTH_VARIANTS}:
        return next(t[batch] for n, _, v, *_, t in SYNTH_VARIANTS if (n, v) == (network, variant))
    return json.loads((ARCHIVED / GPU / network / variant / f"b{batch}" / "time.json").read_text())["us_per_image_median"]


def test_impl_is_read_and_missing_impl_is_empty(both):
    tidy = both["tidy"]
    assert at(tidy, "vgg_e", VGG + "fused-reuse-t2x14-gen-fp16", 64)["impl"] == "gen"
    assert at(tidy, "vgg_e", VGG + "vendor-cl-fp16", 64)["impl"] == "cl"
    assert at(tidy, "alexnet", "lbl-fp16", 128)["impl"] == ""  # archived before impl was a record field
    assert at(tidy, "vgg_e", VGG + "lbl-gen-fp16", 64)["group"] == "first5"
    assert at(tidy, "vgg_e", VGG + "fused-reuse-t2x14-gen-fp16", 64)["onchip_bytes_per_block"] == SMEM_PER_BLOCK


def test_speedups_compare_within_network_precision_and_family(both):
    tidy = both["tidy"]
    fused = at(tidy, "vgg_e", VGG + "fused-reuse-t2x14-gen-fp16", 64)
    assert fused["speedup_vs_lbl"] == pytest.approx(95.0 / 70.0)  # VGG-E's lbl-gen, not AlexNet's lbl
    assert fused["speedup_vs_vendor"] == pytest.approx(84.0 / 70.0)  # VGG-E's own anchor
    assert at(tidy, "vgg_e", VGG + "lbl-gen-fp16", 64)["speedup_vs_lbl"] == pytest.approx(1.0)
    # a generated AlexNet kernel against the generated lbl; the hand-written one against lbl-fp16
    gen = at(tidy, "alexnet", "fused-reuse-t2x7-gen-fp16", 128)
    assert gen["speedup_vs_lbl"] == pytest.approx(10.0 / 8.0)
    assert gen["speedup_vs_vendor"] == pytest.approx(us("alexnet", "vendor-cl-fp16", 128) / 8.0)
    hand = at(tidy, "alexnet", "fused-reuse-t4x7-fp16", 128)
    assert hand["speedup_vs_lbl"] == pytest.approx(us("alexnet", "lbl-fp16", 128) / us("alexnet", "fused-reuse-t4x7-fp16", 128))
    # PyTorch anchors are set against the hand-written lbl: VGG-E has none
    assert math.isnan(at(tidy, "vgg_e", VGG + "vendor-cl-fp16", 64)["speedup_vs_lbl"])
    # DRAM saving: fused against lbl of its own network and family
    lbl_dram = at(tidy, "vgg_e", VGG + "lbl-gen-fp16", 64)["dram_bytes_per_image"]
    assert fused["dram_saving_vs_lbl_pct"] == pytest.approx(100 * (1 - fused["dram_bytes_per_image"] / lbl_dram))


def test_alexnet_rows_do_not_change_when_vgg_is_added(both, alexnet_only):
    cols = ["speedup_vs_lbl", "speedup_vs_vendor", "dram_saving_vs_lbl_pct"]
    a = alexnet_only["tidy"].set_index(["variant", "batch"])[cols]
    b = both["tidy"]
    b = b[(b["network"] == "alexnet") & (b["impl"] != "gen")].set_index(["variant", "batch"])[cols]
    pd.testing.assert_frame_equal(a.sort_index(), b.sort_index())


def test_same_variant_name_in_two_networks_never_mixes():
    """References are looked up by network (and group), never by a variant's name alone."""
    rows = []
    for net, lbl_us, fused_us in (("a", 10.0, 5.0), ("b", 40.0, 10.0)):
        for variant, strategy, t in (("lbl", "lbl", lbl_us), ("fused-reuse-t2", "reuse", fused_us)):
            rows.append({"source": "s", "gpu": "g", "network": net, "group": "g1", "batch": 1, "variant": variant,
                         "strategy": strategy, "precision": "fp32", "impl": "", "us_per_image_median": t,
                         "us_per_image_q1": t, "us_per_image_q3": t})  # fmt: skip
    df = pd.DataFrame(rows)
    for c in ("dram_bytes_per_image", "model_dram_bytes_per_image", "compulsory_dram_bytes_per_image",
              "flops_per_image", "l2_sm_bytes_per_image", "l2_bytes_per_image", "l1_bytes_per_image",
              "model_useful_macs_per_image"):  # fmt: skip
        df[c] = float("nan")
    d = derive(df).set_index(["network", "variant"])["speedup_vs_lbl"]
    assert d[("a", "fused-reuse-t2")] == pytest.approx(2.0) and d[("b", "fused-reuse-t2")] == pytest.approx(4.0)


def test_summary_and_tables_are_per_network(both, tmp_path):
    save_table(both["tidy"], tmp_path / "tidy.csv")
    save_table(both["phases"], tmp_path / "tidy_phases.csv")
    text = summary_table(tmp_path / "tidy.csv")
    head = text.splitlines()[1].split()
    assert head[:3] == ["network", "group", "variant"]
    line = next(ln for ln in text.splitlines() if "fused-reuse-t2x14-gen-fp16" in ln and ln.split()[3] == "64")
    assert line.split()[:2] == ["vgg_e", "first5"] and f"{95 / 70:.3g}" in line.split()
    assert read_table(tmp_path / "tidy.csv").loc[lambda d: d["variant"] == "lbl", "impl"].eq("").all()
    view = tidy_for_report(both["tidy"])
    assert list(view.columns[2:6]) == ["network", "group", "impl", "variant"]
    work = extra_work_table(both["tidy"])
    # FP32 variants only (ncu counts no tensor-core work); the synthetic VGG-E rows are 16-bit
    assert "network" in work and set(work["network"]) == {"alexnet"}
    assert not work.duplicated(["run", "network", "variant"]).any()
    write("tidy_table", tmp_path / "t.html", both)
    assert "vgg_e.first5.lbl-gen-fp16" in (tmp_path / "t.html").read_text()


def svg_text(path: Path) -> str:
    import xml.etree.ElementTree as ET

    return " ".join(t.strip() for t in ET.parse(path).getroot().itertext() if t.strip())


def _draw_all(tables: dict, out: Path) -> dict[str, str]:
    texts = {}
    for item in figure_list.items("measured_figures"):
        path = out / f"{item.name}.svg"
        measured_figures.draw(item.name, path, "alexnet", tables, GROUPS["alexnet"])
        texts[item.name] = svg_text(path)
    for item in figure_list.items("tables"):
        write(item.name, out / f"{item.name}.html", tables | {"provenance": tables["provenance"]})
        assert (out / f"{item.name}.html").stat().st_size > 0
    return texts


def test_figures_cover_both_networks(both, tmp_path):
    texts = _draw_all(both, tmp_path)
    roof, speed = texts["roofline"], texts["speedup"]
    assert "Hierarchical roofline - alexnet, vgg_e" in roof and "batch 128 (alexnet), 64 (vgg_e)" in roof
    assert VGG + "fused-reuse-t2x14-gen-fp16" in roof and "vgg_e (line style)" in roof
    assert "Speedup - alexnet, vgg_e" in speed and VGG + "fused-reuse-t2x14-gen-fp16" in speed
    assert "fused-reuse-t2x7-gen-fp16" in speed and "same network, precision, kernel family" in speed
    traffic = texts["paper_traffic"]
    for part in ("paper (FPGA) at 2 B/value", "measured: lbl gen fp16 (ncu, b64)",
                 "measured: reuse 2x14 gen fp16 (ncu, b64)", "model: reuse 2x14 gen fp16 (b64)",
                 "kernel: reuse 2x14 gen fp16, shared memory per block", "feature maps + weights/batch",
                 "paper 95 % less", f"{VGG}fused-reuse-t2x14-gen-fp16", "this run"):  # fmt: skip
        assert part in traffic, part
    assert f"{SMEM_PER_BLOCK / 1e3:.3g}" in traffic  # per block, in KB
    assert "No GPU bars" not in traffic
    # the rest stay the kernels' network's
    assert "DRAM traffic per image - alexnet" in texts["bandwidth_saving"]


def test_alexnet_only_run_draws_every_figure(alexnet_only, tmp_path):
    texts = _draw_all(alexnet_only, tmp_path)
    assert set(texts) == {i.name for i in figure_list.items("measured_figures")}
    assert "Hierarchical roofline - alexnet, batch 128" in texts["roofline"] and "vgg_e" not in texts["roofline"]
    assert "Speedup - alexnet" in texts["speedup"] and "line style" not in texts["speedup"]
    traffic = texts["paper_traffic"]
    assert "No GPU bars: no vgg_e kernels measured in this run or the archives" in traffic
    assert "paper (FPGA)" in traffic and "model, paper reading" in traffic
