"""Where a kernel's warps wait: Nsight Compute's warp-state sampling, per SASS instruction, summed by
instruction class (perf-notes step 30, where it showed that conv1 waits on its patch load and its
stage barriers rather than on its products).

    python -m pipeline.stalls --variant fused-reuse-t4x7-fp16 [--batch 128] [--out DIR]

On a GPU machine with ncu and counter access (root, or NVreg_RestrictProfilingToAdminUsers=0). One
forward pass of the registry variant (``pipeline/stages/profile_target.py``, inside the NVTX range
the profile stage uses) is replayed per kernel with the SourceCounters and WarpStateStats sections;
ncu's own source-page export (``--page source --csv --print-source sass``) gives one row per SASS
instruction with its samples and their stall reasons. The table printed (and ``stalls.csv`` under
``--out``, with the report and the raw export) has one row per kernel and instruction class: the
instructions, their share of the kernel's samples and the three largest stall reasons among them
('unnamed': samples the export gives no reason, most of those at wgmma instructions; perf-notes step
32).

A sample is a warp's state at an instruction: mostly waiting to issue it (the reasons), sometimes
issuing it (`selected`). So a class's share is where the warps wait, which is not the same as where
the time would go if that wait were removed: step 30 found 40 % of conv1's samples at its patch
load, and a patch load with half the load instructions no faster. Set FUSED_LAYER_CUBIN_CACHE to reuse cubins prebuilt by ``pipeline.bench --prebuild``.
"""

import argparse
import csv
import io
import re
import sys
from pathlib import Path

import pandas as pd

from pipeline.stages.profile import NVTX_INCLUDE, NcuUnavailable, _report_base, _run, diagnose, find_ncu, target_command

SAMPLES = "Warp Stall Sampling (All Samples)"
# SASS opcode prefix -> class, first match wins (LDGSTS before LDG, STSM before STS, ...). A
# warpgroup's wait for its products (wgmma.wait_group: WARPGROUP.DEPBAR) is its own class, as
# cp.async's wait is: ncu gives its waits the reason 'barrier'.
OPCODE_CLASSES = (
    ("WARPGROUP.DEPBAR", "wgmma wait"), ("HGMMA", "wgmma"), ("WARPGROUP", "wgmma"), ("HMMA", "mma.sync"),
    ("LDSM", "ldmatrix"), ("STSM", "stmatrix"), ("LDGSTS", "cp.async"), ("LDGDEPBAR", "cp.async"), ("DEPBAR", "cp.async wait"),
    ("UBLKCP", "bulk copy"), ("SYNCS", "mbarrier"), ("BAR", "barrier"), ("LDG", "global load"),
    ("STG", "global store"), ("LDS", "shared load"), ("STS", "shared store"), ("LDC", "constant load"),
    ("CCTL", "cache control"), ("MUFU", "sfu"), ("SHFL", "shuffle"),
    ("BRA", "branch"), ("BSSY", "branch"), ("BSYNC", "branch"), ("EXIT", "branch"),
)  # fmt: skip


def source_profile_command(target: list[str], report: str | Path, ncu: str = "ncu") -> list[str]:
    """ncu with warp-state sampling per instruction, every kernel in the NVTX range replayed."""
    return [ncu, "--section", "SourceCounters", "--section", "WarpStateStats", "--nvtx", "--nvtx-include",
            NVTX_INCLUDE, "--replay-mode", "kernel", "--export", _report_base(report), "--force-overwrite",
            *target]  # fmt: skip


def source_csv_command(report: str | Path, ncu: str = "ncu") -> list[str]:
    """ncu's source page of a report as CSV, one row per SASS instruction."""
    return [ncu, "--import", str(report), "--csv", "--page", "source", "--print-source", "sass"]


def opcode_class(sass: str) -> str:
    """The class of one SASS line (its predicate and operands ignored), 'other' if none matches."""
    op = re.sub(r"^@!?U?P[T\d]+\s+", "", sass.strip())
    return next((cls for prefix, cls in OPCODE_CLASSES if op.startswith(prefix)), "other")


def parse_source_csv(text: str) -> pd.DataFrame:
    """ncu's source-page CSV -> one row per instruction: kernel, address, sass, class, samples and a
    ``stall_<reason>`` column per reason (all samples, not only the not-issued ones). The export
    holds one block per kernel, each a ``"Kernel Name",<name>`` line, then a header, then rows."""
    rows, kernel, header = [], None, None
    for rec in csv.reader(io.StringIO(text)):
        if not rec:
            continue
        if rec[0] == "Kernel Name":
            kernel, header = rec[1], None
        elif header is None:
            if "Source" not in rec or SAMPLES not in rec:
                raise ValueError(f"not an ncu source page with warp sampling: header {rec[:6]}")
            header = rec
        else:
            rows.append({"kernel": kernel, **dict(zip(header, rec))})
    if not rows:
        raise ValueError("no instruction rows in the source page (was SourceCounters collected?)")
    df = pd.DataFrame(rows)
    stalls = [c for c in df.columns if c.startswith("stall_") and not c.endswith("(Not Issued)")]
    out = pd.DataFrame({"kernel": df["kernel"], "address": df["Address"], "sass": df["Source"].str.strip()})
    out["class"] = out["sass"].map(opcode_class)
    out["samples"] = pd.to_numeric(df[SAMPLES], errors="coerce").fillna(0).astype(int)
    for c in stalls:
        out[c] = pd.to_numeric(df[c], errors="coerce").fillna(0).astype(int)
    return out


def stall_summary(df: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """One row per kernel and instruction class, by share of the kernel's samples: instructions,
    samples, samples_share, and the ``top`` stall reasons as 'reason share' of the class's samples;
    first per kernel a row of class 'all'. Samples the export names no reason for (ncu 2025.3 on
    Hopper: most of those at wgmma instructions) count as 'unnamed'. A barrier's waits are sampled at
    the instruction after it (ptxas puts a never-executed ``@!PT LDS RZ, [RZ]`` there), so they show
    as a 'barrier' reason of another class: read the reasons, not only the classes."""
    stalls = [c for c in df.columns if c.startswith("stall_")]
    kernel_samples = df.groupby("kernel")["samples"].sum()
    g = pd.concat([df.assign(**{"class": "all"}), df]).groupby(["kernel", "class"])
    out = g.agg(instructions=("sass", "size"), samples=("samples", "sum")).reset_index()
    out["samples_share"] = out["samples"] / out["kernel"].map(kernel_samples)
    by_reason = g[stalls].sum()
    by_reason["stall_unnamed"] = (out.set_index(["kernel", "class"])["samples"] - by_reason.sum(axis=1)).clip(lower=0)

    def reasons(key) -> str:
        r = by_reason.loc[key]
        total = r.sum()
        return ", ".join(f"{k[len('stall_'):]} {v / total:.0%}" for k, v in r.nlargest(top).items() if v > 0) if total else ""

    out["top_stalls"] = [reasons((k, c)) for k, c in zip(out["kernel"], out["class"])]
    return out.sort_values(["kernel", "samples_share"], ascending=[True, False]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.stalls", description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", required=True, help="a registry variant, e.g. fused-reuse-t4x7-fp16")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--height", type=int, default=227)
    ap.add_argument("--width", type=int, default=227)
    ap.add_argument("--out", type=Path, default=Path("stalls"), help="folder for the report, the export and stalls.csv")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    a = ap.parse_args(argv)
    from kernels.registry import VARIANTS

    if a.variant not in VARIANTS:
        ap.error(f"unknown variant {a.variant!r}")
    try:
        ncu = find_ncu()
        a.out.mkdir(parents=True, exist_ok=True)
        report = a.out / f"{a.variant}-b{a.batch}-source.ncu-rep"
        target = target_command(a.variant, a.batch, a.height, a.width, warmup=2)
        code, out = _run(source_profile_command(target, report, ncu), a.out / "ncu.log", a.timeout_s)
        reason = diagnose(out, code)
        if reason:
            raise NcuUnavailable(reason)
        code, text = _run(source_csv_command(report, ncu), None, a.timeout_s)
        if code != 0:
            raise NcuUnavailable(f"ncu --import {report} --page source failed (code {code}): {text.strip()[-300:]}")
    except NcuUnavailable as e:
        print(f"pipeline.stalls: {e}", file=sys.stderr)
        return 2
    (a.out / f"{a.variant}-b{a.batch}-source.csv").write_text(text)
    summary = stall_summary(parse_source_csv(text))
    summary.to_csv(a.out / "stalls.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(summary.assign(samples_share=summary["samples_share"].map("{:.1%}".format)).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
