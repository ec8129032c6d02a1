"""Build stage: compile one kernel variant with nvcc to a cubin and record its resource usage.

Runs on a machine without a GPU: ``nvcc -cubin -arch=<sm>`` needs no device. ptxas's ``-v`` report
gives, per kernel, registers, static shared memory, stack frame and spill bytes; from registers we
derive the occupancy limit they impose (the full theoretical occupancy also depends on the launch
shape, which Nsight Compute reports in the profile stage).
"""

import re
import shutil
import subprocess
from pathlib import Path

from pipeline.core.arch import SM_LIMITS

REPO = Path(__file__).resolve().parents[2]

_ENTRY = re.compile(r"Compiling entry function '(?P<name>[^']+)' for '(?P<arch>[^']+)'")
_FRAME = re.compile(
    r"(?P<stack>\d+) bytes stack frame, (?P<spst>\d+) bytes spill stores, (?P<spld>\d+) bytes spill loads"
)
_USED = re.compile(r"Used (?P<regs>\d+) registers")
_SMEM = re.compile(r"(?P<smem>\d+) bytes smem")


_FUNCTION = re.compile(r"^\s*Function : (?P<name>\S+)")
# Tensor-core instructions in SASS: HMMA (mma.sync, fp16/bf16/tf32), HGMMA/QGMMA (wgmma), IMMA.
_TENSOR_CORE_OP = re.compile(r"\b(?:HMMA|HGMMA|QGMMA|IMMA)\.")


class BuildError(RuntimeError):
    """nvcc is missing or failed; the message carries nvcc's own words."""


def parse_ptxas(log: str) -> list[dict]:
    """Parse ``nvcc -Xptxas -v`` output into one dict per kernel entry."""
    kernels: list[dict] = []
    current: dict | None = None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            current = {
                "name": m["name"],
                "arch": m["arch"],
                "registers": 0,
                "shared_bytes": 0,
                "stack_bytes": 0,
                "spill_store_bytes": 0,
                "spill_load_bytes": 0,
            }
            kernels.append(current)
        elif current is not None and (m := _FRAME.search(line)):
            current["stack_bytes"] = int(m["stack"])
            current["spill_store_bytes"] = int(m["spst"])
            current["spill_load_bytes"] = int(m["spld"])
        elif current is not None and (m := _USED.search(line)):
            current["registers"] = int(m["regs"])
            if s := _SMEM.search(line):
                current["shared_bytes"] = int(s["smem"])
    return kernels


def tensor_core_instructions(sass: str) -> dict[str, int]:
    """Tensor-core instructions per kernel, from ``cuobjdump -sass`` output."""
    counts: dict[str, int] = {}
    name = None
    for line in sass.splitlines():
        if m := _FUNCTION.match(line):
            name = m["name"]
            counts[name] = 0
        elif name is not None and _TENSOR_CORE_OP.search(line):
            counts[name] += 1
    return counts


def find_cuobjdump() -> tuple[str, dict] | None:
    """(cuobjdump, environment with nvdisasm on PATH): from PATH, beside nvcc, or from the
    nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm wheels (the project's build extra); None if absent."""
    import importlib.util
    import os

    dirs = [Path(p).parent for p in (shutil.which("cuobjdump"), shutil.which("nvcc")) if p]
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        dirs += sorted(Path(root).glob("cu*/bin"))
    for d in dirs:
        if (d / "cuobjdump").is_file() and (d / "nvdisasm").is_file():
            return str(d / "cuobjdump"), {**os.environ, "PATH": f"{d}{os.pathsep}{os.environ.get('PATH', '')}"}
    return None


def sass_tensor_core_counts(cubin: Path) -> dict[str, int]:
    """``tensor_core_instructions`` of a cubin; BuildError when cuobjdump cannot be found or fails."""
    found = find_cuobjdump()
    if found is None:
        raise BuildError("cuobjdump and nvdisasm not found (CUDA toolkit, or pip install -e '.[build]'): "
                         "a tensor-core build must show its HMMA instructions")  # fmt: skip
    exe, env = found
    proc = subprocess.run([exe, "-sass", str(cubin)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BuildError(f"cuobjdump -sass {cubin} failed: {proc.stderr.strip()[-500:]}")
    return tensor_core_instructions(proc.stdout)


def register_limited_occupancy_pct(registers: int, arch: str) -> float:
    """Occupancy (% of the SM's warp slots) allowed by the register file alone."""
    regs_per_sm, max_warps, unit, _ = SM_LIMITS.get(arch, SM_LIMITS["sm_90"])
    if registers == 0:
        return 100.0
    regs_per_warp = -(-registers * 32 // unit) * unit  # rounded up to the allocation unit
    warps = min(max_warps, regs_per_sm // regs_per_warp)
    return 100.0 * warps / max_warps


def nvcc_command(source: Path, defines: list[str], arch: str, cubin: Path) -> list[str]:
    return [
        "nvcc", "-cubin", f"-arch={arch}", "-O3", "-std=c++17", "-lineinfo",
        "-Xptxas", "-v", f"-I{REPO / 'kernels'}", *defines, str(source), "-o", str(cubin),
    ]  # fmt: skip


def build_variant(variant_name: str, arch: str, cubin: Path, report_json: Path, log: Path) -> dict:
    """Compile ``variant_name`` for ``arch`` into ``cubin``; write and return the resource report."""
    from kernels.registry import TENSOR_CORE_PRECISIONS, VARIANTS, nvcc_flags
    from pipeline.stages.job import stamp, write_json

    if shutil.which("nvcc") is None:
        raise BuildError(
            "nvcc is not on PATH: install the CUDA toolkit (nvcc >= 12) to build cubins; "
            "without it the kernels are compiled by CuPy's NVRTC at run time"
        )
    v = VARIANTS[variant_name]
    if v.source is None:
        raise BuildError(f"variant {variant_name!r} has no CUDA source to build")
    cubin.parent.mkdir(parents=True, exist_ok=True)
    cmd = nvcc_command(REPO / v.source, nvcc_flags(v), arch, cubin)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildError(f"nvcc failed for {variant_name} ({arch}); see {log}:\n{proc.stderr[-2000:]}")
    kernels = parse_ptxas(proc.stdout + proc.stderr)
    for k in kernels:
        k["register_limited_occupancy_pct"] = register_limited_occupancy_pct(k["registers"], arch)
    missing = set(v.entries) - {k["name"] for k in kernels}
    if missing:
        raise BuildError(f"{variant_name}: entries {sorted(missing)} not found in the cubin")
    if v.precision in TENSOR_CORE_PRECISIONS:  # the SASS must show the tensor-core products
        counts = sass_tensor_core_counts(cubin)
        for k in kernels:
            k["tensor_core_instructions"] = counts.get(k["name"], 0)
        if not any(counts.values()):
            raise BuildError(f"{variant_name} is a {v.precision} tensor-core variant but its SASS has no HMMA/HGMMA")
    # the -D flags say which build of a source this was
    result = stamp({"arch": arch, "nvcc": nvcc_version(), "defines": v.define, "kernels": kernels}, v)
    write_json(report_json, result)
    return result


def nvcc_version() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release ([\d.]+), V([\d.]+)", out)
    return m.group(2) if m else out.strip().splitlines()[-1] if out else "unknown"


if __name__ == "__main__":  # only under Snakemake's script: directive
    build_variant(
        snakemake.wildcards.variant,  # noqa: F821
        snakemake.wildcards.arch,  # noqa: F821
        Path(snakemake.output.cubin),  # noqa: F821
        Path(snakemake.output.json),  # noqa: F821
        Path(snakemake.log[0]),  # noqa: F821
    )
