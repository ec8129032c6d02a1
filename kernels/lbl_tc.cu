// Layer-by-layer baseline on the tensor cores (variants `lbl-fp16`, `lbl-bf16`, `lbl-tf32`): one
// kernel per layer, every map in device memory (NCHW) as 16-bit values, or FP32 for TF32 (tc.cuh),
// FP32 accumulation, LRN and pool in FP32. All convs are implicit GEMMs on mma.sync (m16n8k16;
// m16n8k8 for TF32) fed by ldmatrix, bias + ReLU in the epilogue.
// Each conv reads its B operand from a shared-memory patch of its input where one of two patch
// kernels computes its shape (kernels/api.py picks; docs/perf-notes.md step 25):
//   conv1 (3 -> 96, 11x11/4, no pad): the input patch twice, shifted, kx padded to 16
//          (conv1_patch.cuh; entries lbl_tc_conv1_r2 / _r1);
//   conv2 (48 channels per group, 5x5/1, pad 2): a channels-last patch (ConvCL below; entries
//          lbl_tc_conv2cl_r4 / _r1), the layout fused_tc.cu reads its pool1 tile in.
// Any other conv takes the general gather (conv_tc; 16-bit values only, TF32 has the two above): M = out channels of a group, N = N*OH*OW
//          pixels, K = Cin/g*KS*KS; block tile BM x BN x 32, 8 warps as 2 (M) x 4 (N), operands
//          staged through double-buffered shared memory (A by 16-byte loads of the packed weights,
//          B gathered through a k -> offset table). BM = 96 or 128; BN = 128 for full GPUs; BN = 32
//          (entries `_n32`) and split-K spread a small batch over every SM (lbl_conv_launch): each
//          of ksplit blocks of a tile sums a slice of K, writes FP32 partials, and the last to
//          arrive adds them up and runs the epilogue.
//   lrn, pool: as lbl.cu, on 16-bit maps.
// The gather's weights come packed by kernels/api.py as w[Mtot][Kpad] (row-major, K contiguous,
// zero-padded to 32); the patch kernels' in their own k order (see each).
#include "conv1_patch.cuh"
#include "tc.cuh"

namespace {

constexpr int NT = 256;
#if PREC != 3
constexpr int BK = 32;
constexpr int LDS = BK + 8;  // shared row stride (halves): 80 bytes, ldmatrix rows on distinct banks
constexpr int KTAB_MAX = 1536;

template <int BM, int BN, bool SPLIT_K>
__device__ __forceinline__ void conv_tc(const h16* __restrict__ x, const h16* __restrict__ w,
                                        const float* __restrict__ bias, h16* __restrict__ y, int N, int C, int H,
                                        int W, int M, int OH, int OW, int KS, int stride, int pad, int groups,
                                        int Kpad, float* __restrict__ partial, unsigned* __restrict__ arrivals,
                                        int ksplit) {
    constexpr int MT = BM / 32;        // m16 tiles per warp (warp tile BM/2 rows)
    constexpr int NT8 = BN / 32;       // n8 tiles per warp (BN/4 pixels)
    constexpr int KPT = BK * BN / NT;  // k of the B gather per thread and stage: 16 (BN 128) or 4 (BN 32)
    static_assert(BN % 32 == 0 && KPT % 4 == 0, "B stage: whole 8-byte runs of k per thread");
    constexpr int ACH = BM * BK / 8;  // 16-byte A chunks per stage
    constexpr int AL = (ACH + NT - 1) / NT;
    __shared__ __align__(16) h16 As[2][BM * LDS];
    __shared__ __align__(16) h16 Bs[2][BN * LDS];
    __shared__ int ktab[KTAB_MAX];  // ci*H*W + ky*W + kx in bits 0..23, ky in 24..27, kx in 28..31

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    if (!SPLIT_K) ksplit = 1;  // the full tiles run all of K (their registers hold no split-K epilogue)
    const int g = blockIdx.z % groups, ks = blockIdx.z / groups;  // group, K slice
    const int Cg = C / groups, Mg = M / groups;
    const int K = Cg * KS * KS;
    const int HW = H * W, OHW = OH * OW;
    const int P = N * OHW;
    const int p0 = blockIdx.x * BN, m0 = blockIdx.y * BM;

    for (int k = tid; k < Kpad; k += NT) {
        int e = 0;
        if (k < K) {
            const int ci = k / (KS * KS), r = k - ci * KS * KS;
            const int ky = r / KS, kx = r - ky * KS;
            e = (ci * HW + ky * W + kx) | (ky << 24) | (kx << 28);
        }
        ktab[k] = e;
    }

    // B loader: one pixel column per thread, KPT of the stage's 32 k. A column past the last pixel
    // gathers the last pixel's values (its outputs are never stored), so no load needs that check.
    const int bj = tid % BN, bk0 = (tid / BN) * KPT;
    const int pl = min(p0 + bj, P - 1);
    const int n = pl / OHW, r = pl - n * OHW, oy = r / OW, ox = r - oy * OW;
    const int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
    const h16* xb = x + (size_t)n * C * HW + (size_t)g * Cg * HW + iy0 * W + ix0;  // only read in bounds
    // An unpadded conv (conv1 where conv1_patch.cuh does not take it) never reads outside the map: its stages but the last (k past K)
    // gather with a table load, an add and the load, against ~30 instructions per value with the
    // tests (ncu, perf-notes step 23). A padded one keeps the tests for every pixel: splitting its
    // warps into inner and border pixels ran both paths in most warps (conv2 4.64 -> 5.42 us).
    const bool unpadded = pad == 0;

    uint4 ra[AL];
    unsigned rb[KPT / 2];
    auto load_tile = [&](int k0) {
#pragma unroll
        for (int i = 0; i < AL; ++i) {
            const int e = tid + NT * i, row = e / (BK / 8), ch = e % (BK / 8);
            ra[i] = make_uint4(0, 0, 0, 0);
            if (e < ACH && m0 + row < Mg)
                ra[i] = __ldg(reinterpret_cast<const uint4*>(w + (size_t)(g * Mg + m0 + row) * Kpad + k0) + ch);
        }
        if (unpadded && k0 + BK <= K) {
#pragma unroll
            for (int i = 0; i < KPT / 2; ++i) {
                const int k = k0 + bk0 + 2 * i;
                rb[i] = pack2(__ldg(xb + (ktab[k] & 0xffffff)), __ldg(xb + (ktab[k + 1] & 0xffffff)));
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < KPT / 2; ++i) {
            h16 v[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int k = k0 + bk0 + 2 * i + h;
                const int t = ktab[k];
                const int iy = iy0 + ((t >> 24) & 15), ix = ix0 + ((t >> 28) & 15);
                v[h] = (k < K && (unsigned)iy < (unsigned)H && (unsigned)ix < (unsigned)W) ? __ldg(xb + (t & 0xffffff))
                                                                                            : (h16)0;
            }
            rb[i] = pack2(v[0], v[1]);
        }
    };
    auto store_tile = [&](int buf) {
#pragma unroll
        for (int i = 0; i < AL; ++i) {
            const int e = tid + NT * i;
            if (e < ACH) *reinterpret_cast<uint4*>(&As[buf][(e / (BK / 8)) * LDS + (e % (BK / 8)) * 8]) = ra[i];
        }
        uint2* bd = reinterpret_cast<uint2*>(&Bs[buf][bj * LDS + bk0]);
#pragma unroll
        for (int i = 0; i < KPT / 4; ++i) bd[i] = make_uint2(rb[2 * i], rb[2 * i + 1]);
    };

    // this block's K slice: stages [t0, t1) of Kpad / BK
    const int nstages = Kpad / BK, t0 = ks * nstages / ksplit, t1 = (ks + 1) * nstages / ksplit;
    __syncthreads();  // ktab ready
    load_tile(t0 * BK);
    store_tile(0);
    __syncthreads();

    const int wm = warp / 4, wn = warp % 4;
    float acc[MT][NT8][4];
    zero_acc(acc);

    for (int t = t0; t < t1; ++t) {
        const int buf = (t - t0) & 1;
        if (t + 1 < t1) load_tile((t + 1) * BK);  // global loads in flight during the MMAs
        const h16* a0 = &As[buf][(wm * (BM / 2)) * LDS];
        const h16* b0 = &Bs[buf][(wn * (BN / 4)) * LDS];
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) warp_mma_k16<MT, NT8>(acc, a0, LDS, b0, LDS, kk);
        if (t + 1 < t1) store_tile(buf ^ 1);
        __syncthreads();
    }

    const int gq = lane >> 2, tq = lane & 3;
    // The (pixel, channel) of accumulator (i, j, q): the NCHW offset in y, or -1 outside the map.
    auto out_index = [&](int i, int j, int q) -> long long {
        const int pj = p0 + wn * (BN / 4) + j * 8 + 2 * tq + (q & 1);
        const int m = m0 + wm * (BM / 2) + i * 16 + gq + 8 * (q >> 1);
        if (pj >= P || m >= Mg) return -1;
        const int nj = pj / OHW;
        return ((long long)nj * M + g * Mg + m) * OHW + (pj - nj * OHW);
    };
    if (SPLIT_K && ksplit > 1) {
        // Split K: FP32 partials [ksplit][N*M*OH*OW]; the block that completes a tile's count sums
        // all slices in slice order (threadFenceReduction's pattern) and runs the epilogue.
        const long long plane = (long long)N * M * OHW;
        auto for_each_output = [&](auto&& f) {  // f(accumulator, its NCHW offset), inside the map only
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT8; ++j)
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                        const long long o = out_index(i, j, q);
                        if (o >= 0) f(acc[i][j][q], o);
                    }
        };
        for_each_output([&](float& a, long long o) { partial[ks * plane + o] = a; });
        __threadfence();  // the partials are visible device-wide before this block counts itself
        __shared__ bool last;
        __syncthreads();
        if (tid == 0) {
            unsigned* count = arrivals + blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * g);
            last = atomicAdd(count, 1u) == (unsigned)ksplit - 1;
            if (last) *count = 0;  // ready for the next launch
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
        for_each_output([&](float& a, long long o) {
            float sum = 0.f;  // the slices in a fixed order: the result does not depend on who came last
            for (int s = 0; s < ksplit; ++s) sum += __ldcg(partial + s * plane + o);
            a = sum;
        });
    }

    // Epilogue: bias + ReLU, 16-bit NCHW store.
#pragma unroll
    for (int j = 0; j < NT8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int pj = p0 + wn * (BN / 4) + j * 8 + 2 * tq + h;
            if (pj >= P) continue;
            const int nj = pj / OHW;
            h16* yp = y + (size_t)nj * M * OHW + (pj - nj * OHW);
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int m = m0 + wm * (BM / 2) + i * 16 + gq + 8 * r;
                    if (m < Mg) {
                        const int mc = g * Mg + m;
                        yp[(size_t)mc * OHW] = f2h(fmaxf(acc[i][j][2 * r + h] + __ldg(bias + mc), 0.f));
                    }
                }
        }
}

#endif  // PREC != 3
}  // namespace

#if PREC != 3
// Grid: (ceil(N*OH*OW / BN), ceil((M/groups) / BM), groups * ksplit); 256 threads; static shared
// memory. The full tiles (n128) take ksplit = 1; ksplit > 1 (n32) needs partial (ksplit * N*M*OH*OW floats) and arrivals (one zeroed counter per
// (x, y, group) block tile; each launch leaves them zero).
#define LBL_TC_CONV(name, BM, BN, SPLIT_K, ...)                                                             \
    extern "C" __global__ void __launch_bounds__(__VA_ARGS__)                                                \
        name(const h16* __restrict__ x, const h16* __restrict__ w, const float* __restrict__ bias,         \
             h16* __restrict__ y, int N, int C, int H, int W, int M, int OH, int OW, int KS, int stride, int pad, \
             int groups, int Kpad, float* __restrict__ partial, unsigned* __restrict__ arrivals, int ksplit) {   \
        conv_tc<BM, BN, SPLIT_K>(x, w, bias, y, N, C, H, W, M, OH, OW, KS, stride, pad, groups, Kpad, partial, arrivals, \
                        ksplit);                                                                             \
    }
LBL_TC_CONV(lbl_tc_conv_m96, 96, 128, false, 256)
LBL_TC_CONV(lbl_tc_conv_m128, 128, 128, false, 256)
LBL_TC_CONV(lbl_tc_conv_m96_n32, 96, 32, true, 256, 2)  // ptxas' own choice (64 registers) spills
LBL_TC_CONV(lbl_tc_conv_m128_n32, 128, 32, true, 256, 2)
#endif  // PREC != 3: the gather

// conv1 (AlexNet's 3 -> 96, 11x11/4, no padding) from a shared-memory input patch (conv1_patch.cuh):
// a block computes RW output rows x NX = CW*NT8W*8 columns x 48*MW channels of one image; its warps
// are MW x RW x CW. Weights: [96][528], k = (c*11 + ky)*16 + kx, zero at kx >= 11. Grid:
// (ceil(OW / NX), ceil(OH / RW), N * 96 / (48*MW)); dynamic shared memory <entry>_smem_bytes and the
// block's (rows, columns, channels) <entry>_tile, exported as globals the host reads: it launches
// with the kernel's own size and checks its grid table against the kernel's tile.
template <int MW, int RW, int CW, int NT8W, int NS>
struct Conv1Patch {
    static constexpr int BM = 48 * MW, NX = CW * NT8W * 8;
    using P = c1p::Patch<RW, NX>;
    static constexpr int SMEM_BYTES = 2 * (P::HALVES + NS * BM * c1p::LDA);

    static __device__ __forceinline__ void run(const val_t* __restrict__ x, const val_t* __restrict__ w,
                                               const float* __restrict__ bias, val_t* __restrict__ y, int H, int W,
                                               int OH, int OW) {
        if (dynamic_smem_bytes() < (unsigned)SMEM_BYTES) return;  // the host passes the exported size
        extern __shared__ __align__(16) unsigned char smem_raw[];
        h16* patch = reinterpret_cast<h16*>(smem_raw);
        h16* a_ring = patch + P::HALVES;
        constexpr int MSPLIT = c1p::M / BM;
        const int n = blockIdx.z / MSPLIT, m0 = (blockIdx.z % MSPLIT) * BM;
        const int ox0 = blockIdx.x * NX, oy0 = blockIdx.y * RW;
        c1p::conv1_patch_prologue<MW, NS, NT>(a_ring, w, m0);
        c1p::load_patch<RW, NX, NT>(patch, x + (size_t)n * c1p::CIN * H * W, H, W, oy0 * c1p::S, ox0 * c1p::S);
        float acc[3][NT8W][4];
        c1p::conv1_patch_mma<MW, RW, CW, NT8W, NS, NT>(acc, patch, a_ring, w, m0);

        const c1p::WarpPlace<MW, RW> wp;
        const int lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
        const int oy = oy0 + wp.rw;
        if (oy >= OH) return;
#pragma unroll
        for (int j = 0; j < NT8W; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int ox = ox0 + wp.cw * NT8W * 8 + j * 8 + 2 * tq + h;
                if (ox >= OW) continue;
#pragma unroll
                for (int i = 0; i < 3; ++i)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const int m = m0 + wp.mw * 48 + i * 16 + gq + 8 * r;
                        y[(((size_t)n * c1p::M + m) * OH + oy) * OW + ox] =
                            to_val(fmaxf(acc[i][j][2 * r + h] + __ldg(bias + m), 0.f));
                    }
            }
    }
};

#define LBL_TC_CONV1(name, MW, RW, CW, NT8W, NS, ...)                                                       \
    extern "C" __device__ int name##_smem_bytes = Conv1Patch<MW, RW, CW, NT8W, NS>::SMEM_BYTES;         \
    extern "C" __device__ int name##_tile[3] = {RW, CW * NT8W * 8, 48 * MW};                                \
    extern "C" __global__ void __launch_bounds__(__VA_ARGS__)                                                \
        name(const val_t* __restrict__ x, const val_t* __restrict__ w, const float* __restrict__ bias,     \
             val_t* __restrict__ y, int H, int W, int OH, int OW) {                                        \
        Conv1Patch<MW, RW, CW, NT8W, NS>::run(x, w, bias, y, H, W, OH, OW);                                  \
    }
// Full batches: 2 rows x 64 columns x 96 channels, 2 blocks per SM (4 rows x 56 spilled at the 128
// registers of 2 blocks). Small batches: one row of 64 columns x 48 channels (110 blocks per 55 x 55
// image), all 11 weight stages in flight at once (11 of TF32's 22).
LBL_TC_CONV1(lbl_tc_conv1_r2, 2, 2, 2, 4, 3, 256, 2)
LBL_TC_CONV1(lbl_tc_conv1_r1, 1, 1, 8, 1, 11, 256, 2)

// conv2 (48 input channels per group, 5x5, stride 1, pad 2) from a channels-last shared-memory patch,
// as fused_tc.cu reads its pool1 tile: the block copies the NCHW input under its RW x NX outputs
// (plus a 2-pixel halo on each side, zeros outside the map) into [row][column][48 VS + 8 slots], and
// ldmatrix reads a pixel's k step of one (ky, kx), 16 channels (8 for TF32), as two 16-byte rows;
// no k table, no bounds tests in the loop (the gather spent ~30 instructions per value: perf-notes
// step 23). k = (ky*5 + kx)*48 + c; a weight stage is 48 slots, one (ky, kx) (VS stages for TF32:
// its 48 FP32 values are 96 slots). Warps MW (MT m16 tiles each) x RW x CW (NT8W n8 tiles each).
// Grid: (ceil(OW / NX), ceil(OH / RW), N * groups * (M/groups) / BM); weights [M][1200]; dynamic
// shared memory <entry>_smem_bytes, block tile <entry>_tile (as Conv1Patch).
namespace ccl {
constexpr int CG = 48, KS = 5, PAD = 2, KP = KS * KS * CG * VS;  // KP, BK: slots
constexpr int BK = 48;
constexpr int LDP = CG * VS + 8;  // 112- (208-) byte pixel rows: the 8 rows of an ldmatrix on distinct banks
}  // namespace ccl

template <int MW, int MT, int RW, int CW, int NT8W, int NS>
struct ConvCL {
    static constexpr int BM = MW * MT * 16, NX = CW * NT8W * 8;
    static constexpr int PH = RW + ccl::KS - 1, PWC = NX + ccl::KS - 1;  // patch rows, columns
    static constexpr int PATCH = PH * PWC * ccl::LDP;
    // each m part (the warps of one mw, MT*16 channels) streams its weight rows through its own ring
    // and syncs on its own named barrier 1 + mw once the patch is visible (tc.cuh PartRing)
    using PR = PartRing<MT * 16, ccl::BK, ccl::KP, NT, MW, 1>;
    using WS = typename PR::WS;
    static constexpr int SMEM_BYTES = 2 * (PATCH + NS * BM * WS::LDA);
    static_assert(MW * RW * CW * 32 == NT, "one warp per (m part, row, column group)");

    // The patch, a warp per line of (row, 32-bit word of a pixel: two 16-bit channels, or one TF32):
    // lanes take consecutive columns (coalesced loads from the word's channel planes), each stores
    // its word; RB lines' loads in flight before any store.
    static __device__ __forceinline__ void load_patch(h16* patch, const val_t* __restrict__ xg, int H, int W, int iy0,
                                                      int ix0) {
        constexpr int PAIRS = ccl::CG * VS / 2, LINES = PH * PAIRS, Q = (PWC + 31) / 32, RB = 4;
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll 1
        for (int l0 = warp; l0 < LINES; l0 += RB * (NT / 32)) {
            unsigned v[RB][Q];
#pragma unroll
            for (int b = 0; b < RB; ++b) {
                const int l = l0 + b * (NT / 32), r = l / PAIRS, cp = l - r * PAIRS, iy = iy0 + r;
                const bool row_in = l < LINES && (unsigned)iy < (unsigned)H;
                const val_t* src = xg + ((size_t)(2 / VS * cp) * H + iy) * W;
#pragma unroll
                for (int q = 0; q < Q; ++q) {
                    const int j = lane + 32 * q, ix = ix0 + j;
                    const bool in = row_in && j < PWC && (unsigned)ix < (unsigned)W;
#if PREC == 3
                    v[b][q] = __float_as_uint(in ? tf32_round(__ldg(src + ix)) : 0.f);
#else
                    h16 lo = 0, hi = 0;
                    if (in) {
                        lo = __ldg(src + ix);
                        hi = __ldg(src + (size_t)H * W + ix);
                    }
                    v[b][q] = pack2(lo, hi);
#endif
                }
            }
#pragma unroll
            for (int b = 0; b < RB; ++b) {
                const int l = l0 + b * (NT / 32), r = l / PAIRS, cp = l - r * PAIRS;
                if (l >= LINES) break;
#pragma unroll
                for (int q = 0; q < Q; ++q) {
                    const int j = lane + 32 * q;
                    if (j < PWC) *reinterpret_cast<unsigned*>(patch + (r * PWC + j) * ccl::LDP + 2 * cp) = v[b][q];
                }
            }
        }
    }

    static __device__ __forceinline__ void run(const val_t* __restrict__ x, const val_t* __restrict__ wv,
                                               const float* __restrict__ bias, val_t* __restrict__ y, int C, int H,
                                               int W, int M, int OH, int OW, int groups) {
        if (dynamic_smem_bytes() < (unsigned)SMEM_BYTES) return;  // the host passes the exported size
        extern __shared__ __align__(16) unsigned char smem_raw[];
        h16* patch = reinterpret_cast<h16*>(smem_raw);
        const int Mg = M / groups, mblocks = Mg / BM;
        const int mb = blockIdx.z % mblocks, g = (blockIdx.z / mblocks) % groups, n = blockIdx.z / (mblocks * groups);
        const int m0 = g * Mg + mb * BM;
        const int ox0 = blockIdx.x * NX, oy0 = blockIdx.y * RW;
        const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        const int mw = warp % MW, rw = (warp / MW) % RW, cw = warp / (MW * RW);
        const h16* w = reinterpret_cast<const h16*>(wv);
        // PR::stage(m0) and PR::ring<NS>(patch + PATCH), spelled out with this thread's mw: the
        // form measured (the calls compile to a different schedule)
        const WS ws(m0 + mw * MT * 16, warp / MW * 32 + lane);
        h16* ring = patch + PATCH + mw * NS * MT * 16 * WS::LDA;
#pragma unroll
        for (int t = 0; t < NS - 1; ++t) ws.template issue<NS>(ring, w, t);
        load_patch(patch, x + ((size_t)n * C + g * ccl::CG) * H * W, H, W, oy0 - ccl::PAD, ox0 - ccl::PAD);

        int boff[(NT8W + 1) / 2];  // ldmatrix row of this lane for n-tile pair jp (as conv1_patch.cuh)
#pragma unroll
        for (int jp = 0; jp < (NT8W + 1) / 2; ++jp) {
            const int ox = cw * NT8W * 8 + jp * 16 + (lane & 7) + ((lane >> 4) << 3);
            boff[jp] = (rw * PWC + ox) * ccl::LDP + ((lane >> 3) & 1) * 8;
        }
        float acc[MT][NT8W][4];
        zero_acc(acc);
        for (int t = 0; t < WS::NSTAGE; ++t) {
            cp_async_wait<NS - 2>();  // stage t landed
            if (t == 0)
                __syncthreads();  // ... for every thread (all of them wrote the patch); the patch is visible
            else
                PR::sync();  // ... for the part's threads; stage t - 1's slot is free
            ws.template issue<NS>(ring, w, t + NS - 1);
            const int pos = t / VS, ky = pos / ccl::KS;  // stage t: (ky, kx) = pos; TF32: its second 24 channels in odd stages
            const int koff = (ky * PWC + pos - ky * ccl::KS) * ccl::LDP + (t % VS) * ccl::BK;
            const h16* a0 = ring + (t % NS) * MT * 16 * WS::LDA;
#pragma unroll
            for (int kk = 0; kk < ccl::BK; kk += 16) {
                unsigned a[MT][4], b[NT8W][2];
#pragma unroll
                for (int i = 0; i < MT; ++i) ldmatrix_x4(a[i], a0 + (i * 16 + (lane & 15)) * WS::LDA + kk + (lane >> 4) * 8);
#pragma unroll
                for (int j = 0; j < NT8W; j += 2) {
                    if (j + 1 < NT8W) {
                        unsigned r[4];
                        ldmatrix_x4(r, patch + boff[j / 2] + koff + kk);
                        b[j][0] = r[0];
                        b[j][1] = r[1];
                        b[j + 1][0] = r[2];
                        b[j + 1][1] = r[3];
                    } else {
                        ldmatrix_x2(b[j], patch + boff[j / 2] + koff + kk);
                    }
                }
#pragma unroll
                for (int i = 0; i < MT; ++i)
#pragma unroll
                    for (int j = 0; j < NT8W; ++j) mma_kstep(acc[i][j], a[i], b[j]);
            }
        }
        cp_async_wait<0>();

        const int gq = lane >> 2, tq = lane & 3, oy = oy0 + rw;
        if (oy >= OH) return;
#pragma unroll
        for (int j = 0; j < NT8W; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int ox = ox0 + cw * NT8W * 8 + j * 8 + 2 * tq + h;
                if (ox >= OW) continue;
#pragma unroll
                for (int i = 0; i < MT; ++i)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const int m = m0 + mw * MT * 16 + i * 16 + gq + 8 * r;
                        y[(((size_t)n * M + m) * OH + oy) * OW + ox] = to_val(fmaxf(acc[i][j][2 * r + h] + __ldg(bias + m), 0.f));
                    }
            }
    }
};

#define LBL_TC_CONV_CL(name, MW, MT, RW, CW, NT8W, NS, ...)                                                 \
    extern "C" __device__ int name##_smem_bytes = ConvCL<MW, MT, RW, CW, NT8W, NS>::SMEM_BYTES;             \
    extern "C" __device__ int name##_tile[3] = {RW, CW * NT8W * 8, MW * MT * 16};                           \
    extern "C" __global__ void __launch_bounds__(__VA_ARGS__)                                                \
        name(const val_t* __restrict__ x, const val_t* __restrict__ w, const float* __restrict__ bias,     \
             val_t* __restrict__ y, int C, int H, int W, int M, int OH, int OW, int groups) {               \
        ConvCL<MW, MT, RW, CW, NT8W, NS>::run(x, w, bias, y, C, H, W, M, OH, OW, groups);                    \
    }
// Full batches: 4 rows x 32 columns x 128 channels. Small batches: one row x 32 columns x 32
// channels (216 blocks per 27 x 27 image with 256 channels in 2 groups), 8 weight stages in flight.
LBL_TC_CONV_CL(lbl_tc_conv2cl_r4, 2, 4, 4, 1, 4, 3, 256, 2)
LBL_TC_CONV_CL(lbl_tc_conv2cl_r1, 2, 1, 1, 4, 1, 9, 256, 2)

// Caffe across-channel LRN and max pool on the stored maps, FP32 arithmetic: lbl.cu's kernels on
// 16-bit or FP32 values (common.cuh lrn_across_channels, maxpool_window; tc.cuh MapValue<h16>).
// TF32: their outputs keep all of FP32; conv2 rounds its input patch to TF32.
extern "C" __global__ void lbl_tc_lrn(const val_t* __restrict__ x, val_t* __restrict__ y, int N, int C, int HW,
                                      int size, float alpha, float beta, float k, int chunks) {
    lrn_across_channels<val_t>(x, y, N, C, HW, size, alpha, beta, k, chunks);
}

extern "C" __global__ void lbl_tc_maxpool(const val_t* __restrict__ x, val_t* __restrict__ y, int NC, int H, int W,
                                          int OH, int OW, int KS, int stride) {
    maxpool_window<val_t>(x, y, NC, H, W, OH, OW, KS, stride);
}
