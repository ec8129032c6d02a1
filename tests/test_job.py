"""pipeline/stages/job.py: what every stage's tail shares (record stamp, verify gate, paths)."""

import json

import pytest

from kernels.registry import VARIANTS, Variant
from pipeline.stages import job


def test_check_verified(tmp_path):
    ok, bad = tmp_path / "ok.json", tmp_path / "bad.json"
    ok.write_text(json.dumps({"passed": True}))
    bad.write_text(json.dumps({"passed": False, "rel_l2_error": 0.3}))
    assert job.check_verified(ok)["passed"] is True
    with pytest.raises(RuntimeError, match="refusing to measure"):
        job.check_verified(bad)


def test_single_path_handles_vendor_without_cubin():
    assert job.single_path([]) is None
    assert job.single_path(["a.cubin"]) == "a.cubin"
    assert job.single_path("b.cubin") == "b.cubin"


def test_network_input_size_from_yaml():
    assert job.network_input_hw("alexnet") == (227, 227)
    assert job.network_input_hw("vgg_e") == (224, 224)


def test_stamp_puts_the_record_first_and_wins_over_the_body():
    v = VARIANTS["fused-reuse-t2x7"]
    res = job.stamp({"us_per_image_median": 23.7, "variant": "stale", "strategy": "x"}, v, "alexnet")
    assert list(res)[:7] == ["schema_version", "variant", "network", "group", "strategy", "tile", "precision"]
    assert res["schema_version"] == job.SCHEMA_VERSION == 2
    assert (res["variant"], res["strategy"], res["tile"], res["precision"]) == ("fused-reuse-t2x7", "reuse", "2x7", "fp32")
    assert res["us_per_image_median"] == 23.7
    assert job.stamp({"a": 1}) == {"schema_version": 2, "a": 1}  # per-GPU files carry no variant


class _Job:
    """The parts of Snakemake's script object that run_stage reads."""

    def __init__(self, tmp_path, wildcards: dict, inputs: dict):
        class NS(dict):
            __getattr__ = dict.__getitem__

        self.wildcards = NS(wildcards)
        self.input = NS(inputs)
        self.output = NS(json=str(tmp_path / "out.json"))
        self.log = [str(tmp_path / "job.log")]


def test_run_stage_writes_the_stamped_result_and_refuses_failed_verification(tmp_path):
    seen = []
    sm = _Job(tmp_path, {"network": "alexnet", "variant": "lbl", "batch": "16"}, {})
    res = job.run_stage(sm, lambda sm, v: seen.append(v) or {"x": 1})
    assert seen == [Variant.parse("lbl")]
    assert json.loads((tmp_path / "out.json").read_text()) == res and res["strategy"] == "lbl" and res["x"] == 1
    bad = tmp_path / "verify.json"
    bad.write_text(json.dumps({"passed": False}))
    sm = _Job(tmp_path, {"network": "alexnet", "variant": "lbl"}, {"verify": str(bad)})
    with pytest.raises(RuntimeError, match="refusing to measure"):
        job.run_stage(sm, lambda sm, v: pytest.fail("the body must not run"))
