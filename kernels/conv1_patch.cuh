// conv1 (3 -> 96 channels, 11x11, stride 4, no padding) on the tensor cores, its B operand read by
// ldmatrix from a shared-memory copy of the input patch: no gather, no k table (docs/perf-notes.md
// step 25). Used by lbl_tc.cu (the lbl conv1 entries) and fused_tc.cu (conv1 of every band, unless
// CONV1_S2D).
//
// k runs over (c, ky, kx) with kx padded from 11 to 16, so one k16 step (two k8 steps for TF32) is
// one input row segment: output pixel ox's 16 values of (c, ky) are the input row c, oy*4 + ky, columns 4*ox .. 4*ox+15,
// contiguous in the patch. K grows from 363 to 528 (the packed weights hold zeros at kx >= 11; the
// tensor cores have the slack), and a pixel's B fragment is one ldmatrix row per k half.
// ldmatrix needs 16-byte rows. 16-bit values: 4*ox values is 8*ox bytes, so the patch is held
// twice, copy 1 shifted by 4 columns; even pixels read copy 0 at 8*(ox/2) and odd pixels copy 1
// there. Copy 1 starts 64 bytes off copy 0 modulo 128: the 8 rows of an ldmatrix matrix (4 even, 4
// odd pixels) land on 32 distinct banks. TF32 (tc.cuh VS = 2): 4*ox values is 16*ox bytes, one copy,
// and a (c, ky) row of 16 values is two k steps of 8.
// CONV1_KX12 (TF32 only): kx padded to 12, not 16. A TF32 k8 step is two 16-byte ldmatrix rows of 4
// values (quads), and each quad of a (c, ky) row is contiguous in the patch on its own, so k runs over
// the 99 quads (c, ky, kx / 4) and a k step's two quads may lie in two (c, ky) rows: each lane reads
// its k half's quad. K 408 (51 k steps, the last 3 quads zero) for 528: a quarter fewer products and
// weight bytes per chunk (kernels/api.py pack_weights_kx12).
#pragma once
#include "tc.cuh"

#ifndef CONV1_KX12
#define CONV1_KX12 0
#endif
#if CONV1_KX12 && PREC != 3
#error "CONV1_KX12: TF32 only (its k8 step is two 4-value quads)"
#endif

namespace c1p {

constexpr int CIN = 3, KS = 11, S = 4, M = 96;
constexpr int KX = 16;                // kx padded: a (c, ky) row is VS k steps of 16 slots
constexpr int KQ = 3, NQUAD = CIN * KS * KQ;  // CONV1_KX12: quads of kx per (c, ky) row, and in all
constexpr int BK = 48;                // slots per weight stage: 3 k steps
// k steps: 33 (66 for TF32; CONV1_KX12: 99 quads in 51, whole stages)
constexpr int KSTEPS = CONV1_KX12 ? ((NQUAD + 1) / 2 + BK / 16 - 1) / (BK / 16) * (BK / 16) : CIN * KS * VS;
constexpr int KP = KSTEPS * 16;       // slots of a packed weight row (kernels/api.py pack_weights_kx16: 528 values)
constexpr int NSTAGE = KP / BK;       // 11 (22; CONV1_KX12: 17)
constexpr int LDA = WeightStageLDA<BK>;  // 112-byte weight rows: 8 ldmatrix rows on distinct banks
constexpr int COPIES = VS == 1 ? 2 : 1;  // patch copies (16-bit: the second shifted by 4 columns)
static_assert(KP % BK == 0 && BK % 16 == 0, "whole k steps per stage");

// The patch under RW output rows of NX columns (NX a multiple of 8): PR input rows x PWV values
// (PW slots, 16-byte rows) per channel, per copy. 16-bit: pixel NX-1 reads copy 1 up to
// 8*((NX-1)/2) + 15 = 4*NX + 7; TF32: up to 4*NX + 11.
template <int RW, int NX>
struct Patch {
    static_assert(NX % 8 == 0, "whole n8 tiles");
    static constexpr int PR = S * (RW - 1) + KS;
    static constexpr int PWV = VS == 1 ? S * NX + 8 : S * NX + 12;  // values per row: 16-byte rows
    static constexpr int PW = PWV * VS;
    static constexpr int CS = VS == 1 ? (CIN * PR * PW + 63) / 64 * 64 + 32 : CIN * PR * PW;  // copy stride (16-bit: 64 B off mod 128)
    static constexpr int HALVES = COPIES * CS;  // slots
};

// Diagnostic builds only, WRONG RESULTS by design (never in the registry; `pipeline.bench --set`
// times them and reports the failed check): a bit mask of conv1 work left out, to bound what each
// part costs (perf-notes steps 30, 31). 1: the fused kernel loads the input patch for a band's first
// chunk only; 2: no ring waits or part barriers after a chunk's first stage; 4: no ldmatrix or mma;
// 8: the weight (A) fragments loaded once per stage, not per k step; 16: the same for the patch (B)
// fragments; 32: no mma (the ldmatrix kept).
#ifndef CONV1_ABLATE
#define CONV1_ABLATE 0
#endif

// Rows a warp has in flight in load_patch (its loads before its stores). Each round trip waits on
// L2 or DRAM with no products to hide it (the patch is loaded between chunks), so the default takes
// all 9 of a warp's rows of the fused kernel's patch (69 rows, 8 warps) in one: 0.94-0.97x the time
// of 2 (perf-notes step 31); lbl's smaller patches have fewer rows a warp.
#ifndef CONV1_PATCH_RB
#define CONV1_PATCH_RB 9
#endif

// 1: load_patch moves 16-byte chunks (load_patch_vec) instead of one value per lane and load
#ifndef CONV1_PATCH_VEC
#define CONV1_PATCH_VEC 0
#endif

// The 16 bytes that start `sh` values into the 32 bytes (a, b), by uniform selects (no register
// array indexed at run time, which would go to local memory).
__device__ __forceinline__ uint4 shift_chunk(uint4 a, uint4 b, int sh) {
    const unsigned u[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    const int bytes = sh * (int)sizeof(val_t), wsh = bytes >> 2;
    unsigned v[6], t[5], o[4];
#pragma unroll
    for (int i = 0; i < 6; ++i) v[i] = (wsh & 2) ? u[i + 2] : u[i];
#pragma unroll
    for (int i = 0; i < 5; ++i) t[i] = (wsh & 1) ? v[i + 1] : v[i];
#pragma unroll
    for (int i = 0; i < 4; ++i) o[i] = (bytes & 2) ? __funnelshift_r(t[i], t[i + 1], 16) : t[i];
    return make_uint4(o[0], o[1], o[2], o[3]);
}

// Zero the values of chunk w (relative columns j0 .. j0 + 16 / sizeof(val_t) - 1) at columns >= jin;
// TF32: round the rest (load_patch's tf32_round).
__device__ __forceinline__ uint4 mask_chunk(uint4 w, int j0, int jin) {
    unsigned o[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#if PREC == 3
        o[i] = j0 + i < jin ? __float_as_uint(tf32_round(__uint_as_float(o[i]))) : 0u;
#else
        o[i] &= (j0 + 2 * i < jin ? 0xffffu : 0u) | (j0 + 2 * i + 1 < jin ? 0xffff0000u : 0u);
#endif
    }
    return make_uint4(o[0], o[1], o[2], o[3]);
}

// load_patch by 16-byte chunks: lane k of a row's warp stores the row's chunk k of each copy, shifted
// out of the aligned chunks k, k + 1 (and k + 2 for copy 1) of the input row, which starts at any
// value (227-value rows): three 16-byte loads per lane and row at 16 bits (two at TF32), where
// neighbouring lanes load the same chunks. A chunk with no value of the row segment (column < W) is
// not read; one that holds some is read whole, so at the input's two ends up to 14 bytes outside it
// are read, always within the 16-byte block of a value of it (device allocations are 256-byte
// aligned, so no fault; compute-sanitizer may flag them).
template <int RW, int NX, int NTHREADS, int RB>
__device__ __forceinline__ void load_patch_vec(h16* patch, const val_t* __restrict__ xn, int H, int W, int iy0,
                                               int ix0) {
    using P = Patch<RW, NX>;
    constexpr int E = 16 / (int)sizeof(val_t), NCH = P::PWV / E, NQ = (NCH + 31) / 32, NL = COPIES + 1;
    static_assert(P::PWV % E == 0 && P::PW % 8 == 0 && P::CS % 8 == 0, "16-byte chunks");
    constexpr int NWARP = NTHREADS / 32, ROWS = CIN * P::PR;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int jin = W - ix0;  // columns inside the map
#pragma unroll 1
    for (int cr0 = warp; cr0 < ROWS; cr0 += RB * NWARP) {
        uint4 v[RB][NQ][NL];
        int sh[RB];
#pragma unroll
        for (int b = 0; b < RB; ++b) {
            const int cr = cr0 + b * NWARP, c = cr / P::PR, iy = iy0 + cr - c * P::PR;
            const val_t* row = xn + ((size_t)c * H + iy) * W + ix0;
            sh[b] = (int)((reinterpret_cast<size_t>(row) & 15) / sizeof(val_t));
            const uint4* base = reinterpret_cast<const uint4*>(row - sh[b]);
            const bool live = cr < ROWS && iy < H;
#pragma unroll
            for (int q = 0; q < NQ; ++q)
#pragma unroll
                for (int l = 0; l < NL; ++l) {
                    const int g = lane + 32 * q + l;
                    v[b][q][l] = live && lane + 32 * q < NCH && E * g - sh[b] < jin ? __ldg(base + g) : make_uint4(0, 0, 0, 0);
                }
        }
#pragma unroll
        for (int b = 0; b < RB; ++b) {
            const int cr = cr0 + b * NWARP;
            if (cr >= ROWS) break;
#pragma unroll
            for (int q = 0; q < NQ; ++q) {
                const int k = lane + 32 * q;
                if (k >= NCH) continue;
                *reinterpret_cast<uint4*>(patch + cr * P::PW + 8 * k) =
                    mask_chunk(shift_chunk(v[b][q][0], v[b][q][1], sh[b]), E * k, jin);
#if PREC != 3
                // copy 1: columns 4 + 8k ..
                const uint4 c1 = sh[b] < 4 ? shift_chunk(v[b][q][0], v[b][q][1], sh[b] + 4)
                                           : shift_chunk(v[b][q][1], v[b][q][2], sh[b] - 4);
                *reinterpret_cast<uint4*>(patch + P::CS + cr * P::PW + 8 * k) = mask_chunk(c1, E * k + 4, jin);
#endif
            }
        }
    }
}

// Fill the patch from image xn (CIN x H x W): copy 0 at (c, r, j) holds input (c, iy0 + r, ix0 + j)
// (rounded to TF32 for PREC 3), copy 1 (16-bit) holds column ix0 + 4 + j; zero outside the map (the
// zero weights at kx >= 11 meet finite values only). A warp copies whole rows, RB rows at a time with all
// their loads in flight before any store: per-value index arithmetic (divisions by the row length)
// cost ~30 instructions per value, as much as the gather it replaces (ncu, perf-notes step 25).
// The patch loaders' reading: row cr = c * RPC + r (cr < CIN * RPC) is input row (c, iy0 + r), its
// values ix0 .. ix0 + JW - 1 (zero outside the map). A warp takes whole rows, RB at a time with all
// their loads in flight before store_row(cr, v) (v[q]: value lane + 32q) writes any of them.
template <int RPC, int JW, int NTHREADS, int RB, class StoreRow>
__device__ __forceinline__ void read_input_rows(const val_t* __restrict__ xn, int H, int W, int iy0, int ix0,
                                                StoreRow store_row) {
    constexpr int Q = (JW + 31) / 32, NWARP = NTHREADS / 32, ROWS = CIN * RPC;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int jin = W - ix0;  // columns inside the map
#pragma unroll 1
    for (int cr0 = warp; cr0 < ROWS; cr0 += RB * NWARP) {
        val_t v[RB][Q];
#pragma unroll
        for (int b = 0; b < RB; ++b) {
            const int cr = cr0 + b * NWARP, c = cr / RPC, iy = iy0 + cr - c * RPC;
            const int jmax = (cr < ROWS && iy < H) ? min(JW, jin) : 0;
            const val_t* src = xn + ((size_t)c * H + iy) * W + ix0;
#pragma unroll
            for (int q = 0; q < Q; ++q) {
                const int j = lane + 32 * q;
                v[b][q] = j < jmax ? __ldg(src + j) : (val_t)0;
            }
        }
#pragma unroll
        for (int b = 0; b < RB; ++b) {
            const int cr = cr0 + b * NWARP;
            if (cr >= ROWS) break;
            store_row(cr, v[b]);
        }
    }
}

template <int RW, int NX, int NTHREADS, int RB = CONV1_PATCH_RB>
__device__ __forceinline__ void load_patch(h16* patch, const val_t* __restrict__ xn, int H, int W, int iy0, int ix0) {
#if CONV1_PATCH_VEC
    load_patch_vec<RW, NX, NTHREADS, RB>(patch, xn, H, W, iy0, ix0);
#else
    using P = Patch<RW, NX>;
    constexpr int JW = P::PWV + (COPIES - 1) * 4, Q = (JW + 31) / 32;
    const int lane = threadIdx.x & 31;
    read_input_rows<P::PR, JW, NTHREADS, RB>(xn, H, W, iy0, ix0, [&](int cr, const val_t (&v)[Q]) {
        val_t* d0 = reinterpret_cast<val_t*>(patch + cr * P::PW);
#if PREC != 3
        val_t* d1 = d0 + P::CS - 4;  // copy 1: column j - 4
#endif
#pragma unroll
        for (int q = 0; q < Q; ++q) {
            const int j = lane + 32 * q;
#if PREC == 3
            if (j < P::PWV) d0[j] = tf32_round(v[q]);
#else
            if (j < P::PWV) d0[j] = v[q];
            if (j >= 4 && j < JW) d1[j] = v[q];
#endif
        }
    });
#endif
}

// Ask L2 for the input rows load_patch<RW, NX> would read at (iy0, ix0), one prefetch per 128-byte
// line of each row, so that a later chunk's load waits on L2 rather than DRAM (asking L1 instead
// measured no different, perf-notes step 32). Rows past the map are left out; nothing waits for the
// prefetches.
template <int RW, int NX, int NTHREADS>
__device__ __forceinline__ void prefetch_patch(const val_t* __restrict__ xn, int H, int W, int iy0, int ix0) {
    using P = Patch<RW, NX>;
    constexpr int JW = P::PWV + (COPIES - 1) * 4, ROWS = CIN * P::PR;
    constexpr int VPL = 128 / sizeof(val_t), LINES = (JW + VPL - 1) / VPL + 1;  // an unaligned row's lines
    const int jlast = min(JW, W - ix0) - 1;
    for (int e = threadIdx.x; e < ROWS * LINES; e += NTHREADS) {
        const int cr = e / LINES, l = e - cr * LINES, c = cr / P::PR, iy = iy0 + cr - c * P::PR;
        if (iy < H && jlast >= 0) {
            const val_t* line = xn + ((size_t)c * H + iy) * W + ix0 + min(l * VPL, jlast);
            asm volatile("prefetch.global.L2 [%0];" ::"l"(line));
        }
    }
}

// The warp's place in a block of MW x RW x CW warps: its m part's output channels (16 MT: 48 by
// default, 3 m16 tiles) of the block's, output row rw, columns cw*NT8W*8 .. + NT8W*8.
template <int MW, int RW>
struct WarpPlace {
    int mw, rw, cw;
    __device__ __forceinline__ WarpPlace() {
        const int warp = threadIdx.x >> 5;
        mw = warp % MW;
        rw = (warp / MW) % RW;
        cw = warp / (MW * RW);
    }
};

// Each m part (the warps of one mw, 16 MT channels: 48 by default) streams its weight rows through its
// own ring and syncs on its own named barrier 3 + mw (tc.cuh PartRing).
template <int MW, int NTHREADS, int MT = 3>
using PartStage = PartRing<16 * MT, BK, KP, NTHREADS, MW, 3>;

// The first NS - 1 weight stages (rows m0 .. m0 + 16 MT MW) go out here, before the caller loads the
// patch, so their latency overlaps the patch's; conv1_patch_mma issues the rest.
template <int MW, int NS, int NTHREADS, int MT = 3>
__device__ __forceinline__ void conv1_patch_prologue(h16* a_ring, const val_t* __restrict__ w, int m0) {
    using PS = PartStage<MW, NTHREADS, MT>;
    const auto ws = PS::stage(m0);
    h16* ring = PS::template ring<NS>(a_ring);
#pragma unroll
    for (int t = 0; t < NS - 1; ++t) ws.template issue<NS>(ring, reinterpret_cast<const h16*>(w), t);
}

// acc[i][j] = the warp's 16 MT channels x NT8W n8 tiles of conv1 over all of K: weights w (rows m0 ..
// m0 + 16 MT MW of the packed [96][528] values) streamed through an NS-deep ring of cp.async stages
// (a_ring: NS * 16 MT MW * LDA slots; conv1_patch_prologue issued the first NS - 1), B from the patch
// (load_patch, visible after the first barrier here). Every thread of the block calls it, in the
// order prologue, load_patch, conv1_patch_mma; the caller syncs before reusing the patch or the ring.
// The stage loop is unrolled: every patch row offset is an immediate (rolled, it measured 1.08x the
// time, perf-notes step 32).
template <int MW, int RW, int CW, int NT8W, int NS, int NTHREADS, int MT = 3>
__device__ __forceinline__ void conv1_patch_mma(float (&acc)[MT][NT8W][4], const h16* patch, h16* a_ring,
                                                const val_t* __restrict__ wv, int m0) {
    static_assert(MW * RW * CW * 32 == NTHREADS, "one warp per (m half, row, column group)");
    static_assert(NS >= 2 && NS <= NSTAGE, "ring depth");
    using P = Patch<RW, CW * NT8W * 8>;
    using PS = PartStage<MW, NTHREADS, MT>;
    const int lane = threadIdx.x & 31;
    const WarpPlace<MW, RW> wp;
    const auto ws = PS::stage(m0);
    h16* ring = PS::template ring<NS>(a_ring);
    const h16* w = reinterpret_cast<const h16*>(wv);

    // ldmatrix row of this lane for n-tile pair jp: pixel jp*16 + (lane&7) + 8*(lane>>4), k half (lane>>3)&1
    int boff[(NT8W + 1) / 2];
#pragma unroll
    for (int jp = 0; jp < (NT8W + 1) / 2; ++jp) {
        const int ox = wp.cw * NT8W * 8 + jp * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int col = VS == 1 ? (ox & 1) * P::CS + 8 * (ox >> 1) : 8 * ox;  // slot of input column 4*ox
        boff[jp] = col + (CONV1_KX12 ? 0 : ((lane >> 3) & 1) * 8) + wp.rw * S * P::PW;
    }
#if CONV1_KX12
    const int khalf = (lane >> 3) & 1;  // this lane's k half of an ldmatrix (its quad of a k step)
#endif
    // slot of input row (c, ky) of the warp's output row in the patch; cky = c * KS + ky
    auto row_off = [](int cky) {
        const int c = cky / KS;
        return (c * P::PR + cky - c * KS) * P::PW;
    };
    zero_acc(acc);
#pragma unroll
    for (int t = 0; t < NSTAGE; ++t) {
        if (t == 0 || !(CONV1_ABLATE & 2)) cp_async_wait<NS - 2>();  // stage t landed (later ones may be in flight)
        if (t == 0)
            __syncthreads();  // ... for every thread (all of them wrote the patch); the patch is visible
        else if (!(CONV1_ABLATE & 2))
            PS::sync();  // ... for every thread of the part; stage t - 1's slot is free
        ws.template issue<NS>(ring, w, t + NS - 1);
        const h16* a0 = ring + (t % NS) * 16 * MT * LDA;
#if !(CONV1_ABLATE & 4)
        unsigned a[MT][4], b[NT8W][2];
#endif
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            const int s = t * (BK / 16) + kk;
#if CONV1_KX12
            // this lane's k half: quad 2s or 2s + 1 (past the last: any valid one, its weights are zero)
            auto quad_off = [&](int q) {
                q = q < NQUAD ? q : NQUAD - 1;
                return row_off(q / KQ) + (q % KQ) * 8;
            };
            const int roff = quad_off(2 * s) + khalf * (quad_off(2 * s + 1) - quad_off(2 * s));
#else
            // row (c, ky) = s / VS; TF32: its second 8 columns in odd steps
            const int roff = row_off(s / VS) + (s % VS) * 16;
#endif
#if !(CONV1_ABLATE & 4)
#pragma unroll
            for (int i = 0; i < MT; ++i)
                if (!(CONV1_ABLATE & 8) || kk == 0)
                    ldmatrix_x4(a[i], a0 + (i * 16 + (lane & 15)) * LDA + kk * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int j = 0; j < NT8W; j += 2) {
                if ((CONV1_ABLATE & 16) && kk > 0) break;
                if (j + 1 < NT8W) {
                    unsigned r[4];
                    ldmatrix_x4(r, patch + boff[j / 2] + roff);
                    b[j][0] = r[0];
                    b[j][1] = r[1];
                    b[j + 1][0] = r[2];
                    b[j + 1][1] = r[3];
                } else {  // a last odd n-tile: lanes 0-15's rows only
                    ldmatrix_x2(b[j], patch + boff[j / 2] + roff);
                }
            }
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT8W; ++j)
                    if (!(CONV1_ABLATE & 32)) mma_kstep(acc[i][j], a[i], b[j]);
#else
            (void)roff, (void)a0;
#endif
        }
    }
    cp_async_wait<0>();
}

}  // namespace c1p
