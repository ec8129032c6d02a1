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
from pipeline.core.nvcc import nvcc_command

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


def build_variant(variant_name: str, arch: str, cubin: Path, report_json: Path, log: Path,
                  source: Path | None = None, networks: dict | None = None) -> dict:  # fmt: skip
    """Compile ``variant_name`` for ``arch`` into ``cubin``; write and return the resource report.

    A generated variant (``lbl-gen``, ``vgg_e.first5.fused-reuse-t2x14-gen-fp16``) is first written
    as CUDA to ``source`` (default: beside the cubin, ``.cu``) by :func:`kernels.chain.chain_source`
    at its network's input size, the module ``ChainForward`` loads from the cubin; ``networks`` is
    the config's section that names its group (default: config/config.yaml's).
    """
    from kernels.registry import TENSOR_CORE_PRECISIONS, Variant, build_arch, nvcc_flags, variant as lookup
    from pipeline.stages.job import stamp, write_json

    if shutil.which("nvcc") is None:
        raise BuildError(
            "nvcc is not on PATH: install the CUDA toolkit (nvcc >= 12) to build cubins; "
            "without it the kernels are compiled by CuPy's NVRTC at run time"
        )
    v = Variant.parse(variant_name)
    extra: dict = {}
    cubin.parent.mkdir(parents=True, exist_ok=True)
    if v.generated:
        generated = write_generated_source(v, Path(source) if source else cubin.with_suffix(".cu"), networks)
        src, defines, entries = generated.pop("source"), [], generated["entries"]
        extra = {"generated": generated}
    else:
        v = lookup(variant_name)
        if v.source is None:
            raise BuildError(f"variant {variant_name!r} has no CUDA source to build")
        src, defines, entries = REPO / v.source, nvcc_flags(v), list(v.entries)
        arch = build_arch(v, arch)
    cmd = nvcc_command(src, defines, arch, cubin)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildError(f"nvcc failed for {variant_name} ({arch}); see {log}:\n{proc.stderr[-2000:]}")
    kernels = parse_ptxas(proc.stdout + proc.stderr)
    for k in kernels:
        k["register_limited_occupancy_pct"] = register_limited_occupancy_pct(k["registers"], arch)
        if v.generated:  # dynamic shared memory per block and blocks per image, from the layout
            k.update(extra["generated"]["kernels"].get(k["name"], {}))
    missing = set(entries) - {k["name"] for k in kernels}
    if missing:
        raise BuildError(f"{variant_name}: entries {sorted(missing)} not found in the cubin")
    if v.precision in TENSOR_CORE_PRECISIONS:  # the SASS must show the tensor-core products
        counts = sass_tensor_core_counts(cubin)
        for k in kernels:
            k["tensor_core_instructions"] = counts.get(k["name"], 0)
        if not any(counts.values()):
            raise BuildError(f"{variant_name} is a {v.precision} tensor-core variant but its SASS has no HMMA/HGMMA")
    # the -D flags say which build of a source this was; a generated module, its group and layouts
    result = stamp({"arch": arch, "nvcc": nvcc_version(), "defines": dict(v.defines), **extra, "kernels": kernels}, v)
    write_json(report_json, result)
    return result


def write_generated_source(v, path: Path, networks: dict | None = None) -> dict:
    """Write a generated variant's CUDA module (its network's input size) to ``path``; return what the
    build report records of it: the group, the entries in launch order and, per kernel, its dynamic
    shared memory per block, blocks per image and rings (the on-chip maps: rows x cols x pixel
    stride, bytes), with ``source`` the path written."""
    from kernels.chain import chain_kernels
    from kernels.generate import module_source
    from kernels.registry import BYTES_PER_VALUE, group_chain, group_range

    layers, in_shape = group_chain(v.network, v.group, networks=networks)
    gens = chain_kernels(layers, in_shape, str(v.strategy), v.tile, v.precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(module_source(gens))
    bpv = BYTES_PER_VALUE[v.precision]
    per_kernel = {}
    for g in gens:
        lay = g.layout
        rings = [{"map": r.map, "layer": "input" if r.layer < 0 else lay.layers[r.layer].name, "channels": r.channels,
                  "rows": r.rows, "cols": r.cols, "pixel_stride": r.pixel_stride, "bytes": r.values * bpv}
                 for r in lay.rings]  # fmt: skip
        per_kernel[g.entry] = {"dynamic_shared_bytes": g.smem_bytes, "blocks_per_image": lay.blocks_per_image,
                               "tile": lay.tile if isinstance(lay.tile, int) else list(lay.tile),
                               "layers": [lay.layers[0].name, lay.layers[-1].name], "rings": rings}  # fmt: skip
    first, last = group_range(v.network, v.group, networks)
    return {"source": path, "network": v.network, "group": v.group, "layers": [first, last],
            "input": [in_shape.channels, in_shape.height, in_shape.width], "entries": [g.entry for g in gens],
            "smem_bytes": max(g.smem_bytes for g in gens), "kernels": per_kernel}  # fmt: skip


def nvcc_version() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release ([\d.]+), V([\d.]+)", out)
    return m.group(2) if m else out.strip().splitlines()[-1] if out else "unknown"


if __name__ == "__main__":  # only under Snakemake's script: directive
    sm = snakemake  # noqa: F821
    build_variant(
        sm.wildcards.variant,
        sm.wildcards.arch,
        Path(sm.output.cubin),
        Path(sm.output.json),
        Path(sm.log[0]),
        source=Path(sm.output.source) if "source" in sm.output.keys() else None,
        networks=sm.params.get("networks"),
    )
