// Building blocks of the generated pyramid kernels (kernels/generate.py writes the entry that calls
// them; pipeline/model/linebuffer.py is the schedule and the layout they follow).
//
// Every map a block holds is a ring of rows in shared memory, channels-last: the value of map row
// r, map column c, channel ch sits at  ring[((r mod ROWS) * COLS + (c - col_base)) * PS + ch].
// Each function below works on a band of rows [lo, hi) and columns [clo, chi) of one map, with
// all the block's threads, and leaves the synchronisation to the caller.
//
// PREC 0: FP32 values, products on the CUDA cores (FFMA). PREC 1 / 2: fp16 / bf16 values, products
// on the tensor cores (mma.sync m16n8k16, FP32 accumulation). PREC 3: FP32 values, products on the
// tensor cores in TF32 (operands rounded to nearest by cvt.rna, mma.sync m16n8k8, FP32
// accumulation). Bias, LRN and max pool in FP32.
#pragma once
#include "common.cuh"

#ifndef PREC
#define PREC 0
#endif
#if PREC == 0 || PREC == 3
typedef float T;
#else
#include "tc.cuh"
typedef h16 T;
#endif
typedef MapValue<T> V;

// One k16 step of a warp item: the A fragments of MT m16 tiles (ldmatrix where 16 consecutive k are
// 16 channels of one pixel, else a gather; a k past KK reads a real value times a zero weight) and
// MT x NT products with the B fragments at wk (packed by kernels/chain.py in fragment order).
#if PREC == 3
__device__ __forceinline__ unsigned tf32_bits(float f) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return r;
}
// D += A(16x8, row) * B(8x8, col) in TF32; a: (g, t), (g+8, t), (g, t+4), (g+8, t+4); b: (t, g), (t+4, g).
__device__ __forceinline__ void mma1688(float* d, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <int MT, int NT, int CING, int IPS, int KK, bool LDMATRIX>
__device__ __forceinline__ void k16_step(float (&acc)[MT][NT][4], const T* (&arow)[MT][2], int k0, const uint2* wk, int tq) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // two k8 products per k16 step
        unsigned a[MT][4];
        if constexpr (LDMATRIX) {  // 8 rows of 4 floats per matrix: thread (g, t) gets row g, word t
            const int off = (k0 / CING) * IPS + k0 % CING + half * 8;
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                ldmatrix_x4(a[i], arow[i][0] + off);
#pragma unroll
                for (int q = 0; q < 4; ++q) a[i][q] = tf32_bits(__uint_as_float(a[i][q]));
            }
        } else {
            int off[2];
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int k = k0 + half * 8 + tq + j * 4;
                off[j] = k < KK ? (k / CING) * IPS + k % CING : 0;
            }
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                a[i][0] = tf32_bits(arow[i][0][off[0]]);
                a[i][1] = tf32_bits(arow[i][1][off[0]]);
                a[i][2] = tf32_bits(arow[i][0][off[1]]);
                a[i][3] = tf32_bits(arow[i][1][off[1]]);
            }
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const uint2 bv = __ldg(wk + (((k0 / 16) * 2 + half) * NT + j) * 32);
            unsigned b[2] = {bv.x, bv.y};
#pragma unroll
            for (int i = 0; i < MT; ++i) mma1688(acc[i][j], a[i], b);
        }
    }
}
#elif PREC != 0
template <int MT, int NT, int CING, int IPS, int KK, bool LDMATRIX>
__device__ __forceinline__ void k16_step(float (&acc)[MT][NT][4], const T* (&arow)[MT][2], int k0, const uint2* wk, int tq) {
    unsigned a[MT][4];
    if constexpr (LDMATRIX) {
        const int off = (k0 / CING) * IPS + k0 % CING;
#pragma unroll
        for (int i = 0; i < MT; ++i) ldmatrix_x4(a[i], arow[i][0] + off);
    } else {
        int off[4];  // k = k0 + 2t, 2t+1, 2t+8, 2t+9 -> (kx, ci)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int k = k0 + tq * 2 + (j & 1) + (j >> 1) * 8;
            off[j] = k < KK ? (k / CING) * IPS + k % CING : 0;
        }
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            a[i][0] = pack2(arow[i][0][off[0]], arow[i][0][off[1]]);
            a[i][1] = pack2(arow[i][1][off[0]], arow[i][1][off[1]]);
            a[i][2] = pack2(arow[i][0][off[2]], arow[i][0][off[3]]);
            a[i][3] = pack2(arow[i][1][off[2]], arow[i][1][off[3]]);
        }
    }
#pragma unroll
    for (int j = 0; j < NT; ++j) {
        const uint2 bv = __ldg(wk + ((k0 / 16) * NT + j) * 32);
        unsigned b[2] = {bv.x, bv.y};
#pragma unroll
        for (int i = 0; i < MT; ++i) mma_kstep(acc[i][j], a[i], b);
    }
}
#endif

__device__ __forceinline__ int ring_row(int r, int rows) {
    const int m = r % rows;
    return m < 0 ? m + rows : m;
}

template <int ROWS, int COLS, int PS>
__device__ __forceinline__ T* ring_at(T* ring, int col_base, int r, int c) {
    return ring + (ring_row(r, ROWS) * COLS + (c - col_base)) * PS;
}

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// Group input rows from global memory (NCHW, one image) into ring 0. Consecutive threads read
// consecutive columns of one row of one channel: coalesced.
template <int C, int H, int W, int ROWS, int COLS, int PS>
__device__ void load_rows(T* ring, int col_base, const T* __restrict__ x, int lo, int hi, int clo, int chi) {
    const int nc = chi - clo, nr = hi - lo, n = C * nr * nc;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int c = i % nc, rest = i / nc, r = rest % nr, ch = rest / nr;
        ring_at<ROWS, COLS, PS>(ring, col_base, lo + r, clo + c)[ch] = x[((size_t)ch * H + lo + r) * W + clo + c];
    }
}

// Group output rows from the last ring to global memory (NCHW, one image), coalesced the same way.
template <int C, int H, int W, int ROWS, int COLS, int PS>
__device__ void store_rows(const T* ring, int col_base, T* __restrict__ y, int lo, int hi, int clo, int chi) {
    const int nc = chi - clo, nr = hi - lo, n = C * nr * nc;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int c = i % nc, rest = i / nc, r = rest % nr, ch = rest / nr;
        y[((size_t)ch * H + lo + r) * W + clo + c] =
            ring_at<ROWS, COLS, PS>(const_cast<T*>(ring), col_base, lo + r, clo + c)[ch];
    }
}

// The padding a consumer is about to read: rows [plo, phi) x columns [pclo, pchi) of a map of
// H x W; every position outside the map gets ``pad`` (0 before a conv, -inf before a max pool).
// Returns whether there was any (the same answer in every thread: the caller's barrier is skipped
// when there was none).
template <int C, int H, int W, int ROWS, int COLS, int PS>
__device__ bool fill_padding(T* ring, int col_base, int plo, int phi, int pclo, int pchi, float pad) {
    const int nc = pchi - pclo, nr = phi - plo, n = C * nr * nc;
    const T v = V::store(pad);
    if (plo >= 0 && phi <= H && pclo >= 0 && pchi <= W) return false;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int ch = i % C, rest = i / C, c = pclo + rest % nc, r = plo + rest / nc;
        if (r < 0 || r >= H || c < 0 || c >= W) ring_at<ROWS, COLS, PS>(ring, col_base, r, c)[ch] = v;
    }
    return true;
}

// Max pool (K x K, stride S, no padding) of rows [lo, hi) x columns [clo, chi) of its output.
template <int C, int K, int S, int IR, int IC, int IPS, int OR, int OC, int OPS>
__device__ void pool_rows(const T* in, int in_base, T* out, int out_base, int lo, int hi, int clo, int chi) {
    const int nc = chi - clo, n = (hi - lo) * nc * C;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int ch = i % C, rest = i / C, c = clo + rest % nc, r = lo + rest / nc;
        float m = neg_inf();
#pragma unroll
        for (int ky = 0; ky < K; ++ky)
#pragma unroll
            for (int kx = 0; kx < K; ++kx)
                m = fmaxf(m, V::load(ring_at<IR, IC, IPS>(const_cast<T*>(in), in_base, r * S + ky, c * S + kx)[ch]));
        ring_at<OR, OC, OPS>(out, out_base, r, c)[ch] = V::store(m);
    }
}

template <int C, int ROWS, int COLS, int PS>
__device__ void relu_rows(T* ring, int base, int lo, int hi, int clo, int chi) {
    const int nc = chi - clo, n = (hi - lo) * nc * C;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int ch = i % C, rest = i / C;
        T* p = ring_at<ROWS, COLS, PS>(ring, base, lo + rest / nc, clo + rest % nc) + ch;
        *p = V::store(fmaxf(V::load(*p), 0.f));
    }
}

// Caffe across-channel LRN in place. A value's window reads its neighbours' inputs, so each round
// takes whole pixels: every thread first computes its values' scales from the inputs, then, after a
// barrier, overwrites them. Every thread runs the same number of rounds (the barriers need it).
template <int C, int SIZE, int ROWS, int COLS, int PS>
__device__ void lrn_rows(T* ring, int base, int lo, int hi, int clo, int chi, float alpha, float beta, float k) {
    constexpr int PER_THREAD = 8, PRE = (SIZE - 1) / 2;
    const int nc = chi - clo, npix = (hi - lo) * nc;
    const int pix_per_round = max(1, (int)(blockDim.x * PER_THREAD) / C);
    const float alpha_over_n = alpha / SIZE;
    for (int p0 = 0; p0 < npix; p0 += pix_per_round) {
        const int n = min(pix_per_round, npix - p0) * C;
        float scaled[PER_THREAD];
#pragma unroll
        for (int j = 0; j < PER_THREAD; ++j) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < n) {
                const int ch = i % C, p = p0 + i / C;
                const T* px = ring_at<ROWS, COLS, PS>(ring, base, lo + p / nc, clo + p % nc);
                float sum = 0.f;
                for (int c2 = max(0, ch - PRE); c2 < min(C, ch - PRE + SIZE); ++c2) {
                    const float v = V::load(px[c2]);
                    sum += v * v;
                }
                scaled[j] = lrn_value(V::load(px[ch]), sum, alpha_over_n, beta, k);
            }
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < PER_THREAD; ++j) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < n) {
                const int ch = i % C, p = p0 + i / C;
                ring_at<ROWS, COLS, PS>(ring, base, lo + p / nc, clo + p % nc)[ch] = V::store(scaled[j]);
            }
        }
        __syncthreads();
    }
}

// Convolution of rows [lo, hi) x columns [clo, chi) of its output, all output channels, bias and an
// optional ReLU in the epilogue. The input ring holds the rows and columns it reads, padding filled.
// Weights: FP32 [G][K][K][CIN/G][COUT/G rounded to 4] (4 output channels per float4);
//          16-bit in mma fragment order, k = (kx, ci) within each kernel row ky, padded to 16:
//          [G][co tile of NT*8][ky][k16 step][n8 j][lane][b0 b1 pair: 4 values], so a warp loads
//          each n8 x k16 B fragment as 256 contiguous bytes (kernels/chain.py pack_conv_weights).
// FP32: a thread computes 2*MT pixels x 4 output channels per item. 16-bit: a warp computes MT x 16
// pixels x NT x 8 output channels per item, A from the ring by ldmatrix (a group's channels a
// multiple of 16) or a gather (any channel count). Either halves MT while the band is too small to
// give every thread (FP32) or warp (16-bit) an item.
template <int CIN, int COUT, int K, int S, int P, int G, int IR, int IC, int IPS, int OR, int OC, int OPS, bool RELU,
          int NT, int MT>
__device__ void conv_rows(const T* in, int in_base, T* out, int out_base, const T* __restrict__ w,
                          const float* __restrict__ bias, int lo, int hi, int clo, int chi) {
    constexpr int CING = CIN / G, COUTG = COUT / G;
    const int nc = chi - clo, npix = (hi - lo) * nc;
#if PREC == 0
    // a thread item: PX = 2 * MT pixels x 4 output channels (a float4 of weights per k)
    constexpr int PX = 2 * MT, CQ = (COUTG + 3) / 4;
    const int pq_count = (npix + PX - 1) / PX, items = G * CQ * pq_count;
    if constexpr (MT > 1) {  // a band too small to give every thread an item: fewer pixels per item
        if (items < (int)blockDim.x) {
            conv_rows<CIN, COUT, K, S, P, G, IR, IC, IPS, OR, OC, OPS, RELU, NT, MT / 2>(in, in_base, out, out_base, w,
                                                                                      bias, lo, hi, clo, chi);
            return;
        }
    }
    for (int item = threadIdx.x; item < items; item += blockDim.x) {
        const int pq = item % pq_count, rest = item / pq_count, cq = rest % CQ, g = rest / CQ;
        int r[PX], c[PX];
#pragma unroll
        for (int u = 0; u < PX; ++u) {
            const int p = min(pq * PX + u, npix - 1);  // the tail repeats the last pixel, never stored
            r[u] = lo + p / nc;
            c[u] = clo + p % nc;
        }
        float acc[PX][4] = {};
        const float4* wq = reinterpret_cast<const float4*>(w) + (size_t)g * K * K * CING * CQ + cq;
#pragma unroll 1
        for (int ky = 0; ky < K; ++ky) {
            const T* row[PX];
#pragma unroll
            for (int u = 0; u < PX; ++u)
                row[u] = ring_at<IR, IC, IPS>(const_cast<T*>(in), in_base, r[u] * S - P + ky, c[u] * S - P) + g * CING;
#pragma unroll 1
            for (int kx = 0; kx < K; ++kx) {
#pragma unroll 4
                for (int ci = 0; ci < CING; ++ci) {
                    const float4 wv = __ldg(wq + ((ky * K + kx) * CING + ci) * CQ);
#pragma unroll
                    for (int u = 0; u < PX; ++u) {
                        const float a = row[u][kx * IPS + ci];
                        acc[u][0] = fmaf(a, wv.x, acc[u][0]);
                        acc[u][1] = fmaf(a, wv.y, acc[u][1]);
                        acc[u][2] = fmaf(a, wv.z, acc[u][2]);
                        acc[u][3] = fmaf(a, wv.w, acc[u][3]);
                    }
                }
            }
        }
#pragma unroll
        for (int u = 0; u < PX; ++u) {
            if (pq * PX + u >= npix) break;
            T* o = ring_at<OR, OC, OPS>(out, out_base, r[u], c[u]) + g * COUTG;
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const int co = cq * 4 + v;
                if (co < COUTG) {
                    const float val = acc[u][v] + bias[g * COUTG + co];
                    o[co] = RELU ? fmaxf(val, 0.f) : val;
                }
            }
        }
    }
#else
    // NT: n8 tiles per warp item (kernels/generate.py picks it and packs the weights to match);
    // MT: m16 tiles per warp item, so each B fragment loaded from L1/L2 feeds MT products.
    constexpr int NTILE = NT * 8, CT = (COUTG + NTILE - 1) / NTILE;
    constexpr int KK = K * CING, KKP = (KK + 15) / 16 * 16;
    // 16 consecutive k are 16 channels of one pixel when CING % 16 == 0: ldmatrix straight from the ring
    constexpr bool LDMATRIX = CING % 16 == 0;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int gq = lane >> 2, tq = lane & 3;
    const int mt_count = (npix + 16 * MT - 1) / (16 * MT), items = G * CT * mt_count;
    if constexpr (MT > 1) {  // a band too small to give every warp an item: smaller items, more B loads
        if (items < warps) {
            conv_rows<CIN, COUT, K, S, P, G, IR, IC, IPS, OR, OC, OPS, RELU, NT, MT / 2>(in, in_base, out, out_base, w,
                                                                                      bias, lo, hi, clo, chi);
            return;
        }
    }
    for (int item = warp; item < items; item += warps) {
        const int mt = item % mt_count, rest = item / mt_count, ct = rest % CT, g = rest / CT;
        const int pbase = mt * 16 * MT;
        // pixel rows this lane addresses: ldmatrix rows (lane & 15), or the gather's rows gq and gq + 8
        int ra[MT][2], ca[MT][2];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int p = min(pbase + i * 16 + (LDMATRIX ? (lane & 15) : gq + h * 8), npix - 1);
                ra[i][h] = lo + p / nc;
                ca[i][h] = clo + p % nc;
            }
        float acc[MT][NT][4] = {};
#pragma unroll 1
        for (int ky = 0; ky < K; ++ky) {
            const T* arow[MT][2];
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    arow[i][h] = ring_at<IR, IC, IPS>(const_cast<T*>(in), in_base, ra[i][h] * S - P + ky, ca[i][h] * S - P) +
                                 g * CING + (LDMATRIX ? (lane >> 4) * (16 / (int)sizeof(T)) : 0);
            // this item's B fragments for kernel row ky: NT x 32 lanes x (b0, b1) per k16 step (TF32: per
            // k8 half), contiguous
            constexpr int FRAGS_PER_K16 = PREC == 3 ? 2 : 1;  // TF32: two k8 fragments
            const uint2* wk = reinterpret_cast<const uint2*>(w) +
                              ((size_t)((g * CT + ct) * K + ky) * (KKP / 16)) * FRAGS_PER_K16 * NT * 32 + lane;
#pragma unroll 2
            for (int k0 = 0; k0 < KKP; k0 += 16) k16_step<MT, NT, CING, IPS, KK, LDMATRIX>(acc, arow, k0, wk, tq);
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {  // h = 0: accumulator rows gq, 1: gq + 8
                const int p = pbase + i * 16 + gq + h * 8;
                if (p >= npix) continue;
                T* o = ring_at<OR, OC, OPS>(out, out_base, lo + p / nc, clo + p % nc) + g * COUTG;
#pragma unroll
                for (int j = 0; j < NT; ++j)
#pragma unroll
                    for (int v = 0; v < 2; ++v) {
                        const int co = ct * NTILE + j * 8 + tq * 2 + v;
                        if (co < COUTG) {
                            const float val = acc[i][j][h * 2 + v] + bias[g * COUTG + co];
                            o[co] = V::store(RELU ? fmaxf(val, 0.f) : val);
                        }
                    }
            }
    }
#endif
}
