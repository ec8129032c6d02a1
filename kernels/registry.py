"""The variant registry: single source of truth for the Snakefile, the build stage and the API.

Imports without CuPy or a GPU (the CPU machine builds cubins and plans runs). A variant is a CUDA
source, its ``-D`` defines and the ``extern "C"`` entries it launches; ``vendor`` has no source
(PyTorch/cuDNN, checked for at run time by :func:`vendor_available`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.tiles import Tile, tile_label, tile_sides

# Pool2 tiles compiled for both strategies: square sides T, and (rows, cols). All fit 227 KB of
# shared memory on sm_90. 2x7: two column strips of 7 and 6 pool2 columns walked 2 rows at a time;
# the wide strips overlap less in x (conv1 computes 66 columns for 55, where T=4 computes 88).
FUSED_TILES: tuple[Tile, ...] = (2, 3, 4, (2, 7))
FUSED_THREADS = 256
FUSED_CHUNK_ROWS = 3  # pool1 rows per conv1 line-buffer chunk (3: conv1 thread tile 12 ch x 6 px)
# Tiles whose layout only fits with smaller chunks: (chunk rows, lean input). Lean input: a chunk
# that carries a conv1 row stages 4 input rows fewer, and the first chunk of a walk makes one pool1
# row fewer (fused.cu LEAN_INPUT); 2x7 needs both to fit (228,224 B).
FUSED_CHUNK_LAYOUT: dict[Tile, tuple[int, bool]] = {(2, 7): (2, True)}
FUSED_KSTAGE = 16  # K rows per weight stage of the fused GEMMs
# k steps unrolled per GEMM loop trip, where 8 measured faster than the whole 16-step stage (H100,
# same call, us/image: 2x7 26.5 -> 25.5, recompute-4 39.3 -> 38.3, 4 31.1 -> 30.9; T=2 got slower
# and keeps 16; lbl keeps 16 too: 24.4 vs 24.7). A shorter loop body misses the instruction cache
# less (ncu: no_inst 9.8 % of the 2x7 kernel's stall samples at 16). docs/perf-notes.md step 14.
FUSED_KUNROLL: dict[Tile, int] = {4: 8, (2, 7): 8}
FUSED_RM = (12, 8)  # output channels per thread in the fused conv1 / conv2 GEMMs (RM1, RM2 in fused.cu)
SMEM_LIMIT_SM90_BYTES = 227 * 1024  # opt-in dynamic shared memory per block on sm_90


@dataclass(frozen=True)
class Variant:
    name: str  # wildcard value, e.g. "fused-reuse-t4"
    source: str | None  # path relative to the repo root; None for vendor
    entries: tuple[str, ...]  # extern "C" kernels in the cubin
    defines: tuple[tuple[str, int], ...]  # -D flags
    strategy: str  # "lbl" | "reuse" | "recompute" | "vendor"
    tile: Tile | None  # pool2 tile of fused variants: side T, or (rows, cols)

    @property
    def define(self) -> dict[str, int]:
        return dict(self.defines)


def _al32(v: int) -> int:
    return (v + 31) // 32 * 32


def chunk_layout(tile: Tile) -> tuple[int, bool]:
    """(pool1 rows per conv1 chunk, lean input) of a tile's kernel build."""
    return FUSED_CHUNK_LAYOUT.get(tile, (FUSED_CHUNK_ROWS, False))


def fused_smem_bytes(
    tile: Tile, strategy: str, c_in: int = 3, c1: int = 96, c2: int = 256, chunk_rows: int | None = None,
    kc: int = FUSED_KSTAGE, lean_input: bool | None = None,
) -> int:
    """Dynamic shared memory of one fused block, byte for byte the layout in kernels/fused.cu.

    Why here: the plan refuses a tile that does not fit the GPU before anything is built, and the
    build passes this number as ``EXPECT_SMEM_BYTES`` so a ``static_assert`` in the kernel fails
    the compile if Python and CUDA ever disagree. Regions (floats, each rounded up to 32):
    pool1 tile (c1 x (2R+5) x (2C+5) for an R x C tile, conv2 padding included), carried conv1
    row, carried conv2 row (reuse only), and a union of {conv1 line buffer + staged input patch +
    conv1 weight stage} and {conv2 tile + conv2 weight stage}, each stage double-buffered (the
    k-offset tables are compile-time constants in constant memory). ``chunk_rows`` and
    ``lean_input`` default to the tile's build (``chunk_layout``).
    """
    if strategy not in ("reuse", "recompute"):
        raise ValueError(f"fused_smem_bytes: strategy must be 'reuse' or 'recompute', got {strategy!r}")
    layout_rows, layout_lean = chunk_layout(tile)
    th, tw = tile_sides(tile)
    ch = int(layout_rows if chunk_rows is None else chunk_rows)
    lean = layout_lean if lean_input is None else bool(lean_input)
    p1h, p1w = 2 * th + 5, 2 * tw + 5
    c1w = 2 * p1w + 1
    c1r = 2 * ch + 1
    xh = 4 * (c1r - 1 - int(lean)) + 11
    xw = 4 * (c1w - 1) + 11
    c2h, c2w = 2 * th + 1, 2 * tw + 1
    sz_p1 = _al32(c1 * p1h * p1w)
    sz_c1keep = _al32(c1 * c1w)
    sz_c2keep = _al32(c2 * c2w) if strategy == "reuse" else 0
    sz_u = max(_al32(c1 * c1r * c1w) + _al32(c_in * xh * xw) + 2 * kc * c1, _al32(c2 * c2h * c2w) + 2 * kc * c2)
    return 4 * (sz_p1 + sz_c1keep + sz_c2keep + sz_u)


def _fused(strategy: str, tile: Tile) -> Variant:
    label = tile_label(tile)
    th, tw = tile_sides(tile)
    chunk_rows, lean = chunk_layout(tile)
    defines = (
        ("TILE_Y", th),
        ("TILE_X", tw),
        ("REUSE", int(strategy == "reuse")),
        ("CHUNK_ROWS", chunk_rows),
        ("LEAN_INPUT", int(lean)),
        ("EXACT_R", 1),
        ("KSTAGE", FUSED_KSTAGE),
        ("KUNROLL", FUSED_KUNROLL.get(tile, FUSED_KSTAGE)),
        ("EXPECT_SMEM_BYTES", fused_smem_bytes(tile, strategy)),
    )
    return Variant(fused_variant_name(strategy, tile), "kernels/fused.cu", (f"fused_{strategy}_t{label}",), defines,
                   strategy, tile)  # fmt: skip


def fused_variant_name(strategy: str, tile: Tile) -> str:
    """``fused-<strategy>-t<label>``: fused-reuse-t4, fused-reuse-t2x7."""
    return f"fused-{strategy}-t{tile_label(tile)}"


_ALL = [
    Variant("lbl", "kernels/lbl.cu", ("lbl_conv_m96", "lbl_conv_m128", "lbl_lrn", "lbl_maxpool"), (), "lbl", None),
    *(_fused("reuse", t) for t in FUSED_TILES),
    *(_fused("recompute", t) for t in FUSED_TILES),
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


def check_fits(tile: Tile, strategy: str, smem_limit_bytes: int = SMEM_LIMIT_SM90_BYTES) -> None:
    """Raise a clear error when a fused tile's shared memory exceeds the GPU's per-block limit."""
    need = fused_smem_bytes(tile, strategy)
    if need > smem_limit_bytes:
        raise ValueError(
            f"{fused_variant_name(strategy, tile)} needs {need} bytes of shared memory per block, more than "
            f"the {smem_limit_bytes} this GPU allows; supported tiles: {', '.join(map(tile_label, FUSED_TILES))}"
        )
