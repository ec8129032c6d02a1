"""The nvcc command line every cubin is built with: the build stage's (pipeline/stages/build.py) and
the run-time fallback for arch-specific builds (pipeline/core/gpu.py nvcc_cubin)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def nvcc_command(source: Path, defines: list[str], arch: str, cubin: Path) -> list[str]:
    return [
        "nvcc", "-cubin", f"-arch={arch}", "-O3", "-std=c++17", "-lineinfo",
        "-Xptxas", "-v", f"-I{REPO / 'kernels'}", *defines, str(source), "-o", str(cubin),
    ]  # fmt: skip
