"""Roofline ceilings: datasheet arithmetic (CPU), the microbenchmarks against it (GPU)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.stages import ceilings
from pipeline.stages.build import find_cuobjdump, sass_tensor_core_counts


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


def test_kernel_source_has_every_entry():
    src = Path(ceilings.CEILINGS_CU).read_text()
    for entry in ("ceil_copy", "ceil_l2_read", "ceil_fma", *ceilings.MMA_ENTRIES.values()):
        assert re.search(rf'extern "C" __global__ void (__launch_bounds__\(\d+, \d+\) )?{entry}\(', src), entry


def test_tensor_core_flop_count_matches_the_kernel_source():
    """The FLOPs per launch are counted in Python from constants the kernel must share."""
    src = Path(ceilings.CEILINGS_CU).read_text()
    assert int(re.search(r"#define MMA_CHAINS (\d+)", src)[1]) == ceilings.MMA_CHAINS
    for entry in ceilings.MMA_ENTRIES.values():
        threads, blocks = re.search(rf"__launch_bounds__\((\d+), (\d+)\) {entry}\(", src).groups()
        assert (int(threads), int(blocks)) == (ceilings.MMA_THREADS, ceilings.MMA_BLOCKS_PER_SM)
    assert ceilings.MMA_FLOPS == 4096  # m16n8k16: 16 x 8 outputs x 16 MACs x 2
    assert ceilings.mma_flops(blocks=528, threads=256, iters=100) == 528 * 8 * 100 * ceilings.MMA_CHAINS * 4096


def test_every_precision_has_a_compute_ceiling_key():
    from kernels.registry import PRECISIONS

    assert set(ceilings.COMPUTE_CEILING_KEYS) == set(PRECISIONS)
    assert ceilings.COMPUTE_CEILING_KEYS["fp32"] == "fp32_flop_per_s"  # the key archived runs hold
    assert set(ceilings.MMA_ENTRIES) == set(PRECISIONS) - {"fp32"}


def test_tensor_cores_before_sm80_are_none_with_the_reason():
    """ceilings.cu compiles the mma kernels to empty bodies there: they must not be timed."""
    r = ceilings.measure_tensor_cores(None, 40, (7, 5), None, iters=10, warmup=1, repeats=1)
    assert r["tc_fp16_flop_per_s"] is None and r["tc_bf16_flop_per_s"] is None
    assert "7.5" in r["tc_unavailable_reason"]


@pytest.mark.skipif(shutil.which("nvcc") is None or find_cuobjdump() is None,
                    reason="needs nvcc and cuobjdump (pip install -e '.[build]')")
def test_mma_kernels_are_hmma_chains_on_sm90(tmp_path):
    """nvcc keeps every mma (the chains stay alive): 8 chains x 4-way unrolled loop + remainder."""
    cubin = tmp_path / "ceilings.cubin"
    subprocess.run(["nvcc", "-cubin", "-arch=sm_90", "-std=c++17", str(ceilings.CEILINGS_CU), "-o", str(cubin)],
                   check=True, capture_output=True)  # fmt: skip
    counts = sass_tensor_core_counts(cubin)
    for entry in ceilings.MMA_ENTRIES.values():
        assert counts[entry] >= ceilings.MMA_CHAINS, counts
    assert counts["ceil_fma"] == 0


@pytest.mark.gpu
def test_measured_ceilings_are_near_the_datasheet(cupy_device):
    if "PYTEST_XDIST_WORKER" in os.environ:  # pytest-xdist's -n: other test processes share the GPU
        pytest.skip("measures the GPU's peak rates: run without pytest-xdist's -n, which shares the GPU")
    r = ceilings.measure_ceilings(repeats=5)
    assert 0.4 < r["dram_bytes_per_s_fraction_of_datasheet"] < 1.05, r
    assert 0.6 < r["fp32_flop_per_s_fraction_of_datasheet"] < 1.10, r
    assert r["l2_bytes_per_s"] > r["dram_bytes_per_s"]


@pytest.mark.gpu
def test_tensor_core_ceilings_sit_above_fp32(cupy_device):
    """mma.sync fp16/bf16 with FP32 accumulation beats FFMA on every sm_80+ card: by 2x on GeForce
    cards (half-rate FP32 accumulation), by far more on datacenter ones (A100 16x by the datasheet;
    on Hopper mma.sync reaches part of the wgmma peak). bf16 runs at fp16's rate."""
    cc = cupy_device.cuda.Device().compute_capability
    if int(cc) < 80:
        pytest.skip(f"compute capability {cc}: no mma.sync m16n8k16 for fp16/bf16")
    r = ceilings.measure_ceilings(repeats=5)
    fp16, bf16 = r["tc_fp16_flop_per_s"], r["tc_bf16_flop_per_s"]
    assert fp16 > 1.5 * r["fp32_flop_per_s"], r
    assert 0.8 < bf16 / fp16 < 1.25, r
    assert r["tc_fp16_flop_per_s_q1"] <= fp16 <= r["tc_fp16_flop_per_s_q3"]
