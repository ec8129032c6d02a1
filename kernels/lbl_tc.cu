// Layer-by-layer baseline on the tensor cores (variants `lbl-fp16`, `lbl-bf16`): one kernel per
// layer, every map in device memory as 16-bit values (NCHW), FP32 accumulation, LRN and pool in FP32.
//   conv : implicit GEMM (M = out channels of a group, N = N*OH*OW pixels, K = Cin/g*KS*KS) on
//          mma.sync m16n8k16; block tile BM x BN x 32, 8 warps as 2 (M) x 4 (N), warp tile
//          BM/2 x BN/4; operands staged through double-buffered shared memory (A by 16-byte loads of
//          the packed weights, B gathered through a k -> offset table), fed to the tensor cores by
//          ldmatrix; bias + ReLU in the epilogue. BM = 96 (conv1) or 128 (conv2, 128 per group).
//          BN = 128 for full GPUs; BN = 32 (entries `_n32`) and split-K spread a small batch over
//          every SM (kernels/api.py lbl_conv_launch picks): each of ksplit blocks of a tile sums a
//          slice of K, writes FP32 partials, and the last to arrive adds them up and runs the epilogue.
//   lrn, pool: as lbl.cu, on 16-bit maps.
// Weights come packed by kernels/api.py as w[Mtot][Kpad] (row-major, K contiguous, zero-padded to 32).
#include "tc.cuh"

namespace {

constexpr int NT = 256;
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
    // An unpadded conv (conv1) never reads outside the map: its stages but the last (k past K)
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
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT8; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

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

}  // namespace

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

// Caffe across-channel LRN and max pool on 16-bit maps, FP32 arithmetic: lbl.cu's kernels on h16
// (common.cuh lrn_across_channels, maxpool_window; tc.cuh MapValue<h16>).
extern "C" __global__ void lbl_tc_lrn(const h16* __restrict__ x, h16* __restrict__ y, int N, int C, int HW, int size,
                                      float alpha, float beta, float k, int chunks) {
    lrn_across_channels<h16>(x, y, N, C, HW, size, alpha, beta, k, chunks);
}

extern "C" __global__ void lbl_tc_maxpool(const h16* __restrict__ x, h16* __restrict__ y, int NC, int H, int W, int OH,
                                          int OW, int KS, int stride) {
    maxpool_window<h16>(x, y, NC, H, W, OH, OW, KS, stride);
}
