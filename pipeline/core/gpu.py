"""Small GPU helpers shared by the stages: is there a GPU, and load a kernel from a cubin or source.

CuPy is imported lazily so every module that imports this one still imports on the CPU machine.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from pipeline.core.nvcc import nvcc_command, target_arch

REPO = Path(__file__).resolve().parents[2]


def has_gpu() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError without a driver
        return False


def gpu_skip_reason() -> str | None:
    """Why GPU work cannot run here (for pytest skips), or None when it can."""
    try:
        import cupy
    except Exception as err:
        return f"cupy does not import ({err.__class__.__name__}: {err})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "cupy sees no CUDA device"
    except Exception as err:
        return f"no usable CUDA device ({err.__class__.__name__}: {err})"
    return None


@functools.lru_cache(maxsize=None)
def load_kernel(cubin: str, entry: str):
    """The ``extern "C"`` kernel ``entry`` of a cubin built by the build stage (module cached)."""
    import cupy

    return load_module(str(cubin)).get_function(entry)


@functools.lru_cache(maxsize=None)
def load_module(cubin: str):
    """The CuPy module of a cubin (cached): its kernels and ``__device__`` globals."""
    import cupy

    return cupy.RawModule(path=cubin)


@functools.lru_cache(maxsize=None)
def compile_module(source: str, defines: tuple[tuple[str, int], ...] = ()):
    """Compile a kernel source at run time with NVRTC (fallback when no cubin was built).

    ``source`` is relative to the repo root; the kernels' folder is on the include path so
    ``#include "common.cuh"`` resolves as it does under nvcc.
    """
    import cupy

    path = REPO / source
    arch = target_arch(dict(defines), f"sm_{cupy.cuda.Device().compute_capability}", f"{source} {dict(defines)}")
    if arch.endswith("a"):  # an arch-specific target, which CuPy's NVRTC call does not give
        return cupy.RawModule(path=str(nvcc_cubin(source, defines, arch)))
    opts = ("-std=c++17", f"-I{path.parent}", *(f"-D{k}={v}" for k, v in defines))
    return cupy.RawModule(code=with_headers_stamp(path.read_text()), options=opts)


# where nvcc_cubin keeps its cubins when set (pipeline.bench --cubin-cache): a folder that can be
# filled on a machine without a GPU (pipeline.bench --prebuild) and carried to the GPU's
CUBIN_CACHE_ENV = "FUSED_LAYER_CUBIN_CACHE"


def cubin_cache_dir() -> Path:
    """nvcc_cubin's cache: $FUSED_LAYER_CUBIN_CACHE, else fused-layer-cubins in the temporary folder."""
    import tempfile

    return Path(os.environ.get(CUBIN_CACHE_ENV) or Path(tempfile.gettempdir()) / "fused-layer-cubins")


def nvcc_cubin(source: str, defines: tuple[tuple[str, int], ...], arch: str) -> Path:
    """A cubin of ``source`` built by nvcc for ``arch`` (an arch-specific target such as sm_90a),
    cached in :func:`cubin_cache_dir` by the hash of the source, kernels/*.cuh, the defines and the
    arch (not nvcc's version: empty a kept cache after changing nvcc); a clear error when nvcc is
    missing or fails."""
    import hashlib
    import shutil
    import subprocess

    code = with_headers_stamp((REPO / source).read_text())
    key = hashlib.sha256(repr((code, tuple(defines), arch)).encode()).hexdigest()[:24]
    cubin = cubin_cache_dir() / f"{Path(source).stem}-{key}.cubin"
    if cubin.exists():
        return cubin
    if shutil.which("nvcc") is None:
        raise RuntimeError(f"{source} with {dict(defines)} needs nvcc on PATH to build for {arch} "
                           "(CuPy's NVRTC targets the plain architecture)")  # fmt: skip
    cubin.parent.mkdir(parents=True, exist_ok=True)
    tmp = cubin.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # per process and thread
    cmd = nvcc_command(REPO / source, [f"-D{k}={v}" for k, v in defines], arch, tmp)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed for {source} ({arch}):\n{proc.stderr[-2000:]}")
    tmp.replace(cubin)  # atomic: concurrent test processes never load a half-written cubin
    return cubin


@functools.lru_cache(maxsize=64)
def compile_source(code: str):
    """Compile generated kernel text with NVRTC (kernels/generate.py); ``kernels/`` on the include path."""
    import cupy

    return cupy.RawModule(code=with_headers_stamp(code), options=("-std=c++17", f"-I{REPO / 'kernels'}"))


def with_headers_stamp(code: str) -> str:
    """``code`` plus a comment with the hash of every header in kernels/: CuPy's on-disk kernel
    cache keys on the code text and options only, so without it an edited header would be served
    the module compiled from the old one."""
    import hashlib

    digest = hashlib.sha256()
    for header in sorted((REPO / "kernels").glob("*.cuh")):
        digest.update(header.name.encode() + header.read_bytes())
    return f"{code}\n// kernels/*.cuh sha256 {digest.hexdigest()}\n"
