"""The arithmetic the fused kernel executes, counted from its tiling (kernels/fused.cu), per image.

The pyramid model (pipeline/model/costs.py) counts the MACs a pyramid needs; the kernel executes more:
every thread runs its whole register tile (RM channels x R pixel slots) over the padded K, also
for slots past the tile's last pixel, and the LRN does arithmetic the model does not count. This
module walks the kernel's loops (strips, steps, chunks, the register-tile instantiation each pass
picks) and counts thread-level FP32 instructions the way Nsight Compute's SASS counters do, so a
profile's FLOPs can be checked line by line: model MACs -> + padded slots -> + LRN and epilogue =
ncu's FADD + FMUL + 2 x FFMA.

Mirrors fused.cu's geometry; tests/test_work.py holds the two in step against recorded ncu counts.
"""

from dataclasses import dataclass

from kernels.registry import FUSED_KSTAGE, FUSED_THREADS, chunk_layout
from pipeline.model.costs import output_tiles  # the kernel's balanced split (fused.cu tile_start/tile_size)
from pipeline.core.tiles import Tile, tile_label, tile_sides

CIN, C1, C2, C1G = 3, 96, 256, 48
KS1, ST1, KS2 = 11, 4, 5
RM1, NPG1 = 12, 32  # conv1 thread tile: 12 channels; 8 channel groups x 32 pixel groups
RM2, NPG2 = 8, 8  # conv2 thread tile: 8 channels; 32 channel groups x 8 pixel groups
LRN_FFMA, LRN_FMUL = 5, 2  # per LRN output: 4 FFMA + 1 FMUL (sum of squares from 0) + 1 FFMA, 2 FMUL


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pad_k(k: int, kc: int = FUSED_KSTAGE) -> int:
    return _cdiv(k, kc) * kc


@dataclass
class FusedWork:
    """Thread-level instruction counts of one image (sums over all blocks of that image)."""

    conv1_macs: int = 0  # FFMA of the conv1 GEMM, padded slots and padded K included
    conv2_macs: int = 0
    conv1_exact_macs: int = 0  # the same passes with no empty slot and unpadded K: the pyramid's own work
    conv2_exact_macs: int = 0
    conv1_outputs: int = 0  # conv1 values written (ReLU epilogue: one FADD each for the bias)
    conv2_outputs: int = 0
    lrn1_outputs: int = 0
    lrn2_outputs: int = 0

    @property
    def gemm_macs(self) -> int:
        return self.conv1_macs + self.conv2_macs

    @property
    def exact_macs(self) -> int:
        return self.conv1_exact_macs + self.conv2_exact_macs

    @property
    def padding_macs(self) -> int:
        """FFMAs of empty register-tile slots and zero-padded K rows."""
        return self.gemm_macs - self.exact_macs

    @property
    def flops(self) -> int:
        """ncu's FADD + FMUL + 2 x FFMA for the same work."""
        lrn = self.lrn1_outputs + self.lrn2_outputs
        return 2 * self.gemm_macs + (self.conv1_outputs + self.conv2_outputs) + lrn * (2 * LRN_FFMA + LRN_FMUL)


def _conv1_slots(jmax: int, rn: int, exact: bool = True) -> int:
    """Register-tile width the conv1 pass instantiates for ``jmax`` pixels per thread: every width
    from rn/2 up (EXACT_R=1), or only rn/2, 5/6 rn and rn (the builds before EXACT_R)."""
    if exact:
        return max(jmax, max(rn // 2, 1))
    if jmax <= rn // 2:
        return max(rn // 2, 1)
    if jmax <= (5 * rn + 5) // 6:
        return (5 * rn + 5) // 6
    return rn


def _conv2_slots(jmax: int, rn: int, exact: bool = True) -> int:
    if exact:
        return max(jmax, (rn + 2) // 3)
    for r in ((rn + 2) // 3, (rn + 1) // 2, (2 * rn + 2) // 3):
        if jmax <= r:
            return r
    return rn


def fused_work(tile: Tile, strategy: str, height: int = 227, width: int = 227, chunk_rows: int | None = None,
               exact_slots: bool = True, lean_input: bool | None = None) -> FusedWork:  # fmt: skip
    """Count what ``fused-<strategy>-t<tile>`` executes for one image of ``height`` x ``width``.

    ``chunk_rows`` and ``lean_input`` default to the tile's build (registry.chunk_layout);
    ``exact_slots=False`` counts the builds before EXACT_R (the archived runs up to run3).
    """
    if strategy not in ("reuse", "recompute"):
        raise ValueError(f"fused_work: strategy must be 'reuse' or 'recompute', got {strategy!r}")
    layout_rows, layout_lean = chunk_layout(tile)
    ch = int(layout_rows if chunk_rows is None else chunk_rows)
    lean = layout_lean if lean_input is None else bool(lean_input)
    th_tile, tw_tile = tile_sides(tile)
    reuse, nt = strategy == "reuse", FUSED_THREADS
    h1, w1 = (height - KS1) // ST1 + 1, (width - KS1) // ST1 + 1
    hp1, wp1 = (h1 - 3) // 2 + 1, (w1 - 3) // 2 + 1
    hp2, wp2 = (hp1 - 3) // 2 + 1, (wp1 - 3) // 2 + 1
    c1w = 2 * (2 * tw_tile + 5) + 1
    rn1 = _cdiv(2 * ch * c1w, NPG1)
    rn2 = _cdiv((2 * th_tile + 1) * (2 * tw_tile + 1), NPG2)
    k1p, k2p = _pad_k(CIN * KS1 * KS1), _pad_k(C1G * KS2 * KS2)
    w = FusedWork()
    rows = [(a, b - a) for a, b in output_tiles(hp2, th_tile, "balanced")]
    for c0, c1 in output_tiles(wp2, tw_tile, "balanced"):
        tw = c1 - c0
        pc0, pc1 = max(0, 2 * c0 - 2), min(wp1 - 1, 2 * c0 + 2 * tw + 2)
        ncw1, ncw2 = 2 * (pc1 - pc0) + 3, 2 * tw + 1
        # reuse: one block walks every tile row; recompute: one block per tile row, each "first"
        walks = [list(enumerate(rows))] if reuse else [[(0, r)] for r in rows]
        for walk in walks:
            for step, (r0, th) in walk:
                first = step == 0
                pa = max(0, 2 * r0 - 2) if first else 2 * r0 + 3
                pb = min(hp1 - 1, 2 * r0 + 2 * th + 2)
                carry, q = not first, pa
                while q <= pb:
                    rf = 1 if carry else 0
                    rows_fit = (rn1 * NPG1) // ncw1
                    nq = min(ch - (1 if lean and not carry else 0), pb - q + 1, (rows_fit - 1 + rf) // 2)
                    if nq < 1:
                        raise ValueError(f"fused_work: tile {tile_label(tile)} leaves no room for a pool1 row")
                    nr1 = 2 * nq + 1 - rf
                    r = _conv1_slots(_cdiv(nr1 * ncw1, NPG1), rn1, exact_slots)
                    w.conv1_macs += nt * RM1 * r * k1p
                    w.conv1_exact_macs += C1 * nr1 * ncw1 * CIN * KS1 * KS1
                    w.conv1_outputs += C1 * nr1 * ncw1
                    w.lrn1_outputs += C1 * nr1 * ncw1
                    q, carry = q + nq, True
                nr2 = 2 * th + 1 - (1 if reuse and not first else 0)
                r = _conv2_slots(_cdiv(nr2 * ncw2, NPG2), rn2, exact_slots)
                w.conv2_macs += nt * RM2 * r * k2p
                w.conv2_exact_macs += C2 * nr2 * ncw2 * C1G * KS2 * KS2
                w.conv2_outputs += C2 * nr2 * ncw2
                w.lrn2_outputs += C2 * nr2 * ncw2
    return w
