"""Tests of the paper comparison: finite numbers, rows that match the YAML, honest conventions."""

from __future__ import annotations

import math

import pytest
import yaml

from pipeline.core.networks import load_network
from pipeline.model.paper import CANDIDATES, FIGURES_PATH, alexnet_one_tower, load_paper_figures, paper_comparison


@pytest.fixture(scope="module")
def table():
    return paper_comparison()


def test_yaml_has_citation_and_required_figures():
    data = load_paper_figures()
    cit = data["citation"]
    assert cit["year"] == 2016 and "Alwani" in cit["authors"][0] and "MICRO" in cit["venue"]
    values = {f["id"]: f["value"] for f in data["figures"]}
    assert values["vgg_lbl_dram"] == 77 and values["vgg_fused_dram"] == 3.6
    assert values["vgg_dram_reduction"] == 95 and values["vgg_onchip"] == 362
    assert values["alexnet_recompute_extra_macs"] == 678 and values["alexnet_reuse_storage"] == 55.86
    for fig in data["figures"]:
        assert {"quantity", "unit", "where", "checked", "network", "group"} <= set(fig), fig["id"]


def test_rows_match_yaml(table):
    figs = {f["id"]: f for f in load_paper_figures()["figures"]}
    assert set(table["figure"]) == set(figs) <= set(CANDIDATES)
    for fid, fig in figs.items():
        rows = table[table["figure"] == fid]
        assert (rows["paper_value"] == float(fig["value"])).all()
        assert (rows["unit"] == fig["unit"]).all()
        assert rows["best"].sum() >= 1
        assert rows["default"].sum() == 1  # exactly one row uses the model's own conventions


def test_numbers_are_finite_and_ratios_consistent(table):
    for col in ("paper_value", "model_value", "ratio_model_to_paper"):
        assert table[col].map(math.isfinite).all(), col
    assert (table["model_value"] > 0).all()
    ratio = table["model_value"] / table["paper_value"]
    assert ((ratio - table["ratio_model_to_paper"]).abs() < 1e-12).all()
    assert table["note"].str.len().gt(10).all()


def test_default_rows_use_fp32_decimal_units(table):
    default = table[table["default"]].set_index("figure")
    # VGG-E five conv layers fused: (3*224*224 + 256*56*56) * 4 bytes = 3.813376 MB
    assert default.loc["vgg_fused_dram", "model_value"] == pytest.approx(3.813376)
    assert "bytes/value=4" in default.loc["vgg_fused_dram", "convention"]


def test_units_change_only_the_scale(table):
    rows = table[table["figure"] == "vgg_fused_dram"].set_index("convention")
    mb = rows.loc["bytes/value=4; unit=MB=10^6 B", "model_value"]
    mib = rows.loc["bytes/value=4; unit=MiB=2^20 B", "model_value"]
    assert mb * 1e6 == pytest.approx(mib * 2**20)


def test_one_tower_halves_the_front_macs():
    net = load_network("alexnet")
    tower = alexnet_one_tower(net)
    assert tower.layers[tower.index("conv1")].out_channels == 48
    conv2 = tower.layers[tower.index("conv2")]
    assert (conv2.out_channels, conv2.groups) == (128, 1)
    assert tower.shapes()[-1].channels == 128


def test_unknown_figure_is_an_error(tmp_path):
    data = yaml.safe_load(FIGURES_PATH.read_text())
    data["figures"].append({"id": "made_up", "quantity": "q", "value": 1, "unit": "x", "network": "alexnet",
                            "group": ["conv1", "pool2"], "where": "-", "checked": "no"})
    path = tmp_path / "figs.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="made_up"):
        paper_comparison(path)


def test_one_named_reading_for_every_figure(table):
    """Exactly one paper-reading row per figure, and all of them under the same conventions."""
    from pipeline.model.paper import PAPER_READING

    reading = table[table["paper_reading"]]
    assert reading["figure"].value_counts().eq(1).all() and set(reading["figure"]) == set(table["figure"])
    for conv in reading["convention"]:
        for part in filter(None, conv.split("; ")):
            key, value = part.split("=", 1)
            if key == "unit":
                assert value.startswith(("MiB", "KiB")), conv  # binary units in every row, never per row
            else:
                assert PAPER_READING[key] == value, conv


def test_verdicts_say_what_no_reading_reproduces(table):
    verdict = table.drop_duplicates("figure").set_index("figure")["verdict"]
    for fig in ("vgg_lbl_dram", "vgg_fused_dram", "vgg_dram_reduction", "alexnet_recompute_extra_macs"):
        assert verdict[fig].startswith("reproduced by the paper reading"), fig
    assert verdict["vgg_onchip"].startswith("not reproduced by the paper reading")
    for fig in ("alexnet_recompute_factor", "alexnet_reuse_storage"):
        assert verdict[fig].startswith("NOT REPRODUCED"), fig
