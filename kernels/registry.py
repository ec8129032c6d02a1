"""The variant registry: single source of truth for the Snakefile, the build stage and the API.

Imports without CuPy or a GPU (the CPU machine builds cubins and plans runs). A variant is a CUDA
source, its ``-D`` defines and the ``extern "C"`` entries it launches; ``vendor`` has no source
(PyTorch/cuDNN, checked for at run time by :func:`vendor_available`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.core.arch import MAX_SMEM_PER_BLOCK_BYTES
from pipeline.core.nvcc import target_arch
from pipeline.core.precision import BYTES_PER_VALUE, PRECISIONS  # noqa: F401 - the registry's names too
from pipeline.core.strategy import Strategy
from pipeline.core.tiles import Tile, parse_tile, tile_label, tile_sides

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
# k steps unrolled per GEMM loop trip where fewer than the whole stage measured faster (the rest
# unroll the stage): chosen by measurement, docs/perf-notes.md step 14.
FUSED_KUNROLL: dict[Tile, int] = {4: 8, (2, 7): 8}
FUSED_RM = (12, 8)  # output channels per thread in the fused conv1 / conv2 GEMMs (RM1, RM2 in fused.cu)
SMEM_LIMIT_SM90_BYTES = MAX_SMEM_PER_BLOCK_BYTES["sm_90"]  # opt-in dynamic shared memory per block


# Value and arithmetic precision of a variant (PRECISIONS, BYTES_PER_VALUE: pipeline/core/precision.py):
# fp32 on CUDA-core FMAs; fp16 and bf16 stored in 16 bits, multiplied on the tensor cores (mma.sync)
# with FP32 accumulation, LRN and pool in FP32; tf32 stored in FP32, its products' operands rounded
# to TF32 (the same kernels, kernels/tc.cuh PREC 3).
TENSOR_CORE_PRECISIONS = ("tf32", "fp16", "bf16")
TC_PREC_DEFINE = {"fp16": 1, "bf16": 2, "tf32": 3}  # -DPREC of kernels/tc.cuh
DEFAULT_PRECISION = "fp32"
# The vendor anchors a user could pick instead, at every precision: PyTorch eager NCHW (""), channels-
# last with cudnn.benchmark ("cl": cuDNN free to pick FFT or Winograd), torch.compile max-autotune.
VENDOR_IMPLS = ("", "cl", "compile")
NETWORK, GROUP = "alexnet", "front"  # the network and fusion group the hand-written CUDA kernels implement
# Own kernels written by kernels/generate.py for any configured network and fusion group (``lbl-gen``,
# ``fused-reuse-t2x14-gen``); a variant of another network or group than alexnet/front is named
# ``<network>.<group>.<base>`` (``vgg_e.first5.fused-reuse-t2x14-gen-fp16``, ``vgg_e.first5.vendor-cl``).
GEN_IMPL = "gen"
IMPLS = (*VENDOR_IMPLS, GEN_IMPL)  # every impl a name may carry, in rank order
# Where a generated variant's group (first and last layer) is read when the caller gives no config:
# the default config's ``networks`` section (a stage names a variant, not a config; the Snakefile's
# check_config refuses a config whose group range differs from it).
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
_FAMILY_RANK = {Strategy.LBL: 0, Strategy.REUSE: 1, Strategy.RECOMPUTE: 2, Strategy.VENDOR: 3}


@dataclass(frozen=True)
class Variant:
    """One way to run a fusion group: the record every stage writes and every table reads.

    The name (the results path and Snakemake wildcard) is derived from the fields; :meth:`parse`
    is the only place a name is read back. ``source``, ``entries`` and ``defines`` say how the
    registry builds it (none for ``vendor``).
    """

    strategy: Strategy
    tile: Tile | None = None  # output tile of the group's last layer (fused): side T, or (rows, cols)
    precision: str = DEFAULT_PRECISION
    network: str = NETWORK
    group: str = GROUP
    source: str | None = None  # CUDA source relative to the repo root
    entries: tuple[str, ...] = ()  # extern "C" kernels in the cubin
    defines: tuple[tuple[str, int], ...] = ()  # -D flags
    # vendor: "" (PyTorch eager, NCHW), "cl" (channels-last, cudnn.benchmark), "compile";
    # own kernels: "" (hand-written, alexnet/front only) or "gen" (kernels/generate.py, any group)
    impl: str = ""

    @property
    def name(self) -> str:
        """``lbl``, ``fused-reuse-t4``, ``fused-recompute-t2x7``, ``vendor``, ``vendor-cl``,
        ``vendor-compile``, ``lbl-gen``, ``fused-reuse-t2x14-gen``; a precision other than fp32 adds
        ``-<precision>``, a network or group other than alexnet/front the prefix ``<network>.<group>.``."""
        base = f"fused-{self.strategy}-t{tile_label(self.tile)}" if self.strategy.fused else str(self.strategy)
        base += f"-{self.impl}" if self.impl else ""
        base = base if self.precision == DEFAULT_PRECISION else f"{base}-{self.precision}"
        return base if self.default_group else f"{self.network}.{self.group}.{base}"

    @property
    def default_group(self) -> bool:
        """AlexNet's front (conv1..pool2): the group the hand-written kernels implement; its names carry no prefix."""
        return (self.network, self.group) == (NETWORK, GROUP)

    @property
    def generated(self) -> bool:
        """Own kernels written by kernels/generate.py (their recipe is the network group, not a source file)."""
        return self.impl == GEN_IMPL

    @property
    def define(self) -> dict[str, int]:
        return dict(self.defines)

    @property
    def tile_label(self) -> str | None:
        return None if self.tile is None else tile_label(self.tile)

    @property
    def rank(self) -> tuple[int, int, int]:
        """(family, tile area, precision): lbl, reuse by tile, recompute by tile, vendor; the order
        of every table and legend."""
        rows, cols = tile_sides(self.tile) if self.tile is not None else (0, 0)
        prec = PRECISIONS.index(self.precision) if self.precision in PRECISIONS else len(PRECISIONS)
        return _FAMILY_RANK[self.strategy], rows * cols * len(IMPLS) + IMPLS.index(self.impl), prec

    def record(self) -> dict:
        """The fields every result file carries (``schema_version`` is added by the writer)."""
        return {"variant": self.name, "network": self.network, "group": self.group, "strategy": str(self.strategy),
                "tile": self.tile_label, "precision": self.precision, "impl": self.impl}  # fmt: skip

    @classmethod
    def parse(cls, name: str) -> "Variant":
        """The record a variant name stands for (fields only, no build recipe): the inverse of
        :attr:`name`. Accepts every name the workflow wrote, archived runs included. Only the form
        is checked here; :func:`variant` also checks that the network and group exist."""
        network, group, rest = NETWORK, GROUP, name
        if "." in name:
            network, group, rest = (name.split(".", 2) + ["", ""])[:3]
            if not (network and group and rest) or (network, group) == (NETWORK, GROUP):
                raise ValueError(f"variant name {name!r}: expected <network>.<group>.<variant> for a group other "
                                 f"than {NETWORK}.{GROUP} (whose names carry no prefix)")  # fmt: skip
        base, precision = rest, DEFAULT_PRECISION
        head, _, tail = rest.rpartition("-")
        if head and tail in PRECISIONS:
            base, precision = head, tail
        impl = ""
        if base.endswith(f"-{GEN_IMPL}"):
            base, impl = base[: -len(GEN_IMPL) - 1], GEN_IMPL
        v = None
        if base == Strategy.LBL or (base == Strategy.VENDOR and not impl):
            v = cls(Strategy(base), None, precision, network, group, impl=impl)
        elif base.startswith("vendor-") and base[7:] in VENDOR_IMPLS and not impl:
            v = cls(Strategy.VENDOR, None, precision, network, group, impl=base[7:])
        else:
            parts = base.split("-")
            if len(parts) == 3 and parts[0] == "fused" and parts[1] in ("reuse", "recompute") and parts[2][:1] == "t":
                try:
                    v = cls(Strategy(parts[1]), parse_tile(parts[2][1:]), precision, network, group, impl=impl)
                except ValueError:
                    pass
        if v is None:
            raise ValueError(
                f"variant name {name!r}: expected [<network>.<group>.]lbl[-gen], vendor[-cl|-compile] or "
                f"fused-<reuse|recompute>-t<tile>[-gen] (tile T or RxC), optionally -<precision> ({', '.join(PRECISIONS)})"
            )
        if v.strategy.own_kernels and not v.generated and not v.default_group:
            raise ValueError(f"variant name {name!r}: hand-written kernels exist for {NETWORK}.{GROUP} only; "
                             f"other groups have generated ones ({network}.{group}.{base}-gen...)")  # fmt: skip
        return v


@lru_cache(maxsize=1)
def _config_networks() -> dict:
    """The ``networks`` section of the default config (group ranges of generated variants)."""
    import yaml

    return dict(yaml.safe_load(DEFAULT_CONFIG.read_text()).get("networks") or {})


def group_range(network: str, group: str, networks: dict | None = None) -> tuple[str, str]:
    """(first layer, last layer) of a configured fusion group; ValueError in one line when the
    network file or the group is missing. ``networks`` is a config's ``networks`` section (default:
    config/config.yaml's); alexnet/front is conv1..pool2 whatever the config says."""
    from pipeline.core.networks import available_networks

    if network not in available_networks():
        raise ValueError(f"network {network!r}: no config/networks/{network}.yaml; allowed: "
                         f"{', '.join(available_networks())}")  # fmt: skip
    if (network, group) == (NETWORK, GROUP):
        return "conv1", "pool2"
    groups = ((_config_networks() if networks is None else networks).get(network) or {}).get("groups") or {}
    if group not in groups:
        raise ValueError(f"network {network}: no fusion group {group!r} under networks.{network}.groups; "
                         f"allowed: {', '.join(groups) or 'none'}")  # fmt: skip
    first, last = groups[group]
    return str(first), str(last)


def group_chain(network: str, group: str, height: int | None = None, width: int | None = None,
                networks: dict | None = None):  # fmt: skip
    """(layers, input shape) of a fusion group at an input of ``height`` x ``width`` (default: the
    network's own input size); the group's input is the map its first layer reads."""
    from pipeline.core.networks import Shape, load_network

    first, last = group_range(network, group, networks)
    net = load_network(network)
    h = net.input.height if height is None else int(height)
    w = net.input.width if width is None else int(width)
    shapes = net.shapes(Shape(net.input.channels, h, w))
    return net.group(first, last), shapes[net.index(first)]


def variant(name: str, networks: dict | None = None) -> Variant:
    """The record (with its build recipe, for hand-written kernels) of a variant name: the one lookup
    every stage uses where a name becomes a record. Generated variants and the vendor anchors of
    other groups depend on the config, not on :data:`VARIANTS`: their name is parsed and the network
    and group are checked (``networks``: a config's section, default config/config.yaml's)."""
    if name in VARIANTS:
        return VARIANTS[name]
    v = Variant.parse(name)  # ValueError in one line for a malformed name
    if v.generated or (v.strategy == Strategy.VENDOR and not v.default_group):
        group_range(v.network, v.group, networks)
        return v
    raise ValueError(f"variant {name!r} is not built: hand-written {v.strategy} kernels exist for "
                     f"{', '.join(sorted(n for n, r in VARIANTS.items() if r.strategy == v.strategy))}")  # fmt: skip


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


def _fused(strategy: Strategy, tile: Tile) -> Variant:
    th, tw = tile_sides(tile)
    chunk_rows, lean = chunk_layout(tile)
    defines = (
        ("TILE_Y", th),
        ("TILE_X", tw),
        ("REUSE", int(strategy == Strategy.REUSE)),
        ("CHUNK_ROWS", chunk_rows),
        ("LEAN_INPUT", int(lean)),
        ("KSTAGE", FUSED_KSTAGE),
        ("KUNROLL", FUSED_KUNROLL.get(tile, FUSED_KSTAGE)),
        ("EXPECT_SMEM_BYTES", fused_smem_bytes(tile, strategy)),
    )
    return Variant(strategy, tile, source="kernels/fused.cu", entries=(f"fused_{strategy}_t{tile_label(tile)}",),
                   defines=defines)  # fmt: skip


def fused_variant_name(strategy: str, tile: Tile) -> str:
    """``fused-<strategy>-t<label>``: fused-reuse-t4, fused-reuse-t2x7 (fp32)."""
    return Variant(Strategy(strategy), tile).name


# Pool2 tiles of the tensor-core fused kernel (kernels/fused_tc.cu, both strategies) per precision:
# all fit 227 KB; fused_tc_smem_bytes mirrors its layout. TF32's FP32 maps take twice the space: a
# 2x7 tile would need 250 KB even at one pool1 row per band. Its tiles with the fewest column
# strips that fit one block: 2x5 (three strips of AlexNet's 13 pool2 columns; 2x6 cuts them the same
# way) and 1x7 (two); 2 and 2x4 measured slower (22.7, 14.0 us/image against 10.8 for 2x5 with reuse
# at batch 128: docs/perf-notes.md step 27); and 2x13 split over a cluster's two blocks
# (FUSED_TC_GROUP_SPLIT: reuse 5.72 against 1x7's 7.81, step 34). 2x13 (16-bit) spans AlexNet's
# pool2 width: one strip, nothing recomputed in x, in 227 KB with FUSED_TC_CONV1_COLS (reuse 2.95
# us/image against 4x7's 3.77, perf-notes step 33; 1x13 3.18: 54 new conv2 pixels a step in 64-row
# products).
FUSED_TC_TILES_BY_PRECISION: dict[str, tuple[Tile, ...]] = {
    "fp16": (2, 4, (2, 7), (4, 7), (2, 13)),
    "bf16": (2, 4, (2, 7), (4, 7), (2, 13)),
    "tf32": ((2, 5), (1, 7), (2, 13)),
}
FUSED_TC_TILES: tuple[Tile, ...] = tuple(dict.fromkeys(t for ts in FUSED_TC_TILES_BY_PRECISION.values() for t in ts))


def tc_value_slots(precision: str) -> int:
    """16-bit shared-memory slots per value of a tensor-core kernel (kernels/tc.cuh VS): 2 for tf32's
    FP32 values, 1 for fp16/bf16."""
    if precision not in TC_PREC_DEFINE:
        raise ValueError(f"precision {precision!r} has no tensor-core kernels; allowed: {', '.join(TC_PREC_DEFINE)}")
    return BYTES_PER_VALUE[precision] // 2


def conv1_patch_halves(rows: int, cols: int, precision: str = "fp16") -> int:
    """16-bit slots of conv1's input patch under ``rows`` x ``cols`` outputs (kernels/conv1_patch.cuh
    Patch::HALVES): 3 channels x (4(rows-1)+11) rows x (4 cols + 8) values per copy, two copies with
    the copy stride rounded to 32 mod 64 (16-bit values); one copy of 4 cols + 12 values for tf32."""
    if tc_value_slots(precision) == 2:
        return 3 * (4 * (rows - 1) + 11) * (4 * cols + 12) * 2
    per_copy = 3 * (4 * (rows - 1) + 11) * (4 * cols + 8)
    return 2 * (-(-per_copy // 64) * 64 + 32)


# Conv1 columns a block of these tiles holds (fused_tc.cu CONV1_MAX_COLS; other tiles: 2(2C+5)+1, all
# that the pool1 tile with conv2's padding stands on). A tile as wide as AlexNet's 13-column pool2 map
# is one strip, whose pool1 padding columns lie outside the map: 2 x 27 + 1 = 55 conv1 columns at
# 227 (4C + 3), not 63. Holding 55 (a chunk of 56) is what lets 2x13 keep 2-row bands (4-row conv1
# chunks) in 227 KB; kernels/api.py refuses a map whose strips need more (fused_tc_conv1_cols_needed).
FUSED_TC_CONV1_COLS: dict[Tile, int] = {(2, 13): 55}


def _conv1_cols_under_pool1_tile(tile_width: int) -> int:
    """Conv1 columns under a pool1 tile of a ``tile_width``-column pool2 tile, conv2's padding
    included: fused_tc.cu's default CONV1_MAX_COLS, 2(2C+5)+1."""
    return 2 * (2 * tile_width + 5) + 1


def fused_tc_conv1_cols(tile: Tile) -> int:
    """Conv1 columns a tensor-core fused block of ``tile`` holds (fused_tc.cu C1W)."""
    sides = tile_sides(tile)
    return FUSED_TC_CONV1_COLS.get(sides, _conv1_cols_under_pool1_tile(sides[1]))


def fused_tc_conv1_cols_needed(tile: Tile, pool1_width: int) -> int:
    """The most conv1 columns any column strip of ``tile`` stands on over a pool1 map ``pool1_width``
    wide (fused_tc.cu's cnx: the kernels' balanced strips of pool2 columns [q0, q1), pool1 columns
    2q0 - 2 .. 2q1 + 2 clipped to the map)."""
    from pipeline.model.costs import output_tiles  # the split the kernels' tile_start/tile_size make

    wp2 = (pool1_width - 3) // 2 + 1
    strips = output_tiles(wp2, tile_sides(tile)[1], "balanced")
    return max(2 * (min(2 * q1 + 3, pool1_width) - max(2 * q0 - 2, 0)) + 1 for q0, q1 in strips)


# Tiles whose tensor-core fused builds split each tile's two conv2 groups over the two blocks of a
# cluster (fused_tc.cu GROUP_SPLIT), per precision: TF32's FP32 maps need about 361 KB at 2x13 in one
# block; split, a block holds half of pool1 and conv2 and two thirds of conv1 (perf-notes step 34).
FUSED_TC_GROUP_SPLIT: dict[str, tuple[Tile, ...]] = {"tf32": ((2, 13),)}
# fused_tc.cu's own values of CONV1_STAGES and CONV2_STAGE_SLOTS, where a build leaves them out (the
# registry passes them only where they differ, so every other build keeps its -D values and its SASS)
FUSED_TC_CONV1_STAGES_DEFAULT, FUSED_TC_CONV2_STAGE_SLOTS_DEFAULT = 3, 48
# conv1 weight ring depth (fused_tc.cu CONV1_STAGES) where not the default: (precision, tile, strategy) -> stages.
# Split reuse 2x13 at TF32 holds 2-row bands (4-row conv1 chunks) only with a 2-deep ring (229,040
# bytes; 236,208 with 3).
FUSED_TC_CONV1_STAGES: dict[tuple[str, Tile, str], int] = {("tf32", (2, 13), "reuse"): 2}


def fused_tc_group_split(tile: Tile, precision: str) -> bool:
    """Whether the registry's fused_tc build of ``tile`` at ``precision`` splits conv2's groups over a cluster."""
    return tile_sides(tile) in FUSED_TC_GROUP_SPLIT.get(precision, ())


# 16-bit slots of k per conv2 weight stage (CONV2_STAGE_SLOTS) where not the default: (precision, tile) -> slots
FUSED_TC_CONV2_STAGE_SLOTS: dict[tuple[str, Tile], int] = {("tf32", (2, 13)): 96}


def fused_tc_conv2_stage_slots(tile: Tile, precision: str) -> int:
    """Slots of k per conv2 weight stage in the registry's fused_tc build of ``tile`` at ``precision``."""
    return FUSED_TC_CONV2_STAGE_SLOTS.get((precision, tile_sides(tile)), FUSED_TC_CONV2_STAGE_SLOTS_DEFAULT)


def fused_tc_conv1_stages(tile: Tile, precision: str, strategy: Strategy | str) -> int:
    """Conv1's weight ring depth in the registry's fused_tc build of ``tile`` at ``precision``."""
    return FUSED_TC_CONV1_STAGES.get((precision, tile_sides(tile), str(Strategy(strategy))), FUSED_TC_CONV1_STAGES_DEFAULT)


# Blocks per cluster of every fused_tc build (fused_tc.cu WCLUSTER): 2 blocks run the same tiles of two
# images and fetch conv2's weight stages once for both, by multicast bulk copies (sm_90a).
FUSED_TC_WCLUSTER = 2


def fused_tc_smem_bytes(tile: Tile, strategy: Strategy | str, band: int | None = None, precision: str = "fp16",
                        wcluster: int = FUSED_TC_WCLUSTER, phase1_barrier: bool = True,
                        conv1_cols: int | None = None, group_split: bool | None = None,
                        conv1_stages: int | None = None, conv2_stage_slots: int | None = None) -> int:  # fmt: skip
    """Dynamic shared memory of one tensor-core fused block, byte for byte kernels/fused_tc.cu's
    layout (its static_assert against EXPECT_SMEM_BYTES keeps the two in step). 16-bit slots, each
    region rounded to 8, VS = :func:`tc_value_slots` per value: the channels-last pool1 tile (2R+5 x
    2C+5 pixels x 96VS+8, conv2 padding included); phase 1 = {reuse: conv2's carried row (2C+1 x
    256VS+8), the conv1 band (2B+1 x 2(2C+5)+1 pixels and a spare, x 96VS+8; B = ``band`` pool1 rows,
    default :func:`fused_tc_band`), conv1's weight ring (3 x 96 x 56) and input patch (4 rows, the
    band's columns padded to 8)}; phase 2 = {the conv2 tile (2R+1 x 2C+1 pixels and a spare, x
    256VS+8), conv2 weight stages (3 x 256 x 56; a 4th where it and conv1's carried row fit in phase
    1's space)}; conv1's carried row (2(2C+5)+1 x 96VS+8) past both the conv1 band and phase 2; and,
    with clusters (``wcluster`` > 1), a full and an empty mbarrier (8 bytes) per stage of each conv2
    group's ring, and with ``phase1_barrier`` (fused_tc.cu's default, CONV2_START_CLUSTER_SYNC 0) one
    more that says both blocks are done with phase 1. The conv1 band and its carried row are
    ``conv1_cols`` wide (default :func:`fused_tc_conv1_cols`; 2(2C+5)+1 above).

    ``group_split`` (fused_tc.cu GROUP_SPLIT; default: the registry's choice for the tile and
    precision, :data:`FUSED_TC_GROUP_SPLIT`): a block computes 64 conv1 channels (c1, its carried
    row, a 64-row weight ring), holds 48 pool1 channels and computes 128 conv2 channels (c2, its
    carried row) from one ring of up to 6 stages, with one ring's mbarriers and no `phase 1 done`
    barrier, plus LRN2's halo (2 channels x 2 step parities x the tile's conv2 pixels, FP32).
    ``conv1_stages``: conv1's weight ring depth (CONV1_STAGES; default the registry's, 3 unless
    :data:`FUSED_TC_CONV1_STAGES` says otherwise). ``conv2_stage_slots``: 16-bit slots of k per conv2
    weight stage (CONV2_STAGE_SLOTS, BK2; default the registry's, :data:`FUSED_TC_CONV2_STAGE_SLOTS`),
    each ring row padded by 8."""
    th, tw = tile_sides(tile)
    vs = tc_value_slots(precision)
    split = fused_tc_group_split(tile, precision) if group_split is None else bool(group_split)
    stages1 = fused_tc_conv1_stages(tile, precision, strategy) if conv1_stages is None else conv1_stages
    band = fused_tc_band(tile, strategy, precision=precision) if band is None else band
    lda2 = (fused_tc_conv2_stage_slots(tile, precision) if conv2_stage_slots is None else conv2_stage_slots) + 8
    c1b, c1p, c2b = (64, 48, 128) if split else (96, 96, 256)
    ld1, ld2, ldp = c1b * vs + 8, c2b * vs + 8, c1p * vs + 8
    p1h, p1w = 2 * th + 5, 2 * tw + 5
    n2 = (2 * th + 1) * (2 * tw + 1)
    c1w = fused_tc_conv1_cols(tile) if conv1_cols is None else conv1_cols
    al8 = lambda v: (v + 7) // 8 * 8  # noqa: E731
    sz_p1 = al8(p1h * p1w * ldp)
    sz_c1, sz_c2 = al8(((2 * band + 1) * c1w + 1) * ld1), al8((n2 + 1) * ld2)
    sz_row1 = al8(c1w * ld1)
    sz_row2 = al8((2 * tw + 1) * ld2) if Strategy(strategy) == Strategy.REUSE else 0
    sz_ph1 = sz_row2 + sz_c1 + stages1 * c1b * 56 + conv1_patch_halves(4, al8(c1w), precision)
    fits = lambda ns: sz_c2 + ns * c2b * lda2 + sz_row1 <= sz_ph1  # noqa: E731
    stages2 = next((ns for ns in ((6, 5, 4) if split else (4,)) if fits(ns)), 3)
    off_row1 = max(sz_row2 + sz_c1, sz_c2 + stages2 * c2b * lda2)
    rings = 1 if split else 2
    barrier_bytes = (rings * 2 * stages2 + int(phase1_barrier and not split)) * 8 if wcluster > 1 else 0
    halo_bytes = 2 * n2 * 2 * 4 if split else 0
    return 2 * (sz_p1 + max(sz_ph1, off_row1 + sz_row1)) + barrier_bytes + halo_bytes


def fused_tc_smem_bytes_of(defines: dict[str, int]) -> int:
    """fused_tc_smem_bytes of a fused_tc build given by its -D values (TILE_Y, TILE_X, REUSE, PREC,
    CONV1_BAND, CONV1_MAX_COLS, WCLUSTER, CONV2_START_CLUSTER_SYNC, GROUP_SPLIT, CONV1_STAGES,
    CONV2_STAGE_SLOTS; kernel defaults where absent): the
    EXPECT_SMEM_BYTES of a build whose values differ from the registry's (pipeline.bench --set)."""
    precision = {value: key for key, value in TC_PREC_DEFINE.items()}[defines.get("PREC", 1)]
    strategy = Strategy.REUSE if defines.get("REUSE", 0) else Strategy.RECOMPUTE
    tile = (defines["TILE_Y"], defines["TILE_X"])
    return fused_tc_smem_bytes(tile, strategy, defines["CONV1_BAND"], precision, defines.get("WCLUSTER", 1),
                               not defines.get("CONV2_START_CLUSTER_SYNC", 0),
                               defines.get("CONV1_MAX_COLS", _conv1_cols_under_pool1_tile(tile[1])),
                               bool(defines.get("GROUP_SPLIT", 0)),
                               defines.get("CONV1_STAGES", FUSED_TC_CONV1_STAGES_DEFAULT),
                               defines.get("CONV2_STAGE_SLOTS", FUSED_TC_CONV2_STAGE_SLOTS_DEFAULT))  # fmt: skip


def fused_tc_band(tile: Tile, strategy: Strategy | str, smem_limit_bytes: int = SMEM_LIMIT_SM90_BYTES,
                  precision: str = "fp16") -> int:  # fmt: skip
    """Pool1 rows per conv1 pass of the tensor-core fused kernel (fused_tc.cu CONV1_BAND): a step's
    new rows (2R) or the 5 that steps share, lowered while the block would exceed the shared memory
    (4x7 tiles: 8 -> 5; 6 would need more than 227 KB). A band that starts on a carried conv1 row
    (every band but a block's first) takes the even count at or below it (fused_tc.cu
    BAND_CARRIED)."""
    th, _ = tile_sides(tile)
    band = max(2 * th, 5)
    while band > 1 and fused_tc_smem_bytes(tile, strategy, band, precision=precision) > smem_limit_bytes:
        band -= 1
    return band


# conv2 pixels per chunk of the mma.sync conv2 (fused_tc.cu CONV2_CHUNK; the wgmma builds take 64-row
# products instead): 80 beat 64 at every 7-wide tile (64 streams the weights again); the mma.sync
# builds spill at most 56 bytes (perf-notes step 26).
FUSED_TC_CONV2_CHUNK = 80

# Tiles whose conv2 runs on wgmma (fused_tc.cu CONV2_WGMMA): those where a step's new conv2 pixels
# fill wgmma's 64-row products well and the A/B measured it faster
# (perf-notes step 29: reuse-t4x7-fp16 0.87x the time of mma.sync, 120 new pixels in 128 rows;
# reuse-t2x7 0.93x, 60 in 64; recompute-t4x7 0.97x, 135 in 192). Tiles 2 and 4 keep mma.sync (20
# new pixels in 64 rows, 72 in 128; not measured on wgmma), and so does TF32 (1x7: 30 new pixels in
# 64 rows, 1.03x slower; 2x5 measured 0.98x, left for the TF32 workflow's next run to confirm).
# 2x13: 108 new pixels in 128 rows; at TF32 (split over a cluster, FUSED_TC_GROUP_SPLIT) one 64-row
# product per warpgroup, 0.86x the time of mma.sync (perf-notes step 34).
FUSED_TC_CONV2_WGMMA_TILES: dict[str, tuple[Tile, ...]] = {"fp16": ((2, 7), (4, 7), (2, 13)),
                                                           "bf16": ((2, 7), (4, 7), (2, 13)), "tf32": ((2, 13),)}  # fmt: skip


def _fused_tc(strategy: Strategy, tile: Tile, precision: str) -> Variant:
    th, tw = tile_sides(tile)
    defines = (("TILE_Y", th), ("TILE_X", tw), ("REUSE", int(strategy == Strategy.REUSE)),
               ("PREC", TC_PREC_DEFINE[precision]), ("CONV2_CHUNK", FUSED_TC_CONV2_CHUNK),
               ("WCLUSTER", FUSED_TC_WCLUSTER), ("CONV2_WGMMA", int(tile in FUSED_TC_CONV2_WGMMA_TILES[precision])),
               ("CONV1_BAND", fused_tc_band(tile, strategy, precision=precision)),
               *((("CONV1_MAX_COLS", FUSED_TC_CONV1_COLS[tile]),) if tile in FUSED_TC_CONV1_COLS else ()),
               *_unless_default("GROUP_SPLIT", int(fused_tc_group_split(tile, precision)), 0),
               *_unless_default("CONV1_STAGES", fused_tc_conv1_stages(tile, precision, strategy),
                                FUSED_TC_CONV1_STAGES_DEFAULT),
               *_conv1_kx12(precision),
               *_unless_default("CONV2_STAGE_SLOTS", fused_tc_conv2_stage_slots(tile, precision),
                                FUSED_TC_CONV2_STAGE_SLOTS_DEFAULT),
               ("EXPECT_SMEM_BYTES", fused_tc_smem_bytes(tile, strategy, precision=precision)))  # fmt: skip
    return Variant(strategy, tile, precision, source="kernels/fused_tc.cu",
                   entries=(f"fused_tc_{strategy}_t{tile_label(tile)}",), defines=defines)  # fmt: skip


def _unless_default(name: str, value: int, default: int) -> tuple[tuple[str, int], ...]:
    """The -D ``name``=``value``, or none where ``value`` is the kernel's own default."""
    return ((name, value),) if value != default else ()


def _conv1_kx12(precision: str) -> tuple[tuple[str, int], ...]:
    """TF32's conv1 from the input patch runs k over quads of kx padded to 12, not 16
    (kernels/conv1_patch.cuh CONV1_KX12; both lbl-tf32 and the fused TF32 builds, one conv1 core):
    408 values of K for 528, 0.941x the time of fused-reuse-t2x13-tf32, 0.952x reuse-t1x7, 0.968x lbl
    (perf-notes step 34f)."""
    return (("CONV1_KX12", 1),) if precision == "tf32" else ()


def _lbl_tc_entries(precision: str) -> tuple[str, ...]:
    """lbl_tc.cu's entries in the order kernels/api.py reads them: the gather convs (16-bit only;
    tf32's convs are the two patch kernels), LRN, pool, then the patch convs."""
    patch = ("lbl_tc_conv1_r2", "lbl_tc_conv1_r1", "lbl_tc_conv2cl_r4", "lbl_tc_conv2cl_r1")
    if tc_value_slots(precision) == 2:
        return ("lbl_tc_lrn", "lbl_tc_maxpool", *patch)
    return ("lbl_tc_conv_m96", "lbl_tc_conv_m128", "lbl_tc_lrn", "lbl_tc_maxpool", "lbl_tc_conv_m96_n32",
            "lbl_tc_conv_m128_n32", *patch)  # fmt: skip


_ALL = [
    Variant(Strategy.LBL, source="kernels/lbl.cu", entries=("lbl_conv_m96", "lbl_conv_m128", "lbl_lrn", "lbl_maxpool")),
    *(Variant(Strategy.LBL, precision=p, source="kernels/lbl_tc.cu", defines=(("PREC", TC_PREC_DEFINE[p]), *_conv1_kx12(p)),
              entries=_lbl_tc_entries(p)) for p in TENSOR_CORE_PRECISIONS),
    *(_fused(Strategy.REUSE, t) for t in FUSED_TILES),
    *(_fused(Strategy.RECOMPUTE, t) for t in FUSED_TILES),
    *(_fused_tc(s, t, p) for p in TENSOR_CORE_PRECISIONS for s in (Strategy.REUSE, Strategy.RECOMPUTE)
      for t in FUSED_TC_TILES_BY_PRECISION[p]),
    *(Variant(Strategy.VENDOR, precision=p, impl=i) for p in PRECISIONS for i in VENDOR_IMPLS),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}


def build_arch(variant: Variant | str, arch: str) -> str:
    """The nvcc target of a variant on a GPU of ``arch``: sm_90a for a build with clusters
    (WCLUSTER > 1: multicast bulk copies are an sm_90a feature), else ``arch``."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    return target_arch(v.define, arch, v.name)


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


def check_fits(tile: Tile, strategy: str, smem_limit_bytes: int = SMEM_LIMIT_SM90_BYTES, precision: str = "fp32") -> None:
    """Raise a clear error when a fused tile's shared memory exceeds the GPU's per-block limit."""
    need = fused_smem_bytes(tile, strategy) if precision == "fp32" else fused_tc_smem_bytes(tile, strategy, precision=precision)
    if need > smem_limit_bytes:
        raise ValueError(
            f"{fused_variant_name(strategy, tile)} needs {need} bytes of shared memory per block, more than "
            f"the {smem_limit_bytes} this GPU allows; supported tiles: {', '.join(map(tile_label, FUSED_TILES))}"
        )
