"""pipeline.stalls: ncu's source page (warp-state samples per SASS instruction) parsed and summed by
instruction class. The parser runs on genuine exports of fused-reuse-t4x7-fp16 (the registry build
at batch 128 on the H200, ncu 2025.3.1 with SourceCounters and WarpStateStats, `--page source --csv
--print-source sass`): 305 instructions (rows 795-1099 of 6616, the start of conv1's first chunk
loop; perf-notes step 30) and 190 (rows 5140-5329 of 8216, two stages of a conv2 wgmma pass;
`python -m pipeline.stalls`, step 32)."""

import csv
import shutil
from pathlib import Path

import pytest

from pipeline import stalls

DATA = Path(__file__).parent / "data" / "ncu"
SOURCE = DATA / "source_fused_tc_reuse_t4x7_conv1.csv"
SOURCE_WGMMA = DATA / "source_fused_tc_reuse_t4x7_conv2.csv"


def test_source_page_parses_one_row_per_instruction_with_its_samples():
    text = SOURCE.read_text()
    df = stalls.parse_source_csv(text)
    raw = list(csv.reader(text.splitlines()))
    header, body = raw[1], raw[2:]
    col = header.index(stalls.SAMPLES)
    assert len(df) == len(body) == 305
    assert set(df["kernel"]) == {"fused_tc_reuse_t4x7"}
    assert df["samples"].sum() == sum(int(r[col]) for r in body) > 0
    stall_cols = [c for c in df.columns if c.startswith("stall_")]
    assert "stall_long_sb" in stall_cols and not any("Not Issued" in c for c in stall_cols)
    # every sample has a reason: the reasons of an instruction add up to its samples
    assert (df[stall_cols].sum(axis=1) == df["samples"]).all()


@pytest.mark.parametrize(
    ("sass", "cls"),
    [("HMMA.16816.F32 R148, R40, R80, RZ", "mma.sync"), ("LDSM.16.M88.4 R80, [R18+0x1540]", "ldmatrix"),
     ("@P2   LDGSTS.E.BYPASS.128 desc[UR20][R248.64], [R214]", "cp.async"), ("LDGDEPBAR", "cp.async"),
     ("DEPBAR.LE SB0, 0x1", "cp.async wait"), ("BAR.SYNC.DEFER_BLOCKING 0x0", "barrier"),
     ("@!P2  LDG.E.U16.CONSTANT R35, desc[UR20][R26.64]", "global load"),
     ("STS.U16 [R21+0x2c300], R33", "shared store"), ("@!PT  LDS RZ, [RZ]", "shared load"),
     ("HGMMA.64x48x16.F32 R24, gdesc[UR16], R24 ;", "wgmma"), ("STSM.16.MT88.4 [R1], R4", "stmatrix"),
     ("WARPGROUP.ARRIVE", "wgmma"), ("WARPGROUP.DEPBAR.LE gsb0, 0x0", "wgmma wait"),
     ("@!P3  LEA R20, P4, R21, R28, 0x1", "other")],
)  # fmt: skip
def test_opcode_classes(sass, cls):
    assert stalls.opcode_class(sass) == cls


def test_summary_shares_and_the_patch_loads_wait():
    """Shares per kernel sum to 1 over the classes (the 'all' row is 1 by itself). In this slice the
    patch load's 2-byte shared stores wait on their global loads (long scoreboard) and the products
    on fixed-latency dependencies and the tensor pipe, as step 30 read them."""
    s = stalls.stall_summary(stalls.parse_source_csv(SOURCE.read_text()))
    parts = s[s["class"] != "all"]
    assert parts["samples_share"].sum() == pytest.approx(1.0)
    assert s.loc[s["class"] == "all", "samples_share"].item() == pytest.approx(1.0)
    assert s.loc[s["class"] == "all", "instructions"].item() == 305
    row = lambda c: s[s["class"] == c].iloc[0]  # noqa: E731
    assert row("shared store")["top_stalls"].startswith("long_sb")
    assert row("mma.sync")["top_stalls"].split(",")[0].split()[0] in ("wait", "math")


def test_samples_without_a_named_reason_are_counted_as_unnamed():
    """In the conv2 slice most of the samples at the wgmma instructions have no reason among the
    export's stall columns; the summary counts them as 'unnamed' instead of sharing out only the
    named ones (which would read 'wait' for those products). The warpgroup's waits for its products
    (WARPGROUP.DEPBAR) are their own class, almost all 'barrier'."""
    df = stalls.parse_source_csv(SOURCE_WGMMA.read_text())
    stall_cols = [c for c in df.columns if c.startswith("stall_")]
    wg = df[df["class"] == "wgmma"]
    assert len(df) == 190 and wg["samples"].sum() > 2 * wg[stall_cols].sum(axis=1).sum()
    s = stalls.stall_summary(df)
    row = lambda c: s[s["class"] == c].iloc[0]  # noqa: E731
    assert row("wgmma")["top_stalls"].startswith("unnamed")
    assert row("wgmma wait")["top_stalls"].startswith("barrier") and row("wgmma wait")["instructions"] == 2
    assert s[s["class"] != "all"]["samples_share"].sum() == pytest.approx(1.0)
    # where every sample has its reason (the conv1 slice), nothing is unnamed
    assert "unnamed" not in " ".join(stalls.stall_summary(stalls.parse_source_csv(SOURCE.read_text()))["top_stalls"])


def test_each_kernel_block_is_its_own_kernel():
    """An export of several kernels repeats the kernel line and the header per kernel; each kernel's
    shares are of its own samples (the genuine block, twice, under a second name with half the rows)."""
    lines = SOURCE.read_text().splitlines()
    second = [lines[0].replace("fused_tc_reuse_t4x7", "other_kernel"), lines[1], *lines[2:150]]
    df = stalls.parse_source_csv("\n".join(lines + second) + "\n")
    assert df.groupby("kernel").size().to_dict() == {"fused_tc_reuse_t4x7": 305, "other_kernel": 148}
    s = stalls.stall_summary(df)
    for _, k in s[s["class"] != "all"].groupby("kernel"):
        assert k["samples_share"].sum() == pytest.approx(1.0)


def test_a_page_without_warp_sampling_is_refused():
    """The raw-metrics export (the profile stage's, genuine) is not a source page: a clear error."""
    with pytest.raises(ValueError, match="not an ncu source page"):
        stalls.parse_source_csv((DATA / "selftest_kernels.csv").read_text())


def test_commands_ask_for_the_sampling_sections_over_the_measured_range(tmp_path):
    cmd = stalls.source_profile_command(["python", "t.py"], tmp_path / "r.ncu-rep", ncu="ncu")
    assert cmd[:5] == ["ncu", "--section", "SourceCounters", "--section", "WarpStateStats"]
    assert cmd[cmd.index("--export") + 1] == str(tmp_path / "r") and cmd[-2:] == ["python", "t.py"]
    assert "--replay-mode" in cmd and cmd[cmd.index("--replay-mode") + 1] == "kernel"
    exp = stalls.source_csv_command("r.ncu-rep")
    assert exp[exp.index("--page") + 1] == "source" and exp[exp.index("--print-source") + 1] == "sass"


def test_unknown_variant_is_refused():
    with pytest.raises(SystemExit):
        stalls.main(["--variant", "no-such-variant"])


@pytest.mark.gpu
def test_real_ncu_samples_the_lbl_kernels(cupy_device, tmp_path):
    """On the GPU machine: the real ncu over lbl-fp16 at batch 8; one summary row per kernel of the
    pass and class, every kernel with samples."""
    if shutil.which("ncu") is None:
        pytest.skip("needs ncu on PATH")
    rc = stalls.main(["--variant", "lbl-fp16", "--batch", "8", "--out", str(tmp_path)])
    log = (tmp_path / "ncu.log").read_text() if (tmp_path / "ncu.log").exists() else ""
    if rc == 2 and "ERR_NVGPUCTRPERM" in log:
        pytest.skip("GPU counters restricted to administrators")
    assert rc == 0, log[-2000:]
    import pandas as pd

    s = pd.read_csv(tmp_path / "stalls.csv")
    kernels = set(s["kernel"])
    assert any("conv1" in k for k in kernels) and any("lrn" in k for k in kernels)
    assert (s[s["class"] == "all"]["samples"] > 0).all()
