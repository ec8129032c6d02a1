"""Provenance of a set of measurements: which GPU, driver, toolkit, profiler, code and command.

Why: numbers from two runs can only be compared when the report can show they came from the
same card, driver, clocks and commit. Every field is collected independently and a field that
cannot be read says ``"unavailable"``, so this also works on a machine without a GPU (the
model-only report still records where it was made).
"""

import datetime as _dt
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = "unavailable"


def _try(fn: Callable[[], Any], default: Any = UNAVAILABLE) -> Any:
    try:
        v = fn()
        return default if v is None else v
    except Exception:  # provenance must never fail a run; the field says it was not readable
        return default


def cuda_version_text(v: int) -> str:
    """CUDA's integer version (e.g. 13000) as text ("13.0")."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def git_commit(root: Path = ROOT) -> dict:
    """HEAD commit and whether the tree has uncommitted changes ("unknown" outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=20, check=True).stdout.strip()

    commit = _try(lambda: git("rev-parse", "HEAD"), "unknown")
    dirty = _try(lambda: bool(git("status", "--porcelain", "--untracked-files=no")), "unknown")
    return {"git_commit": commit, "git_dirty": dirty}


def ncu_version() -> str:
    from pipeline.stages.profile import parse_version

    def run() -> str:
        out = subprocess.run(["ncu", "--version"], capture_output=True, text=True, timeout=60)
        return parse_version(out.stdout + out.stderr)

    return _try(run)


def cuda_facts() -> dict:
    """CUDA runtime/driver versions and the device CUDA uses, via CuPy."""
    try:
        import cupy
    except ImportError:
        return {"cupy_version": UNAVAILABLE, "cuda_runtime_version": UNAVAILABLE,
                "cuda_driver_version": UNAVAILABLE}
    rt = cupy.cuda.runtime
    facts = {
        "cupy_version": cupy.__version__,
        "cuda_runtime_version": _try(lambda: cuda_version_text(rt.runtimeGetVersion())),
        "cuda_driver_version": _try(lambda: cuda_version_text(rt.driverGetVersion())),
    }
    props = _try(lambda: rt.getDeviceProperties(cupy.cuda.Device().id), None)
    if props:
        name = props["name"]
        facts.update({
            "cuda_device_name": name.decode() if isinstance(name, bytes) else name,
            "compute_capability": f"{props['major']}.{props['minor']}",
            "sm_count": props.get("multiProcessorCount", UNAVAILABLE),
            "l2_bytes": props.get("l2CacheSize", UNAVAILABLE),
            "pci_bus_id": _try(lambda: cupy.cuda.Device().pci_bus_id),
        })
    return facts


def gpu_facts(pci_bus_id: str | None = None) -> dict:
    """Name, UUID, driver, clocks (current and max), power limit, temperature from NVML."""
    from pipeline.core import nvml

    keys = ("gpu_name", "gpu_uuid", "driver_version", "sm_clock_mhz", "mem_clock_mhz",
            "sm_clock_max_mhz", "mem_clock_max_mhz", "power_limit_w", "temperature_c")
    try:
        info = nvml.device_info(nvml.device_handle(pci_bus_id=pci_bus_id))
    except Exception as err:
        return {**{k: UNAVAILABLE for k in keys}, "nvml_error": str(err)}
    return {k: info.get(k, UNAVAILABLE) for k in keys}


def collect(command: list[str] | str | None = None) -> dict:
    """The provenance record; ``command`` defaults to this process's command line."""
    cmd = command if command is not None else [sys.executable, *sys.argv]
    cuda = cuda_facts()
    return {
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd),
        "hostname": platform.node(),
        "python_version": platform.python_version(),
        **git_commit(),
        **gpu_facts(cuda.get("pci_bus_id") if isinstance(cuda.get("pci_bus_id"), str) else None),
        **cuda,
        "ncu_version": ncu_version(),
    }


if __name__ == "__main__":  # only under Snakemake's script: directive
    from pipeline.stages.job import run_stage

    # A script: job runs in its own process; the Snakefile passes the real command line as params.
    run_stage(snakemake, lambda sm, v: collect(sm.params.command))  # noqa: F821
