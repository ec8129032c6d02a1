"""ncu command lines and parsers (CPU, on genuine recorded reports); real ncu (GPU)."""

import os
import json
import shutil
from pathlib import Path

import pytest

from pipeline.stages import profile as ncu

DATA = Path(__file__).parent / "data" / "ncu"


def _fixture(name: str) -> Path:
    p = DATA / name
    if not p.exists():
        pytest.skip(f"fixture {p} not recorded yet (python tests/data/ncu/record.py on a GPU)")
    return p


def _meta() -> dict:
    return json.loads(_fixture("selftest_meta.json").read_text())


def test_range_command_replays_the_nvtx_range_with_explicit_controls():
    target = ncu.target_command("lbl", 8, cubin="x.cubin", python="py")
    cmd = ncu.range_replay_command(target, "out/range.ncu-rep", ncu="ncu", cache_control="all", clock_control="none")
    assert cmd[0] == "ncu"
    joined = " ".join(cmd)
    assert "--replay-mode range" in joined and "--nvtx --nvtx-include measure/" in joined
    assert "--cache-control all" in joined and "--clock-control none" in joined
    assert cmd[cmd.index("--export") + 1] == "out/range"  # ncu appends .ncu-rep itself
    assert cmd[-len(target):] == target  # options before the program
    metrics = cmd[cmd.index("--metrics") + 1].split(",")
    assert {"dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_bytes.sum"} <= set(metrics)
    assert not any(m.startswith("sm__sass") for m in metrics)  # SASS metrics: not in range replay


def test_kernel_command_asks_for_flops_and_occupancy():
    cmd = ncu.kernel_replay_command(["py", "t.py"], "k.ncu-rep", clock_control="base")
    joined = " ".join(cmd)
    assert "--replay-mode kernel" in joined and "--clock-control base" in joined
    metrics = cmd[cmd.index("--metrics") + 1].split(",")
    for m in ("sm__sass_thread_inst_executed_op_ffma_pred_on.sum", "sm__warps_active.avg.pct_of_peak_sustained_active",
              "sm__maximum_warps_per_active_cycle_pct", "launch__registers_per_thread"):
        assert m in metrics


def test_bad_controls_are_refused():
    with pytest.raises(ValueError):
        ncu.range_replay_command(["t"], "r", cache_control="flush")
    with pytest.raises(ValueError):
        ncu.kernel_replay_command(["t"], "r", clock_control="boost")


def test_target_command_runs_the_script_by_path():
    cmd = ncu.target_command("fused-reuse-t8", 4, 227, 227, None, 3, python="/py")
    assert cmd[:2] == ["/py", str(ncu.TARGET)] and "--cubin" not in cmd
    assert cmd[cmd.index("--batch") + 1] == "4"


def test_export_uses_raw_page_in_base_units():
    cmd = ncu.export_csv_command("r.ncu-rep")
    assert cmd[1:] == ["--import", "r.ncu-rep", "--csv", "--page", "raw", "--print-units", "base"]


def test_kernel_report_gives_exact_flops_and_per_kernel_rows():
    m = _meta()
    rows = ncu.parse_raw_csv(_fixture("selftest_kernels.csv").read_text())
    s = ncu.summarize_kernels(rows, m["batch"])
    names = [k["name"] for k in s["kernels"]]
    assert any("selftest_ffma" in n for n in names) and any("selftest_fmul" in n for n in names)
    assert s["kernel_count"] == 2
    assert s["flops_per_image"] == m["flops_per_image"]  # 1 FFMA (2) + 1 FMUL (1) per pixel
    for k in s["kernels"]:
        assert k["registers"] > 0 and k["block_size"] == 256
        assert 0 < k["achieved_occupancy_pct"] <= 100 and 0 < k["theoretical_occupancy_pct"] <= 100
        assert k["duration_ns"] > 0
        assert k["l2_bytes"] >= 4 * m["pixels"]  # each kernel reads its whole input through L2


def test_range_report_gives_whole_pass_bytes():
    m = _meta()
    rows = ncu.parse_raw_csv(_fixture("selftest_range.csv").read_text())
    s = ncu.summarize_range(rows, m["batch"])
    assert s["ranges"] == 1
    # caches flushed before the range: the input (4 B/pixel) must come from DRAM at least once
    assert s["dram_read_bytes_per_image"] >= 4 * m["height"] * m["width"]
    # L2 sees x, y read and y, z written: at least 4 x 4 B per pixel
    assert s["l2_bytes_per_image"] >= 16 * m["height"] * m["width"]
    assert s["range_duration_us"] > 0
    if "lts__t_sectors_srcunit_tex.sum" in rows[0]:  # SM-side L2 traffic: x, y read; y, z written
        assert 0.9 * 16 * m["height"] * m["width"] <= s["l2_sm_bytes_per_image"] <= 2.0 * 16 * m["height"] * m["width"]
    # recorded before the L2 write sectors were asked for: the field says "not measured", not 0
    assert "lts__t_sectors_srcunit_tex_op_write.sum" not in rows[0]
    assert s["l2_sm_write_bytes_per_image"] is None
    with_writes = [{**r, "lts__t_sectors_srcunit_tex_op_write.sum": "1000"} for r in rows]
    assert ncu.summarize_range(with_writes, m["batch"])["l2_sm_write_bytes_per_image"] == 32_000 / m["batch"]


def test_recorded_profile_json_matches_the_parsers():
    m = _meta()
    prof = json.loads(_fixture("selftest_profile.json").read_text())
    assert prof["available"] is True and prof["flops_per_image"] == m["flops_per_image"]
    assert prof["cache_control"] == "all" and prof["clock_control"] == "none"


def test_units_row_is_not_taken_for_data():
    text = '"ID","Kernel Name","dram__bytes_read.sum"\n"","","byte"\n"0","k","1,024"\n'
    rows = ncu.parse_raw_csv("==PROF== Disconnected\n" + text)
    assert len(rows) == 1 and ncu.metric(rows[0], "dram__bytes_read.sum") == 1024.0


def test_scaled_units_are_refused():
    text = '"ID","Kernel Name","dram__bytes_read.sum","lts__t_bytes.sum","dram__bytes_write.sum"\n"","","Kbyte","byte","byte"\n"0","k","1","2","3"\n'
    with pytest.raises(ValueError, match="print-units base"):
        ncu.summarize_range(ncu.parse_raw_csv(text), 1)


def test_diagnose_counter_permission():
    out = "==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance Counters"
    reason = ncu.diagnose(out, 1)
    assert "ERR_NVGPUCTRPERM" in reason and "NVreg_RestrictProfilingToAdminUsers=0" in reason
    assert "\n" not in reason


def test_diagnose_nothing_profiled_and_clean_run():
    assert "NVTX range" in ncu.diagnose("==WARNING== No kernels were profiled.", 0)
    assert ncu.diagnose("==PROF== Report: x.ncu-rep", 0) is None
    assert ncu.diagnose("==ERROR== boom", 2).startswith("ncu exited with code 2")


def test_no_ncu_gives_unavailable_profile(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    res = ncu.profile("lbl", 1, tmp_path / "r.ncu-rep", tmp_path / "k.ncu-rep")
    assert res["available"] is False and "not on PATH" in res["reason"]
    json.dumps(res)


def test_parse_version():
    assert ncu.parse_version("NVIDIA (R) Nsight Compute Command Line Profiler\nVersion 2025.3.1.0 (build 1)") == "2025.3.1.0"


@pytest.mark.gpu
def test_real_ncu_on_the_selftest_forward(tmp_path):
    if shutil.which("ncu") is None:
        pytest.skip("needs ncu on PATH")
    pytest.importorskip("cupy", reason="needs CuPy")
    b, h, w = 4, 1024, 4096  # 64 MiB per map, larger than any current L2
    res = ncu.profile("selftest", b, tmp_path / "range.ncu-rep", tmp_path / "kernels.ncu-rep", height=h, width=w,
                      factory="pipeline.stages.profile_target:make_selftest_forward", log_file=tmp_path / "ncu.log")
    if not res["available"] and "ERR_NVGPUCTRPERM" in res["reason"]:
        pytest.skip(res["reason"])
    assert res["available"] is True, res
    assert "range_error" not in res and "kernels_error" not in res, res
    assert res["flops_per_image"] == 3 * h * w
    px = h * w
    assert res["dram_read_bytes_per_image"] >= 0.9 * 4 * px  # x at least once from DRAM
    assert res["dram_read_bytes_per_image"] <= 3.0 * 4 * px  # x and y, with slack
    assert 0.9 * 16 * px <= res["l2_sm_bytes_per_image"] <= 2.0 * 16 * px  # x, y read; y, z written
    # y and z written by the SMs (4 B each per pixel), counted even where still in L2 at the end
    assert 0.9 * 8 * px <= res["l2_sm_write_bytes_per_image"] <= 1.5 * 8 * px
    assert (tmp_path / "range.ncu-rep").exists() and (tmp_path / "kernels.ncu-rep").exists()


def test_profile_reports_refused_counters_in_one_line(tmp_path, monkeypatch):
    """An ncu that refuses the counters (as without profiling permission): profile() does not raise,
    it returns available: false with the cause and the fix, so timing results still reach the report."""
    fake = tmp_path / "bin" / "ncu"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version) echo "NVIDIA (R) Nsight Compute Command Line Profiler"; echo "Version 2025.3.1.0";'
        " exit 0;; esac\n"
        'echo "==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance'
        ' Counters on the target device 0."\nexit 1\n'
    )  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    res = ncu.profile("lbl", 2, tmp_path / "range.ncu-rep", tmp_path / "kernels.ncu-rep", cubin=None,
                      height=227, width=227)  # fmt: skip
    assert res["available"] is False
    assert "ERR_NVGPUCTRPERM" in res["reason"] or "permission" in res["reason"].lower()
    assert "\n" not in res["reason"]
