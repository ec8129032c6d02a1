// Fused AlexNet front end (variants `fused-reuse-t<tile>` and `fused-recompute-t<tile>`, tile = T or
// RxC): ONE kernel for conv1 -> relu -> LRN -> pool1 -> conv2(groups 2) -> relu -> LRN -> pool2.
// Intermediates live in shared memory only; device memory sees the input, the weights (L2-resident)
// and pool2.
//
// A block (256 threads) owns a TILE_Y x TILE_X tile of pool2 (T x T, or 2 x 7) for one image and all
// 256 channels.
//   recompute (REUSE=0): grid (tiles_x, tiles_y, N); each block builds its whole pyramid.
//   reuse     (REUSE=1): grid (tiles_x, 1, N); the block walks its column strip top to bottom and
//                        keeps, from the tile above, the 5 overlapping pool1 rows, the conv1 row and
//                        the conv2 row that the 3x3/2 pools share (reuse_axes=("y",)).
// Per step: pool1 rows are produced in chunks of CHUNK_ROWS: the input patch is staged in shared
// memory, conv1 (implicit GEMM, 12 ch x RN1 px per thread) fills a (2*CH+1)-row line buffer whose
// first row is the row carried from the previous chunk, then ReLU, LRN, 3x3/2 max pool into the
// pool1 tile (which carries conv2's zero padding). conv2 is one implicit GEMM over the step's conv2
// rows (8 ch x RN2 px per thread, weights staged through shared memory in K chunks of 16 with
// cp.async double buffering), then ReLU, LRN and pool2 straight to global memory.
//
// Compile-time: TILE_Y, TILE_X (or TILE for both), REUSE, CHUNK_ROWS, LEAN_INPUT, KSTAGE, KUNROLL
// and EXPECT_SMEM_BYTES (kernels/registry.py computes the shared-memory layout in Python; the
// static_assert below keeps the two in step).
// Run-time: N, H, W, channel counts (checked against the compiled tiling), LRN alpha/beta/k.
#include "common.cuh"

#ifndef TILE
#define TILE 4
#endif
#ifndef TILE_X  // pool2 tile width (columns of a strip); defaults to the square TILE
#define TILE_X TILE
#endif
#ifndef TILE_Y  // pool2 tile height (rows per step)
#define TILE_Y TILE
#endif
#ifndef LEAN_INPUT  // 1: a chunk without a carried row makes one pool1 row fewer, so the input patch
#define LEAN_INPUT 0  // needs 4 rows fewer (what lets the wide 2x7 tile fit)
#endif
#ifndef REUSE
#define REUSE 1
#endif
#ifndef CHUNK_ROWS  // pool1 rows per conv1 line-buffer chunk (kernels/registry.py FUSED_CHUNK_ROWS)
#define CHUNK_ROWS 3
#endif
#ifndef KSTAGE
#define KSTAGE 16  // K per weight stage
#endif
#ifndef PHASE_TIMING
#define PHASE_TIMING 0
#endif

#ifndef KUNROLL
#define KUNROLL KSTAGE  // k steps unrolled in the GEMM loop (a stage is KSTAGE steps)
#endif

namespace fz {

// Phase timing (-DPHASE_TIMING=1; the timed and profiled builds leave it off): thread 0 reads the SM
// clock right after each barrier that ends a phase and adds the cycles since the previous mark to
// fused_phase_cycles[phase] (pipeline/phases.py turns them into shares of the kernel's time). Only
// marks that follow a __syncthreads are placed, so the block, not thread 0 alone, has finished the
// phase. The last counter counts blocks. pipeline/phases.py reads the phase names from this enum.
enum Phase { PH_SHIFT, PH_CONV1, PH_NORM1, PH_POOL1, PH_CONV2, PH_NORM2, PH_POOL2, NPHASE };
#if PHASE_TIMING
}  // namespace fz
extern "C" {
__device__ unsigned long long fused_phase_cycles[fz::NPHASE + 1];  // C name: the host reads it by name
}
namespace fz {
#endif
#define PHASE_MARK(p) PHASE_MARK_INTO(fused_phase_cycles, p, s_phase_t)  // common.cuh; nothing in production

constexpr int NT = 256;
constexpr int CIN = 3, C1 = 96, C2 = 256, G2 = 2;
constexpr int C1G = C1 / G2;  // conv2 input channels per group
constexpr int C2G = C2 / G2;  // conv2 output channels per group
constexpr int KS1 = 11, ST1 = 4, KS2 = 5;
constexpr int HALO = (LRN_SIZE - 1) / 2;
constexpr int TX = TILE_X, TY = TILE_Y, CH = CHUNK_ROWS;
constexpr int P1H = 2 * TY + 5, P1W = 2 * TX + 5;  // pool1 tile, incl. conv2's 2-pixel zero padding
constexpr int P1A = P1H * P1W;                      // pool1 tile area (one channel)
constexpr int C1W = 2 * P1W + 1;         // widest conv1 row segment (4TX + 11)
constexpr int C1R = 2 * CH + 1;          // conv1 rows per chunk buffer (row 0 = carried row)
constexpr int XH = ST1 * (C1R - 1 - LEAN_INPUT) + KS1;  // input rows staged per chunk
constexpr int XW = ST1 * (C1W - 1) + KS1;  // input cols staged per chunk
constexpr int C2H = 2 * TY + 1, C2W = 2 * TX + 1;  // conv2 tile
static_assert(!LEAN_INPUT || CH >= 2, "LEAN_INPUT needs chunks of at least 2 pool1 rows");
constexpr int KC = KSTAGE;                // K per weight stage
constexpr int K1 = CIN * KS1 * KS1;      // 363
constexpr int K1P = (K1 + KC - 1) / KC * KC;
constexpr int K2 = C1G * KS2 * KS2;      // 1200
constexpr int K2P = (K2 + KC - 1) / KC * KC;

constexpr int al32(int v) { return (v + 31) / 32 * 32; }
constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int SZ_P1 = al32(C1 * P1A);
constexpr int SZ_C1KEEP = al32(C1 * C1W);
constexpr int SZ_C2KEEP = REUSE ? al32(C2 * C2W) : 0;
constexpr int SZ_C1 = al32(C1 * C1R * C1W);
constexpr int SZ_X = al32(CIN * XH * XW);
constexpr int SZ_C2 = al32(C2 * C2H * C2W);
constexpr int SZ_WS1 = 2 * KC * C1, SZ_WS2 = 2 * KC * C2;  // double-buffered weight stages
// The conv1 phase {line buffer, input patch, conv1 weight stage} and the conv2 phase {conv2 tile,
// conv2 weight stage} share one region (a barrier separates the phases).
constexpr int SZ_U = cmax(SZ_C1 + SZ_X + SZ_WS1, SZ_C2 + SZ_WS2);
constexpr int OFF_P1 = 0;
constexpr int OFF_C1KEEP = OFF_P1 + SZ_P1;
constexpr int OFF_C2KEEP = OFF_C1KEEP + SZ_C1KEEP;
constexpr int OFF_U = OFF_C2KEEP + SZ_C2KEEP;
constexpr int SMEM_BYTES = 4 * (OFF_U + SZ_U);
#ifdef EXPECT_SMEM_BYTES
static_assert(SMEM_BYTES == EXPECT_SMEM_BYTES, "kernels/registry.py fused_smem_bytes() disagrees with fused.cu");
#endif

// Thread tiles. conv1: 8 channel groups x 32 pixel groups; conv2: 32 channel groups x 8 pixel groups.
// RM1 and RM2 are also registry.FUSED_RM: the host interleaves the weights by these channel groups.
constexpr int RM1 = 12, NCG1 = C1 / RM1, NPG1 = NT / NCG1;
// Sized for the steady-state chunk (2*CH new rows); a chunk without a carried row shrinks nq to fit.
constexpr int RN1 = (2 * CH * C1W + NPG1 - 1) / NPG1;
static_assert(RN1 * NPG1 >= 3 * C1W, "a conv1 chunk must hold at least one pool1 row without a carry");
constexpr int RM2 = 8, NCG2 = C2 / RM2, NPG2 = NT / NCG2, RN2 = (C2H * C2W + NPG2 - 1) / NPG2;
static_assert(NCG1 * RM1 == C1 && NCG2 * RM2 == C2, "thread tiles must cover the channels");
static_assert(C2G % RM2 == 0, "a thread's conv2 channels must sit in one group");

// k -> source offset of the two implicit GEMMs (conv1: [ci][kh][kw] in the staged input patch;
// conv2: [ci][kh][kw] in a group's pool1 tile; padded k read offset 0 against zero weights). Fixed
// at compile time, so it lives in constant memory: the k loop index is warp-uniform, the offset
// lands in a uniform register and each pixel's shared load is [pixel pointer + uniform offset],
// with no per-pixel address arithmetic.
struct KoffTable {
    int v[K1P + K2P];
};
constexpr KoffTable make_koff() {
    KoffTable t{};
    for (int k = 0; k < K1P + K2P; ++k) {
        int o = 0;
        if (k < K1) {
            const int ci = k / (KS1 * KS1), r = k % (KS1 * KS1);
            o = ci * XH * XW + (r / KS1) * XW + r % KS1;
        } else if (k >= K1P && k - K1P < K2) {
            const int kk = k - K1P, ci = kk / (KS2 * KS2), r = kk % (KS2 * KS2);
            o = ci * P1A + (r / KS2) * P1W + r % KS2;
        }
        t.v[k] = 4 * o;  // bytes
    }
    return t;
}
__constant__ KoffTable c_koff = make_koff();

// acc[RM][RN] = sum_k W[k][m0+i] * src[koff[k] + poff[j]]; W streamed from global ([nchunks*KC][M],
// k-major, channel groups interleaved) through a double-buffered shared stage; koff is in constant
// memory. Ends with a barrier (ws free, src still valid).
template <int M, int RM, int RN>
__device__ __forceinline__ void block_gemm(float (&acc)[RM][RN], const float* __restrict__ wg, int nchunks, float* ws,
                                           const int* koff, const float* src, const int (&poff)[RN], int m0) {
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j) acc[i][j] = 0.f;
    const char* sp[RN];
#pragma unroll
    for (int j = 0; j < RN; ++j) sp[j] = reinterpret_cast<const char*>(src + poff[j]);
    // A k row of W is stored as [RM/4][M/RM][4] (kernels/api.py interleave_channel_groups): the 8
    // lanes of a quarter warp (8 channel groups) read one float4 each from 128 contiguous bytes, one
    // wavefront per phase. Row-major [M] gave the conv2 tile (32-byte lane stride) two per phase;
    // shared-load wavefronts, not FFMAs, bound the small register tiles.
    constexpr int V4 = KC * M / 4, NCG = M / RM;
    auto stage = [&](int kc, float* dst) {
        const float4* s = reinterpret_cast<const float4*>(wg + (size_t)kc * KC * M);
#pragma unroll
        for (int i = 0; i < (V4 + NT - 1) / NT; ++i) {  // fixed trip count: immediate offsets, no loop
            const int v = threadIdx.x + i * NT;
            if (V4 % NT == 0 || v < V4) cp_async16(reinterpret_cast<float4*>(dst) + v, s + v);
        }
        cp_async_commit();
    };
    stage(0, ws);
    for (int kc = 0; kc < nchunks; ++kc) {
        if (kc + 1 < nchunks) {
            stage(kc + 1, ws + ((kc + 1) & 1) * KC * M);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const float* w = ws + (kc & 1) * KC * M + (m0 / RM) * 4;
        const int* ko = koff + kc * KC;
        for_k_unrolled<KC, KUNROLL>([&](int kk) {
            const int o = ko[kk];
            float a[RM], b[RN];
#pragma unroll
            for (int q = 0; q < RM / 4; ++q) {
                const float4 v = *reinterpret_cast<const float4*>(w + kk * M + q * NCG * 4);
                a[4 * q] = v.x; a[4 * q + 1] = v.y; a[4 * q + 2] = v.z; a[4 * q + 3] = v.w;
            }
#pragma unroll
            for (int j = 0; j < RN; ++j) b[j] = *reinterpret_cast<const float*>(sp[j] + o);
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        });
        __syncthreads();
    }
}

template <int V>
struct Int {
    static constexpr int value = V;
};

// Call f(Int<R>) with the smallest R in [R, RHI] that holds jmax pixel slots.
template <int R, int RHI, class F>
__device__ __forceinline__ void with_slots(int jmax, F&& f) {
    if constexpr (R >= RHI) {
        f(Int<RHI>{});
    } else {
        if (jmax <= R) f(Int<R>{});
        else with_slots<R + 1, RHI>(jmax, f);
    }
}

// One conv GEMM pass over `np` pixels (rows r0.. of width ncw) with R pixel slots per thread; the
// caller instantiates R to fit the pass (with_slots), so clipped tiles (the narrow last strip, the
// short last step) do not pay FFMAs for empty slots. Result: relu(acc + bias).
template <int M, int RM, int R, int NPG, int SRC_ROW, int SRC_COL, int DST_CH, int DST_ROW>
__device__ __forceinline__ void conv_pass(const float* __restrict__ wg, int nchunks, const float* __restrict__ bias,
                                          float* ws, const int* koff, const float* src, float* dst, int pxg, int m0,
                                          int r0, int nr, int ncw) {
    int poff[R], prow[R], pcol[R];
#pragma unroll
    for (int j = 0; j < R; ++j) {
        const int p = pxg + NPG * j;
        prow[j] = p < nr * ncw ? r0 + p / ncw : -1;
        pcol[j] = p % ncw;
        poff[j] = prow[j] >= 0 ? SRC_ROW * prow[j] + SRC_COL * pcol[j] : 0;
    }
    float acc[RM][R];
    block_gemm<M, RM, R>(acc, wg, nchunks, ws, koff, src, poff, m0);
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const float b = __ldg(bias + m0 + i);
#pragma unroll
        for (int j = 0; j < R; ++j)
            if (prow[j] >= 0) dst[(m0 + i) * DST_CH + prow[j] * DST_ROW + pcol[j]] = fmaxf(acc[i][j] + b, 0.f);
    }
}

template <int R>
__device__ __forceinline__ void conv1_pass(const float* w1p, const float* b1, float* ws, const int* koff1,
                                           const float* xin, float* c1b, int pxg, int m0, int r0, int nr, int ncw) {
    conv_pass<C1, RM1, R, NPG1, ST1 * XW, ST1, C1R * C1W, C1W>(w1p, K1P / KC, b1, ws, koff1, xin, c1b, pxg, m0, r0,
                                                                nr, ncw);
}

template <int R>
__device__ __forceinline__ void conv2_pass(const float* w2p, const float* b2, float* ws, const int* koff2,
                                           const float* p1g, float* c2b, int pxg, int m0, int r0, int nr, int ncw) {
    conv_pass<C2, RM2, R, NPG2, P1W, 1, C2H * C2W, C2W>(w2p, K2P / KC, b2, ws, koff2, p1g, c2b, pxg, m0, r0, nr, ncw);
}

// Across-channel LRN in place on buf[ch*chstride + r*rowstride + c], rows [r0, r0+nrows), cols
// [0, ncols). A thread takes 32 channels of one pixel plus HALO on each side into registers; all
// segments of a pixel are in the same round, and a barrier separates a round's reads from its
// writes, so no thread reads a value another has already normalised. Ends with a barrier.
template <int C>
__device__ __forceinline__ void lrn_inplace(float* buf, int chstride, int rowstride, int r0, int nrows, int ncols,
                                            float alpha_over_n, float beta, float kparam) {
    constexpr int NSEG = C / 32, PPR = NT / NSEG, NV = 32 + 2 * HALO;
    const int npix = nrows * ncols;
    // A warp takes 32 neighbouring pixels of one channel segment: its loads and stores of a channel
    // hit 32 consecutive floats. (The segments of one pixel as neighbouring lanes put a warp's lanes
    // on the same bank, the channel stride being a multiple of 32 floats: 3-8-way conflicts.)
    const int seg = threadIdx.x / PPR, pl = threadIdx.x % PPR;
    for (int base = 0; base < npix; base += PPR) {
        const int p = base + pl;
        const bool act = seg < NSEG && pl < PPR && p < npix;
        float v[NV];
        float* ptr = buf;
        if (act) {
            const int r = r0 + p / ncols, c = p % ncols;
            ptr = buf + r * rowstride + c;
#pragma unroll
            for (int i = 0; i < NV; ++i) {
                const int ch = seg * 32 - HALO + i;
                v[i] = (ch >= 0 && ch < C) ? ptr[ch * chstride] : 0.f;
            }
        }
        __syncthreads();
        if (act) {
#pragma unroll
            for (int i = 0; i < 32; ++i) {
                float s = 0.f;
#pragma unroll
                for (int d = 0; d < 2 * HALO + 1; ++d) s = fmaf(v[i + d], v[i + d], s);
                ptr[(seg * 32 + i) * chstride] = lrn_value(v[i + HALO], s, alpha_over_n, beta, kparam);
            }
        }
        __syncthreads();
    }
}

// Tiles of a map side of n pool2 pixels: ceil(n/T) tiles (the grid's count), sizes as even as
// possible (13 -> 4,3,3,3, not 4,4,4,1): no tile is left with a 1-wide sliver whose clipped GEMM
// runs at a quarter of the register tile.
template <int T>
__device__ __forceinline__ int tile_start(int i, int n) {
    const int nt = (n + T - 1) / T, base = n / nt, extra = n % nt;
    return i * base + min(i, extra);
}
template <int T>
__device__ __forceinline__ int tile_size(int i, int n) {
    const int nt = (n + T - 1) / T, base = n / nt, extra = n % nt;
    return base + (i < extra ? 1 : 0);
}

__device__ __forceinline__ void fused_body(const float* __restrict__ x, const float* __restrict__ w1p,
                                           const float* __restrict__ b1, const float* __restrict__ w2p,
                                           const float* __restrict__ b2, float* __restrict__ out, int N, int H,
                                           int W, int cin, int c1, int c2, float alpha, float beta, float kparam,
                                           int images_per_group) {
    if (cin != CIN || c1 != C1 || c2 != C2 || dynamic_smem_bytes() < (unsigned)SMEM_BYTES || images_per_group < 1)
        return;  // host checks first
    extern __shared__ __align__(16) float smem[];
#if PHASE_TIMING
    __shared__ long long s_phase_t;
    if (threadIdx.x == 0) {
        s_phase_t = clock64();
        atomicAdd(&fused_phase_cycles[NPHASE], 1ull);
    }
#endif
    float* p1 = smem + OFF_P1;
    float* c1keep = smem + OFF_C1KEEP;
    float* c2keep = smem + OFF_C2KEEP;
    float* c1b = smem + OFF_U;
    float* xin = smem + OFF_U + SZ_C1;
    float* ws1 = smem + OFF_U + SZ_C1 + SZ_X;
    float* c2b = smem + OFF_U;
    float* ws2 = smem + OFF_U + SZ_C2;
    const int* koff1 = c_koff.v;
    const int* koff2 = c_koff.v + K1P;

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int H1 = (H - KS1) / ST1 + 1, W1 = (W - KS1) / ST1 + 1;
    const int HP1 = (H1 - 3) / 2 + 1, WP1 = (W1 - 3) / 2 + 1;
    const int HP2 = (HP1 - 3) / 2 + 1, WP2 = (WP1 - 3) / 2 + 1;  // conv2 keeps HP1 x WP1
    // Block order. The hardware starts blocks in linear order (x fastest). Tile-by-tile within groups
    // of `images_per_group` images (every image's tile 0, then every image's tile 1, ...) starts the
    // larger tiles (the balanced split puts them first) before the smaller ones, so the last wave is
    // not a ragged mix of both; a group of about one wave keeps an image's tiles running together,
    // sharing its input in L2. images_per_group = 1 is the plain image-by-image order.
    const int ntiles = gridDim.x * gridDim.y;
    const int lin = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int g0 = lin / (ntiles * images_per_group) * images_per_group;
    const int gsz = min(images_per_group, N - g0);
    const int tile = (lin - g0 * ntiles) / gsz;
    const int n = g0 + (lin - g0 * ntiles) % gsz;
    const int bx = tile % gridDim.x, by = tile / gridDim.x;
    const int C0 = tile_start<TX>(bx, WP2), tw = tile_size<TX>(bx, WP2);
    const float alpha_over_n = alpha / LRN_SIZE;

    // Column geometry of this strip (fixed for the whole walk).
    const int P1X0 = 2 * C0 - 2;                       // image col of pool1 tile col 0
    const int pc0 = max(0, P1X0), pc1 = min(WP1 - 1, 2 * C0 + 2 * tw + 2);
    const int ncw1 = 2 * (pc1 - pc0) + 3;              // conv1 cols computed
    const int ncw2 = 2 * tw + 1;                       // conv2 cols computed
    const int xcols = ST1 * (ncw1 - 1) + KS1;

    for (int e = tid; e < SZ_P1; e += NT) p1[e] = 0.f;
    __syncthreads();
    PHASE_MARK(PH_SHIFT);

    const int chg1 = lane % 8, pxg1 = warp * 4 + lane / 8;
    const int chg2 = (warp % 4) * 8 + lane % 8, pxg2 = (warp / 4) * 4 + lane / 8;
    const int m01 = chg1 * RM1, m02 = chg2 * RM2;
    const float* p1g = p1 + (m02 / C2G) * C1G * P1A;  // conv2 group's pool1 channels

    const int nsteps = REUSE ? (HP2 + TY - 1) / TY : 1;
    for (int step = 0; step < nsteps; ++step) {
        const int ty = REUSE ? step : by;
        const int R0 = tile_start<TY>(ty, HP2), th = tile_size<TY>(ty, HP2);
        const int th_prev = REUSE && step > 0 ? tile_size<TY>(step - 1, HP2) : 0;
        const bool first = step == 0;
        const int P1Y0 = 2 * R0 - 2;
        if (!first) {  // reuse: the tile above's last 5 pool1 rows (from 2*th_prev) become rows 0..4
            for (int r = 0; r < 5; ++r) {
                for (int e = tid; e < C1 * P1W; e += NT) {
                    const int ch = e / P1W, c = e % P1W;
                    p1[ch * P1A + r * P1W + c] = p1[ch * P1A + (2 * th_prev + r) * P1W + c];
                }
                __syncthreads();
            }
            for (int e = tid; e < C1 * (P1H - 5) * P1W; e += NT) {
                const int ch = e / ((P1H - 5) * P1W), rc = e % ((P1H - 5) * P1W);
                p1[ch * P1A + 5 * P1W + rc] = 0.f;
            }
            __syncthreads();
            PHASE_MARK(PH_SHIFT);
        }
        // ---- conv1 -> relu -> LRN -> pool1, chunk by chunk ------------------------------------
        const int pa = first ? max(0, P1Y0) : 2 * R0 + 3;
        const int pb = min(HP1 - 1, 2 * R0 + 2 * th + 2);
        bool carry = !first;  // c1keep holds conv1 row 2*pa
        for (int q = pa, nq = 0; q <= pb; q += nq) {
            const int rf = carry ? 1 : 0;
            const int rows_fit = (RN1 * NPG1) / ncw1;  // conv1 rows one GEMM pass holds
            nq = min(min(CH - (LEAN_INPUT && !carry ? 1 : 0), pb - q + 1), (rows_fit - 1 + rf) / 2);
            // LEAN_INPUT: a chunk with a carried row skips the input rows only that row needs; its
            // patch starts one conv1 row lower and the GEMM reads it through a pointer moved up a row.
            const int xskip = LEAN_INPUT && carry ? ST1 : 0;
            const int xrows = ST1 * 2 * nq + KS1 - xskip;
            for (int rr = warp; rr < CIN * xrows; rr += NT / 32) {  // a warp per input row: no per-element division
                const int ci = rr / xrows, r = rr - ci * xrows;
                const float* g = x + (((size_t)n * CIN + ci) * H + (8 * q + xskip + r)) * W + 8 * pc0;
                float* d = xin + ci * XH * XW + r * XW;
                for (int c = lane; c < xcols; c += 32) cp_async4(d + c, g + c);
            }
            cp_async_commit();  // all loads in flight at once; block_gemm's first wait covers this group
            if (carry)
                for (int e = tid; e < C1 * ncw1; e += NT) {
                    const int ch = e / ncw1, c = e % ncw1;
                    c1b[ch * C1R * C1W + c] = c1keep[ch * C1W + c];
                }
            const int nr1 = 2 * nq + 1 - rf;
            {
                const int jmax = (nr1 * ncw1 + NPG1 - 1) / NPG1;  // same for every thread
                auto pass = [&](auto rn) {
                    constexpr int R = decltype(rn)::value;
                    conv1_pass<R>(w1p, b1, ws1, koff1, xin - xskip * XW, c1b, pxg1, m01, rf, nr1, ncw1);
                };
                with_slots<(RN1 / 2 > 0 ? RN1 / 2 : 1), RN1>(jmax, pass);
            }
            __syncthreads();
            PHASE_MARK(PH_CONV1);  // input staging, carried row and the conv1 GEMM
            lrn_inplace<C1>(c1b, C1R * C1W, C1W, rf, nr1, ncw1, alpha_over_n, beta, kparam);
            PHASE_MARK(PH_NORM1);
            const int npc = pc1 - pc0 + 1;
            for (int e = tid; e < C1 * nq * npc; e += NT) {
                const int ch = e / (nq * npc), jc = e % (nq * npc);
                const int j = jc / npc, pcl = jc % npc;
                const float* s = c1b + ch * C1R * C1W + (2 * j) * C1W + 2 * pcl;
                float m = s[0];
#pragma unroll
                for (int dy = 0; dy < 3; ++dy)
#pragma unroll
                    for (int dx = 0; dx < 3; ++dx) m = fmaxf(m, s[dy * C1W + dx]);
                p1[ch * P1A + (q + j - P1Y0) * P1W + (pc0 + pcl - P1X0)] = m;
            }
            for (int e = tid; e < C1 * ncw1; e += NT) {
                const int ch = e / ncw1, c = e % ncw1;
                c1keep[ch * C1W + c] = c1b[ch * C1R * C1W + (2 * nq) * C1W + c];
            }
            __syncthreads();
            PHASE_MARK(PH_POOL1);
            carry = true;
        }
        // ---- conv2 -> relu -> LRN -> pool2 --------------------------------------------------------
        const int rf2 = (REUSE && !first) ? 1 : 0;
        if (REUSE && rf2)
            for (int e = tid; e < C2 * ncw2; e += NT) {
                const int ch = e / ncw2, c = e % ncw2;
                c2b[ch * C2H * C2W + c] = c2keep[ch * C2W + c];
            }
        const int nr2 = 2 * th + 1 - rf2;
        {
            const int jmax = (nr2 * ncw2 + NPG2 - 1) / NPG2;  // same for every thread
            auto pass = [&](auto rn) {
                constexpr int R = decltype(rn)::value;
                conv2_pass<R>(w2p, b2, ws2, koff2, p1g, c2b, pxg2, m02, rf2, nr2, ncw2);
            };
            with_slots<(RN2 + 2) / 3, RN2>(jmax, pass);
        }
        __syncthreads();
        PHASE_MARK(PH_CONV2);  // carried row and the conv2 GEMM
        lrn_inplace<C2>(c2b, C2H * C2W, C2W, rf2, nr2, ncw2, alpha_over_n, beta, kparam);
        PHASE_MARK(PH_NORM2);
        for (int e = tid; e < C2 * th * tw; e += NT) {
            const int ch = e / (th * tw), ij = e % (th * tw);
            const int i = ij / tw, j = ij % tw;
            const float* s = c2b + ch * C2H * C2W + (2 * i) * C2W + 2 * j;
            float m = s[0];
#pragma unroll
            for (int dy = 0; dy < 3; ++dy)
#pragma unroll
                for (int dx = 0; dx < 3; ++dx) m = fmaxf(m, s[dy * C2W + dx]);
            out[(((size_t)n * C2 + ch) * HP2 + R0 + i) * WP2 + C0 + j] = m;
        }
        if (REUSE)
            for (int e = tid; e < C2 * ncw2; e += NT) {
                const int ch = e / ncw2, c = e % ncw2;
                c2keep[ch * C2W + c] = c2b[ch * C2H * C2W + (2 * th) * C2W + c];
            }
        __syncthreads();
        PHASE_MARK(PH_POOL2);
    }
}

}  // namespace fz

#define FZ_CAT2(a, b) a##b
#define FZ_CAT(a, b) FZ_CAT2(a, b)
#if TILE_X == TILE_Y
#define FZ_TILE_NAME TILE_X
#else
#define FZ_TILE_NAME FZ_CAT(FZ_CAT(TILE_Y, x), TILE_X)  // rows x cols, e.g. 2x7
#endif
#if REUSE
#define FUSED_ENTRY FZ_CAT(fused_reuse_t, FZ_TILE_NAME)
#else
#define FUSED_ENTRY FZ_CAT(fused_recompute_t, FZ_TILE_NAME)
#endif

// Grid: (ceil(WP2/TILE_X), REUSE ? 1 : ceil(HP2/TILE_Y), N); 256 threads; dynamic shared memory =
// registry.fused_smem_bytes(tile, strategy). w1p: [K1P][96], w2p: [1200][256], both k-major, each row
// interleaved by thread channel group (api.interleave_channel_groups with RM = 12 and 8).
// images_per_group: the block order above (api.images_per_group: SMs / blocks per image, at least 1).
extern "C" __global__ void __launch_bounds__(256, 1)
    FUSED_ENTRY(const float* __restrict__ x, const float* __restrict__ w1p, const float* __restrict__ b1,
                const float* __restrict__ w2p, const float* __restrict__ b2, float* __restrict__ out, int N, int H,
                int W, int cin, int c1, int c2, float alpha, float beta, float kparam, int images_per_group) {
    fz::fused_body(x, w1p, b1, w2p, b2, out, N, H, W, cin, c1, c2, alpha, beta, kparam, images_per_group);
}
