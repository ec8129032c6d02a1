"""The nvcc command line every cubin is built with, and the target a build needs: the build stage's
(pipeline/stages/build.py, kernels/registry.py build_arch) and the run-time fallback for
arch-specific builds (pipeline/core/gpu.py compile_module, nvcc_cubin)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def nvcc_command(source: Path, defines: list[str], arch: str, cubin: Path) -> list[str]:
    return [
        "nvcc", "-cubin", f"-arch={arch}", "-O3", "-std=c++17", "-lineinfo",
        "-Xptxas", "-v", f"-I{REPO / 'kernels'}", *defines, str(source), "-o", str(cubin),
    ]  # fmt: skip


def target_arch(defines: dict[str, int], arch: str, what: str) -> str:
    """The nvcc target of a build with ``defines`` (``what``: its name, for the error) on a GPU of
    ``arch``: sm_90a for clusters (WCLUSTER > 1, fused_tc.cu: multicast bulk copies are an sm_90a
    feature), else ``arch``; a ValueError where clusters meet a GPU other than sm_90."""
    if defines.get("WCLUSTER", 1) <= 1:
        return arch
    if arch not in ("sm_90", "sm_90a"):
        raise ValueError(f"{what} is built for sm_90a (clusters with multicast bulk copies: H100, H200), not for {arch}")
    return "sm_90a"
