"""The variant registry: single source of truth for the Snakefile, the build stage and the API.

Imports without CuPy or a GPU (the CPU machine builds cubins and plans runs). A variant is a CUDA
source, its ``-D`` defines and the ``extern "C"`` entries it launches; ``vendor`` has no source
(PyTorch/cuDNN, checked for at run time by :func:`vendor_available`).
"""

from __future__ import annotations

from dataclasses import dataclass

TILE_SIZES: tuple[int, ...] = (2, 3, 4)  # pool2 tile sides that fit 227 KB of shared memory on sm_90
FUSED_THREADS = 256
FUSED_CHUNK_ROWS = 3  # pool1 rows per conv1 line-buffer chunk (3: conv1 thread tile 12 ch x 6 px)
FUSED_KSTAGE = 16  # K rows per weight stage of the fused GEMMs
FUSED_RM = (12, 8)  # output channels per thread in the fused conv1 / conv2 GEMMs (RM1, RM2 in fused.cu)
SMEM_LIMIT_SM90_BYTES = 227 * 1024  # opt-in dynamic shared memory per block on sm_90


@dataclass(frozen=True)
class Variant:
    name: str  # wildcard value, e.g. "fused-reuse-t4"
    source: str | None  # path relative to the repo root; None for vendor
    entries: tuple[str, ...]  # extern "C" kernels in the cubin
    defines: tuple[tuple[str, int], ...]  # -D flags
    strategy: str  # "lbl" | "reuse" | "recompute" | "vendor"
    tile: int | None  # pool2 tile side for fused variants


def _al32(v: int) -> int:
    return (v + 31) // 32 * 32


def fused_smem_bytes(
    tile: int, strategy: str, c_in: int = 3, c1: int = 96, c2: int = 256, chunk_rows: int = FUSED_CHUNK_ROWS,
    kc: int = FUSED_KSTAGE,
) -> int:
    """Dynamic shared memory of one fused block, byte for byte the layout in kernels/fused.cu.

    Why here: the plan refuses a tile that does not fit the GPU before anything is built, and the
    build passes this number as ``EXPECT_SMEM_BYTES`` so a ``static_assert`` in the kernel fails
    the compile if Python and CUDA ever disagree. Regions (floats, each rounded up to 32):
    pool1 tile (c1 x (2T+5)^2, conv2 padding included), carried conv1 row, carried conv2 row
    (reuse only), and a union of {conv1 line buffer + staged input patch + conv1 weight stage} and
    {conv2 tile + conv2 weight stage}, each stage double-buffered (the k-offset tables are
    compile-time constants in constant memory).
    """
    if strategy not in ("reuse", "recompute"):
        raise ValueError(f"fused_smem_bytes: strategy must be 'reuse' or 'recompute', got {strategy!r}")
    t, ch = int(tile), int(chunk_rows)
    p1d = 2 * t + 5
    c1w = 2 * p1d + 1
    c1r = 2 * ch + 1
    xh = 4 * (c1r - 1) + 11
    xw = 4 * (c1w - 1) + 11
    c2d = 2 * t + 1
    sz_p1 = _al32(c1 * p1d * p1d)
    sz_c1keep = _al32(c1 * c1w)
    sz_c2keep = _al32(c2 * c2d) if strategy == "reuse" else 0
    sz_u = max(_al32(c1 * c1r * c1w) + _al32(c_in * xh * xw) + 2 * kc * c1, _al32(c2 * c2d * c2d) + 2 * kc * c2)
    return 4 * (sz_p1 + sz_c1keep + sz_c2keep + sz_u)


def _fused(strategy: str, tile: int) -> Variant:
    entry = f"fused_{strategy}_t{tile}"
    defines = (
        ("TILE", tile),
        ("REUSE", int(strategy == "reuse")),
        ("CHUNK_ROWS", FUSED_CHUNK_ROWS),
        ("KSTAGE", FUSED_KSTAGE),
        ("EXPECT_SMEM_BYTES", fused_smem_bytes(tile, strategy)),
    )
    return Variant(f"fused-{strategy}-t{tile}", "kernels/fused.cu", (entry,), defines, strategy, tile)


_ALL = [
    Variant("lbl", "kernels/lbl.cu", ("lbl_conv_m96", "lbl_conv_m128", "lbl_lrn", "lbl_maxpool"), (), "lbl", None),
    *(_fused("reuse", t) for t in TILE_SIZES),
    *(_fused("recompute", t) for t in TILE_SIZES),
    Variant("vendor", None, (), (), "vendor", None),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}


def nvcc_flags(variant: Variant | str) -> list[str]:
    """The -D flags of a variant, in registry order (the build stage adds arch, -O3, -I kernels)."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    return [f"-D{name}={value}" for name, value in v.defines]


def vendor_available() -> tuple[bool, str]:
    """Whether the `vendor` variant can run here, and why not: it needs torch with CUDA."""
    try:
        import torch  # noqa: PLC0415 - optional dependency
    except Exception as err:  # ImportError, or a broken install
        return False, f"torch does not import ({err.__class__.__name__}: {err})"
    if not torch.cuda.is_available():
        return False, "torch imports but sees no CUDA device"
    return True, ""


def check_fits(tile: int, strategy: str, smem_limit_bytes: int = SMEM_LIMIT_SM90_BYTES) -> None:
    """Raise a clear error when a fused tile's shared memory exceeds the GPU's per-block limit."""
    need = fused_smem_bytes(tile, strategy)
    if need > smem_limit_bytes:
        raise ValueError(
            f"fused-{strategy}-t{tile} needs {need} bytes of shared memory per block, more than the "
            f"{smem_limit_bytes} this GPU allows; supported tiles: {', '.join(map(str, TILE_SIZES))}"
        )
