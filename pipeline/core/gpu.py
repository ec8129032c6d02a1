"""Small GPU helpers shared by the stages: is there a GPU, and load a kernel from a cubin or source.

CuPy is imported lazily so every module that imports this one still imports on the CPU machine.
"""

from __future__ import annotations

import functools
from pathlib import Path

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
    opts = ("-std=c++17", f"-I{path.parent}", *(f"-D{k}={v}" for k, v in defines))
    return cupy.RawModule(code=with_headers_stamp(path.read_text()), options=opts)


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
