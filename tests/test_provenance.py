"""Provenance works with or without a GPU; GPU fields are real where there is one."""

import json
import re

import pytest

from pipeline.stages import provenance


def test_cuda_version_text():
    assert provenance.cuda_version_text(13000) == "13.0"
    assert provenance.cuda_version_text(12040) == "12.4"


def test_git_commit_outside_a_repo_is_unknown(tmp_path):
    assert provenance.git_commit(tmp_path)["git_commit"] == "unknown"


def test_collect_always_returns_every_field():
    r = provenance.collect(["snakemake", "--cores", "1"])
    json.dumps(r)
    assert r["command"] == "snakemake --cores 1"
    for key in ("gpu_name", "gpu_uuid", "driver_version", "cuda_runtime_version", "cuda_driver_version",
                "cupy_version", "ncu_version", "sm_clock_mhz", "git_commit", "timestamp_utc"):
        assert key in r and r[key] not in (None, ""), key
    assert r["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", r["git_commit"])
    assert re.match(r"\d{4}-\d\d-\d\dT", r["timestamp_utc"])


def test_no_gpu_fields_say_unavailable(monkeypatch):
    from pipeline.core import nvml

    def boom(*a, **k):
        raise nvml.NvmlUnavailable("no driver")

    monkeypatch.setattr(nvml, "device_handle", boom)
    r = provenance.gpu_facts()
    assert r["gpu_name"] == "unavailable" and r["nvml_error"] == "no driver"


@pytest.mark.gpu
def test_gpu_fields_are_real_on_a_gpu(cupy_device):
    r = provenance.collect()
    assert r["gpu_name"] != "unavailable" and r["gpu_uuid"].startswith("GPU-")
    assert re.fullmatch(r"\d+\.\d+", r["cuda_runtime_version"])
    assert r["cuda_device_name"] == r["gpu_name"]
