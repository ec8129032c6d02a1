// Layer-by-layer baseline (variant `lbl`): one kernel per layer, every intermediate map in device
// memory. Written to be fast, not a straw man:
//   conv : implicit GEMM (M = out channels of a group, N = N*OH*OW pixels, K = Cin/g*KS*KS),
//          256 threads, block tile BM x 128 x 16, RM x 8 outputs per thread (FP32 FFMA),
//          double-buffered shared memory fed through registers, bias + ReLU fused in the epilogue.
//          Two instantiations: BM = 96 (conv1, M = 96) and BM = 128 (conv2, M = 128 per group).
//   lrn  : one thread per (image, pixel), sliding window over channels; coalesced across pixels.
//   pool : one thread per output value.
// All shapes are run-time arguments. Weights come pre-packed by kernels/api.py as
// wt[Kpad][M] (k-major, K padded with zero rows to a multiple of BK).
#include "common.cuh"

namespace {

constexpr int NT = 256;       // threads per conv block (16 x 16)
constexpr int BN = 128;       // pixels per block tile
constexpr int BK = 16;        // k per shared-memory stage
constexpr int KTAB_MAX = 1536;  // largest Cin/g*KS*KS supported (conv2: 1200)

template <int RM>
__device__ __forceinline__ void conv_igemm(const float* __restrict__ x, const float* __restrict__ wt,
                                           const float* __restrict__ bias, float* __restrict__ y, int N, int C,
                                           int H, int W, int M, int OH, int OW, int KS, int stride, int pad,
                                           int groups, int Kpad) {
    constexpr int BM = 16 * RM;
    constexpr int AL = BM * BK / NT;  // A values each thread stages per tile
    constexpr int BL = BN * BK / NT;  // B values each thread stages per tile (8)
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    __shared__ int2 ktab[KTAB_MAX];

    const int tid = threadIdx.x;
    const int g = blockIdx.z;
    const int Cg = C / groups, Mg = M / groups;
    const int K = Cg * KS * KS;
    const int HW = H * W, OHW = OH * OW;
    const int P = N * OHW;
    const int p0 = blockIdx.x * BN, m0 = blockIdx.y * BM;

    // k -> (input offset, ky, kx): built once per block so the im2col gather needs no division.
    for (int k = tid; k < Kpad; k += NT) {
        int2 e;
        if (k < K) {
            const int ci = k / (KS * KS);
            const int r = k - ci * KS * KS;
            const int ky = r / KS, kx = r - (r / KS) * KS;
            e.x = ci * HW + ky * W + kx;
            e.y = (ky << 16) | kx;
        } else {
            e.x = 0;
            e.y = 0x40000000;  // ky = 16384: always out of bounds, so padded k reads 0
        }
        ktab[k] = e;
    }

    // B loader: each thread owns one pixel column of the tile and BL of its k rows.
    const int bj = tid % BN, bk0 = tid / BN;
    const int pl = p0 + bj;
    const bool pvalid = pl < P;
    int n = 0, oy = 0, ox = 0;
    if (pvalid) {
        n = pl / OHW;
        const int r = pl - n * OHW;
        oy = r / OW;
        ox = r - oy * OW;
    }
    const int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
    const int xbase = n * C * HW + g * Cg * HW + iy0 * W + ix0;  // only dereferenced in bounds

    float ra[AL], rb[BL];
    auto load_tile = [&](int k0) {
#pragma unroll
        for (int i = 0; i < AL; ++i) {
            const int e = tid + NT * i, kk = e / BM, mm = e % BM;
            ra[i] = (m0 + mm < Mg) ? __ldg(wt + (size_t)(k0 + kk) * M + g * Mg + m0 + mm) : 0.f;
        }
#pragma unroll
        for (int i = 0; i < BL; ++i) {
            const int2 t = ktab[k0 + bk0 + 2 * i];
            const int iy = iy0 + (t.y >> 16), ix = ix0 + (t.y & 0xffff);
            rb[i] = (pvalid && (unsigned)iy < (unsigned)H && (unsigned)ix < (unsigned)W) ? __ldg(x + xbase + t.x) : 0.f;
        }
    };
    auto store_tile = [&](int buf) {
#pragma unroll
        for (int i = 0; i < AL; ++i) {
            const int e = tid + NT * i;
            As[buf][e / BM][e % BM] = ra[i];
        }
#pragma unroll
        for (int i = 0; i < BL; ++i) Bs[buf][bk0 + 2 * i][bj] = rb[i];
    };

    __syncthreads();  // ktab ready
    load_tile(0);
    store_tile(0);
    __syncthreads();

    const int tx = tid % 16, ty = tid / 16;
    float acc[RM][8];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    const int ntiles = Kpad / BK;
    for (int t = 0; t < ntiles; ++t) {
        const int buf = t & 1;
        if (t + 1 < ntiles) load_tile((t + 1) * BK);  // global loads in flight during the FFMAs
        for_k_unrolled<BK, BK>([&](int kk) {
            float a[RM], b[8];
            if constexpr (RM % 4 == 0) {
#pragma unroll
                for (int q = 0; q < RM / 4; ++q) {
                    const float4 v = *reinterpret_cast<const float4*>(&As[buf][kk][ty * RM + 4 * q]);
                    a[4 * q] = v.x; a[4 * q + 1] = v.y; a[4 * q + 2] = v.z; a[4 * q + 3] = v.w;
                }
            } else {
#pragma unroll
                for (int q = 0; q < RM / 2; ++q) {
                    const float2 v = *reinterpret_cast<const float2*>(&As[buf][kk][ty * RM + 2 * q]);
                    a[2 * q] = v.x; a[2 * q + 1] = v.y;
                }
            }
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][64 + tx * 4]);
            b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
            b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        });
        if (t + 1 < ntiles) store_tile(buf ^ 1);
        __syncthreads();
    }

    // Epilogue: bias + ReLU, NCHW store.
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int pj = p0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + (j - 4));
        if (pj >= P) continue;
        const int nj = pj / OHW;
        const int pbase = nj * M * OHW + (pj - nj * OHW);
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            const int m = m0 + ty * RM + i;
            if (m < Mg) {
                const int mc = g * Mg + m;
                y[pbase + mc * OHW] = fmaxf(acc[i][j] + __ldg(bias + mc), 0.f);
            }
        }
    }
}

}  // namespace

// Grid: (ceil(N*OH*OW / 128), ceil((M/groups) / BM), groups); 256 threads; static shared memory.
extern "C" __global__ void __launch_bounds__(256) lbl_conv_m96(const float* __restrict__ x, const float* __restrict__ wt,
                                                               const float* __restrict__ bias, float* __restrict__ y,
                                                               int N, int C, int H, int W, int M, int OH, int OW,
                                                               int KS, int stride, int pad, int groups, int Kpad) {
    conv_igemm<6>(x, wt, bias, y, N, C, H, W, M, OH, OW, KS, stride, pad, groups, Kpad);
}

extern "C" __global__ void __launch_bounds__(256) lbl_conv_m128(const float* __restrict__ x, const float* __restrict__ wt,
                                                                const float* __restrict__ bias, float* __restrict__ y,
                                                                int N, int C, int H, int W, int M, int OH, int OW,
                                                                int KS, int stride, int pad, int groups, int Kpad) {
    conv_igemm<8>(x, wt, bias, y, N, C, H, W, M, OH, OW, KS, stride, pad, groups, Kpad);
}

// Caffe across-channel LRN, one thread per (chunk of channels, image, pixel) (common.cuh
// lrn_across_channels).
extern "C" __global__ void lbl_lrn(const float* __restrict__ x, float* __restrict__ y, int N, int C, int HW, int size,
                                   float alpha, float beta, float k, int chunks) {
    lrn_across_channels<float>(x, y, N, C, HW, size, alpha, beta, k, chunks);
}

// Max pool (square window, no padding, floor rounding), one thread per output (common.cuh).
extern "C" __global__ void lbl_maxpool(const float* __restrict__ x, float* __restrict__ y, int NC, int H, int W,
                                       int OH, int OW, int KS, int stride) {
    maxpool_window<float>(x, y, NC, H, W, OH, OW, KS, stride);
}
