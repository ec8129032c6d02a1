"""Roofline ceilings: datasheet arithmetic (CPU), the microbenchmarks against it (GPU)."""

import re
from pathlib import Path

import pytest

from pipeline.stages import ceilings


def test_h100_sxm_datasheet_numbers():
    d = ceilings.datasheet_ceilings(132, 1_980_000, (9, 0), 5120, 2_619_000)
    assert d["datasheet_fp32_flop_per_s"] == pytest.approx(66.9e12, rel=0.01)  # NVIDIA: 67 TFLOP/s
    assert d["datasheet_dram_bytes_per_s"] == pytest.approx(3.35e12, rel=0.01)  # NVIDIA: 3.35 TB/s


def test_a100_has_64_fp32_lanes_per_sm():
    d = ceilings.datasheet_ceilings(108, 1_410_000, (8, 0), 5120, 1_215_000)
    assert d["datasheet_fp32_flop_per_s"] == pytest.approx(19.5e12, rel=0.01)  # NVIDIA: 19.5 TFLOP/s


def test_unknown_inputs_give_none_not_a_guess():
    d = ceilings.datasheet_ceilings(132, None, (99, 9), None, 2_619_000)
    assert d["datasheet_fp32_flop_per_s"] is None and d["datasheet_dram_bytes_per_s"] is None


def test_rate_summary_uses_median_time():
    r = ceilings.rate_summary("x_per_s", 1e9, [1.0, 2.0, 4.0])  # ms
    assert r["x_per_s"] == pytest.approx(1e9 / 2e-3)
    assert r["x_per_s_q1"] < r["x_per_s"] < r["x_per_s_q3"]


def test_kernel_source_has_the_three_entries():
    src = Path(ceilings.CEILINGS_CU).read_text()
    for entry in ("ceil_copy", "ceil_l2_read", "ceil_fma"):
        assert re.search(rf'extern "C" __global__ void {entry}\(', src)


@pytest.mark.gpu
def test_measured_ceilings_are_near_the_datasheet(cupy_device):
    r = ceilings.measure_ceilings(repeats=5)
    assert 0.4 < r["dram_bytes_per_s_fraction_of_datasheet"] < 1.05, r
    assert 0.6 < r["fp32_flop_per_s_fraction_of_datasheet"] < 1.10, r
    assert r["l2_bytes_per_s"] > r["dram_bytes_per_s"]
