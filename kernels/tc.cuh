// Tensor-core building blocks shared by the tensor-core kernels (lbl_tc.cu, fused_tc.cu).
//
// PREC 1 / 2: values stored as 16-bit raw bits, IEEE fp16 / bf16, products on mma.sync m16n8k16.
// PREC 3: values stored as FP32, products in TF32 on mma.sync m16n8k8; an operand is rounded to
// TF32 (cvt.rna, to nearest, ties away) where it enters shared memory, the input patch and the maps
// a conv reads, so a product never sees more than TF32's 10-bit mantissa; a map nobody multiplies
// (a conv's output before LRN, the group's output) keeps all of FP32.
// Shared memory is addressed in 16-bit slots (`h16`): a value is VS slots (1, or 2 for TF32). A k
// step is 16 slots of a row, 32 bytes: 16 fp16/bf16 values (m16n8k16) or 8 TF32 values (m16n8k8),
// and the two instructions take their fragments in the same registers from the same ldmatrix
// addresses (an 8x8 b16 matrix is an 8x4 TF32 one, lane l holding row l/4, value l%4), so every
// ldmatrix loop serves both. Accumulation is FP32, every 16-bit conversion is one cvt with
// round-to-nearest-even, LRN computes in FP32, max pool compares stored values (max2 below: exact,
// so the same as an FP32 max). No CUDA headers are needed, so NVRTC and nvcc build the same source.
#pragma once
#include "common.cuh"

#ifndef PREC
#define PREC 1  // 1: fp16, 2: bf16, 3: tf32
#endif
#if PREC != 1 && PREC != 2 && PREC != 3
#error "PREC must be 1 (fp16), 2 (bf16) or 3 (tf32)"
#endif

typedef unsigned short h16;  // a 16-bit shared-memory slot: an fp16/bf16 value, or half a TF32 one
#if PREC == 3
typedef float val_t;        // a stored value (device maps, weights)
constexpr int VS = 2;       // slots per value
#else
typedef h16 val_t;
constexpr int VS = 1;
#endif

__device__ __forceinline__ float h2f(h16 v) {
#if PREC == 1
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
#else
    return __uint_as_float(static_cast<unsigned>(v) << 16);
#endif
}

__device__ __forceinline__ h16 f2h(float f) {
    h16 r;
#if PREC == 1
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(f));
#else
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
#endif
    return r;
}

// FP32 rounded to TF32 (to nearest, ties away), as FP32 bits: what a TF32 operand holds.
__device__ __forceinline__ float tf32_round(float f) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return __uint_as_float(r);
}

// A stored value from FP32: 16-bit rounded; TF32 kept whole (`operand`: rounded to TF32, for a map
// a conv multiplies), and back.
template <bool OPERAND = false>
__device__ __forceinline__ val_t to_val(float f) {
#if PREC == 3
    return OPERAND ? tf32_round(f) : f;
#else
    return f2h(f);
#endif
}
__device__ __forceinline__ float from_val(val_t v) {
#if PREC == 3
    return v;
#else
    return h2f(v);
#endif
}

#if PREC != 3
template <>
struct MapValue<h16> {
    static __device__ __forceinline__ float load(h16 v) { return h2f(v); }
    static __device__ __forceinline__ h16 store(float v) { return f2h(v); }
};
#endif

// Elementwise max of the values in two 32-bit words (a packed pair, or one TF32-precision FP32
// value). Exact: the max of stored values is one of them, the value the FP32 max of the same values
// rounds back to (max-pool stays as if computed in FP32).
__device__ __forceinline__ unsigned max2(unsigned a, unsigned b) {
#if PREC == 3
    return __float_as_uint(fmaxf(__uint_as_float(a), __uint_as_float(b)));
#else
    unsigned r;
#if PREC == 1
    asm("max.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
#else
    asm("max.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
#endif
    return r;
#endif
}
// the same over the 8 slots of a 16-byte word (8 / VS values)
__device__ __forceinline__ uint4 max8(uint4 a, uint4 b) { return make_uint4(max2(a.x, b.x), max2(a.y, b.y), max2(a.z, b.z), max2(a.w, b.w)); }
constexpr unsigned NEG_INF2 = PREC == 1 ? 0xfc00fc00u : PREC == 2 ? 0xff80ff80u : 0xff800000u;  // a word of -inf values

// stmatrix (sm_90): four / two 8x8 16-bit matrices held as mma fragments (lane l: row l/4, columns
// 2(l%4), +1), stored transposed: lane 8q + k gives the address of row k of matrix q's transpose,
// i.e. of its column k (lanes 0-15 for x2). An accumulator tile's column is a pixel, so a pixel's 8
// channels go out as one 16-byte row of a channels-last map.
__device__ __forceinline__ void stmatrix_x4_trans(void* smem_row, unsigned r0, unsigned r1, unsigned r2, unsigned r3) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(s), "r"(r0), "r"(r1), "r"(r2),
                 "r"(r3)
                 : "memory");
}
__device__ __forceinline__ void stmatrix_x2_trans(void* smem_row, unsigned r0, unsigned r1) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("stmatrix.sync.aligned.m8n8.x2.trans.shared.b16 [%0], {%1,%2};\n" ::"r"(s), "r"(r0), "r"(r1) : "memory");
}
// the same, not transposed: lane 8q + k gives the address of row k of matrix q (an accumulator tile
// whose rows are pixels: fused_tc.cu's wgmma epilogue)
__device__ __forceinline__ void stmatrix_x4(void* smem_row, unsigned r0, unsigned r1, unsigned r2, unsigned r3) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(s), "r"(r0), "r"(r1), "r"(r2),
                 "r"(r3)
                 : "memory");
}

// Named barrier `id` (1-15; 0 is __syncthreads) among `count` threads, a multiple of 32: the warps
// that share one weight ring sync among themselves, and the others run on.
__device__ __forceinline__ void bar_sync(int id, int count) { asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory"); }

// Two values packed low/high into the 32-bit register an mma operand takes.
__device__ __forceinline__ unsigned pack2(h16 lo, h16 hi) { return static_cast<unsigned>(lo) | (static_cast<unsigned>(hi) << 16); }

// One k step (32 bytes of k): D += A(16 x k, row) * B(k x 8, col), k = 16 fp16/bf16 or 8 TF32
// values; a: 4 regs, b: 2 regs, d: 4 FP32 accumulators (d0,d1: row g, cols 2t,2t+1; d2,d3: row g+8;
// g = lane/4, t = lane%4).
__device__ __forceinline__ void mma_kstep(float* d, const unsigned* a, const unsigned* b) {
#if PREC == 1
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#elif PREC == 2
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#endif
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// One warp's MT x NT8 grid of m16n8 products over one k step (16 slots), operands in shared memory:
//   A: M x K row-major (K contiguous), row stride lda slots, the warp's rows start at a0;
//   B: N x K row-major (K contiguous, i.e. the col-major B of mma.row.col), stride ldb, from b0.
// Strides of (8 * odd) slots keep the 8 row addresses of each ldmatrix on distinct banks.
template <int MT, int NT8>
__device__ __forceinline__ void warp_mma_k16(float (&acc)[MT][NT8][4], const h16* a0, int lda, const h16* b0, int ldb,
                                             int k) {
    const int lane = threadIdx.x & 31;
    unsigned a[MT][4], b[NT8][2];
#pragma unroll
    for (int i = 0; i < MT; ++i)  // matrices: rows 0-7 k0-7, rows 8-15 k0-7, rows 0-7 k8-15, rows 8-15 k8-15
        ldmatrix_x4(a[i], a0 + (i * 16 + (lane & 15)) * lda + k + (lane >> 4) * 8);
#pragma unroll
    for (int j = 0; j < NT8; j += 2) {  // matrices: n-tile j k0-7, j k8-15, j+1 k0-7, j+1 k8-15
        if (j + 1 < NT8) {
            unsigned r[4];
            ldmatrix_x4(r, b0 + (j * 8 + (lane & 7) + ((lane >> 4) << 3)) * ldb + k + ((lane >> 3) & 1) * 8);
            b[j][0] = r[0];
            b[j][1] = r[1];
            b[j + 1][0] = r[2];
            b[j + 1][1] = r[3];
        } else {  // a last odd n-tile: two matrices, no row past the warp's pixels
            ldmatrix_x2(b[j], b0 + (j * 8 + (lane & 7)) * ldb + k + ((lane >> 3) & 1) * 8);
        }
    }
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT8; ++j) mma_kstep(acc[i][j], a[i], b[j]);
}

// Zero a warp's MT x NT8 grid of m16n8 accumulators.
template <int MT, int NT8>
__device__ __forceinline__ void zero_acc(float (&acc)[MT][NT8][4]) {
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT8; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;
}

// Weight stages streamed through a ring in shared memory by cp.async (kernels/conv1_patch.cuh, the
// channels-last conv2 of lbl_tc.cu and fused_tc.cu): rows m0 .. m0+BM of a row-major [M][KP] weight matrix, BK
// slots of k per stage, stage t in ring slot t % NS, rows LDA = BK + 8 slots apart (for BK = 48: 112 bytes,
// the 8 rows of an ldmatrix on distinct banks). A thread's 16-byte chunks of a stage are fixed:
// their offsets are computed once, and a stage then costs a cp.async and two adds per chunk (a
// strided loop with a division per chunk took ~150 instructions per warp and stage).
template <int BK>
constexpr int WeightStageLDA = BK + 8;

template <int BM, int BK, int KP, int NTHREADS>
struct WeightStage {
    static constexpr int LDA = WeightStageLDA<BK>, NSTAGE = KP / BK;
    static constexpr int CHUNKS = BM * (BK / 8), PER = (CHUNKS + NTHREADS - 1) / NTHREADS;
    static_assert(KP % BK == 0 && BK % 8 == 0, "whole 16-byte chunks and stages");
    int sm[PER], gm[PER];
    // thread: this thread's index among the NTHREADS that issue the stages
    __device__ __forceinline__ explicit WeightStage(int m0, int thread = threadIdx.x) {
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int e = thread + i * NTHREADS, row = e / (BK / 8), ch = e - row * (BK / 8);
            sm[i] = e < CHUNKS ? row * LDA + ch * 8 : -1;
            gm[i] = (m0 + row) * KP + ch * 8;
        }
    }
    // stage t of w into ring slot t % NS, then commit (an empty group past the last stage keeps the
    // wait counts uniform)
    template <int NS>
    __device__ __forceinline__ void issue(h16* ring, const h16* __restrict__ w, int t) const {
        if (t < NSTAGE) {
            h16* dst = ring + (t % NS) * BM * LDA;
#pragma unroll
            for (int i = 0; i < PER; ++i)
                if (sm[i] >= 0) cp_async16(dst + sm[i], w + gm[i] + t * BK);
        }
        cp_async_commit();
    }
};

// A block's warps in PARTS parts (part = warp % PARTS), each multiplying its own ROWS weight rows:
// each part streams them through its own ring (a_ring + part * NS * ROWS * LDA) and, once the
// shared B operand is visible (the caller's first barrier is __syncthreads), syncs on its own named
// barrier BAR0 + part, so the parts need not wait for each other's stages (kernels/conv1_patch.cuh,
// the channels-last conv2 of lbl_tc.cu).
template <int ROWS, int BK, int KP, int NTHREADS, int PARTS, int BAR0>
struct PartRing {
    static constexpr int THREADS = NTHREADS / PARTS;
    using WS = WeightStage<ROWS, BK, KP, THREADS>;
    static __device__ __forceinline__ int part() { return (threadIdx.x >> 5) % PARTS; }
    static __device__ __forceinline__ WS stage(int m0) {  // this thread's index in its part: (warp / PARTS)*32 + lane
        return PARTS == 1 ? WS(m0) : WS(m0 + ROWS * part(), (threadIdx.x >> 5) / PARTS * 32 + (threadIdx.x & 31));
    }
    template <int NS>
    static __device__ __forceinline__ h16* ring(h16* a_ring) { return a_ring + part() * NS * ROWS * WS::LDA; }
    static __device__ __forceinline__ void sync() {
        if (PARTS == 1)
            __syncthreads();
        else
            bar_sync(BAR0 + part(), THREADS);
    }
};

// ---------------------------------------------------------------- a weight ring shared by a cluster
// The blocks of a cluster that run the same schedule on different images (fused_tc.cu WCLUSTER) need
// the same weight stages at the same time. Each block fetches 1/CL of a stage from L2 by a bulk copy
// multicast to every block of the cluster (cp.async.bulk ... .multicast::cluster, sm_90a), so L2 sends
// each stage once per cluster instead of once per block. Per ring slot two mbarriers in every block:
// `full` (its producer's arrive.expect_tx of the whole stage; every block's copy completes its bytes
// there) and `empty` (one arrival per consuming warp of every block: a slot is refilled only when all
// of the cluster's consumers are done with it, since the refill lands in all of them).
__device__ __forceinline__ unsigned smem_addr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
// every thread of every block of the cluster; orders the shared-memory accesses before it (release)
// against the cluster's accesses after it (acquire), remote ones included
__device__ __forceinline__ void cluster_sync_all() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// the address of this block's shared `addr` in block `rank` of the cluster
__device__ __forceinline__ unsigned mapa_shared(unsigned addr, unsigned rank) {
    unsigned r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(addr), "r"(rank));
    return r;
}
// two floats to a cluster shared-memory address (mapa_shared), 8-byte aligned
__device__ __forceinline__ void st_cluster_f2(unsigned addr, float a, float b) {
    asm volatile("st.shared::cluster.v2.f32 [%0], {%1, %2};" ::"r"(addr), "f"(a), "f"(b) : "memory");
}
__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(arrivals) : "memory");
}
// makes the initialised barriers visible to the cluster's async copies (a cluster sync follows)
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
// wait until the barrier's phase of parity `parity` has completed (a fresh barrier counts the phase
// before its first, parity 1, as completed). RING_WAIT_CLUSTER 0 (the default since perf-notes step
// 29): the default CTA scope, as CUTLASS's TMA pipelines wait; 1 (as measured in step 28): acquire at
// cluster scope, which ptxas follows with an L1 invalidate (CCTL.IVALL) per wait. 0 measured
// 0.97-1.00x the time of 1 (steps 28d and 29, pipeline.bench --set RING_WAIT_CLUSTER=1 for the A/B).
#ifndef RING_WAIT_CLUSTER
#define RING_WAIT_CLUSTER 0
#endif
#if RING_WAIT_CLUSTER
#define TC_MBAR_WAIT_SEM ".acquire.cluster"
#else
#define TC_MBAR_WAIT_SEM ""
#endif
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    unsigned done;
    do {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity" TC_MBAR_WAIT_SEM ".shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(smem_addr(bar)), "r"(parity)
                     : "memory");
    } while (!done);
}
// one arrival on the barrier at `bar`'s offset in block `rank` of the cluster (this block included).
// Default semantics (release at CTA scope), as CUTLASS's TMA pipelines release a slot: what it must
// order is the warp's ldmatrix reads of a stage before the refill of that slot. ptxas issues the
// arrival before the last k step's mma (whose ldmatrix data may still be in flight); the reads go
// ahead of the arrival in the SM's shared-memory pipe, and the refill is an L2 round trip after the
// peer sees it. The PTX model asks for a cluster-scope release there, which costs a MEMBAR.ALL.GPU
// per arrival (measured in the SASS with `.release.cluster`).
__device__ __forceinline__ void mbar_arrive_cluster(unsigned long long* bar, unsigned rank) {
    asm volatile("{\n\t.reg .b32 ra;\n\tmapa.shared::cluster.u32 ra, %0, %1;\n\t"
                 "mbarrier.arrive.shared::cluster.b64 _, [ra];\n}" ::"r"(smem_addr(bar)), "r"(rank)
                 : "memory");
}
// orders this thread's generic-proxy shared-memory accesses before later async-proxy ones (bulk
// copies) to the same addresses
__device__ __forceinline__ void fence_proxy_async_smem() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
                 : "memory");
}
// `bytes` (a multiple of 16, both ends 16-byte aligned) from global `src` to `dst`'s offset in every
// block of `mask`, completing the bytes on the barrier at `bar`'s offset in each
__device__ __forceinline__ void bulk_copy_multicast(void* dst, const void* src, unsigned bytes, unsigned long long* bar,
                                                    unsigned short mask) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], %4;"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "h"(mask)
                 : "memory");
}

// `bytes` from global `src` to this block's `dst`, completing them on this block's barrier `bar`
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, unsigned long long* bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar))
                 : "memory");
}
// one arrival on this block's barrier (release at CTA scope)
__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}

// A ring of NS weight stages of BYTES each, filled by the CL blocks of a cluster together (a bulk
// copy per block and stage, 1/CL of it, multicast to all CL). The stage sequence is counted per block
// (`g`, the same in every block of the cluster: they run the same schedule); stage g sits in slot
// g % NS. CONSUMERS: warps per block that read each stage. CL 1: a ring of this block alone (its own
// bulk copies, its own releases), for the blocks of a cluster that read different stages (fused_tc.cu
// GROUP_SPLIT). The source of stage g is contiguous: the host packs the weights stage by stage, each
// in the ring's own padded layout.
template <int NS, int BYTES, int CL, int CONSUMERS>
struct ClusterRing {
    static_assert(BYTES % (16 * CL) == 0, "each block's share of a stage is whole 16-byte units");
    unsigned long long* bar;  // full[NS], empty[NS]
    unsigned char* ring;
    __device__ __forceinline__ ClusterRing(unsigned long long* bars, void* ring_smem)
        : bar(bars), ring(static_cast<unsigned char*>(ring_smem)) {}
    static constexpr int BAR_WORDS = 2 * NS;  // 8-byte barrier words per ring: full[NS], empty[NS]
    // one thread, before the cluster sync that precedes any use
    __device__ __forceinline__ void init() const {
        for (int s = 0; s < NS; ++s) {
            mbar_init(bar + s, 1);
            mbar_init(bar + NS + s, CONSUMERS * CL);
        }
    }
    __device__ __forceinline__ h16* slot(unsigned g) const { return reinterpret_cast<h16*>(ring + (g % NS) * BYTES); }
    // producer (one thread per block): stage g from `src` once every block has released its slot
    __device__ __forceinline__ void produce(unsigned g, const unsigned char* src) const {
        const unsigned s = g % NS;
        mbar_wait(bar + NS + s, ((g / NS) & 1) ^ 1);
        mbar_arrive_expect_tx(bar + s, BYTES);
        if (CL == 1) {  // this block's own ring (fused_tc.cu GROUP_SPLIT: the cluster's blocks read different stages)
            bulk_copy(ring + s * BYTES, src, BYTES, bar + s);
            return;
        }
        const unsigned part = cluster_rank();
        bulk_copy_multicast(ring + s * BYTES + part * (BYTES / CL), src + part * (BYTES / CL), BYTES / CL, bar + s,
                            static_cast<unsigned short>((1u << CL) - 1));
    }
    // every consumer thread: stage g has landed
    __device__ __forceinline__ void wait(unsigned g) const { mbar_wait(bar + g % NS, (g / NS) & 1); }
    // every consumer warp, once its reads of stage g are done: release the slot in every block
    __device__ __forceinline__ void release(unsigned g) const {
        __syncwarp();
        const int lane = threadIdx.x & 31;
        if (CL == 1) {
            if (lane == 0) mbar_arrive(bar + NS + g % NS);
        } else if (lane < CL) {
            mbar_arrive_cluster(bar + NS + g % NS, lane);
        }
    }
};
