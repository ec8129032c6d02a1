// Fused AlexNet front end on the tensor cores (variants `fused-{reuse,recompute}-t<tile>-fp16/-bf16/
// -tf32`): ONE kernel for conv1 -> relu -> LRN -> pool1 -> conv2(groups 2) -> relu -> LRN -> pool2
// with 16-bit values (mma.sync m16n8k16) or FP32 values and TF32 products (m16n8k8), FP32
// accumulation (kernels/tc.cuh; shared memory in 16-bit slots, VS per value). Intermediates live in
// shared memory only; device memory sees the input, the weights (L2-resident) and pool2.
//
// A block (256 threads, 8 warps) owns a TILE_Y x TILE_X tile of pool2 (all 256 channels) of one image
// and builds its whole pyramid (recompute; grid (tiles_x, tiles_y, N), balanced tiles as fused.cu),
// or walks a column strip of such tiles top to bottom (REUSE; grid (tiles_x, 1, N)); with clusters
// (WCLUSTER, below) x counts the cluster's blocks too and z image slots of WCLUSTER images:
//   1. conv1: implicit GEMM M = 96, N = the conv1 pixels under a band of the tile's pool1 rows,
//      K = 3*11*16 (kx padded), in chunks of 4 conv1 rows of 8-column tiles (one fewer for a
//      clipped strip); B read by ldmatrix from a shared-memory copy of the chunk's input patch, A
//      (weights) streamed through cp.async stages (conv1_patch.cuh, as the lbl conv1). bias + ReLU
//      -> c1, channels-last [pixel][96 VS + 8 pad slots] in shared memory, stored by stmatrix
//      (TF32: 4-byte stores).
//   2. LRN in place over each pixel's 96 channels, then 3x3/2 max pool into the pool1 tile,
//      channels-last, which carries conv2's 2-pixel zero padding. A band's last conv1 row is kept
//      for the next band (the 3x3/2 windows share it); with REUSE, a step keeps the previous step's
//      last 5 pool1 rows.
//   3. conv2: implicit GEMM per group M = 128, N = the conv2 pixels under the pool2 tile, K = 5*5*48
//      in (ky, kx, c) order; B is read by ldmatrix straight from the channels-last pool1 tile (a
//      k step is 16 channels of one (ky, kx), 8 for TF32: 16 contiguous bytes x 2 per pixel), no
//      im2col copy. (CONV2_WGMMA 1, the 16-bit builds at tiles 2x7 and 4x7: wgmma, the pixels as A
//      and the weights as B; below.)
//      Warps 0-3 take group 0, 4-7 group 1, 32 channels each; each group streams its weights
//      through its own ring of 3 or 4 stages (4 where it fits in phase 1's space). bias + ReLU -> c2
//      [pixel][256 VS + 8] (reusing conv1's space). With REUSE, c2's row 0 is the previous step's
//      last conv2 row, and conv2 starts at row 1.
//      WCLUSTER 2 (every registry build): the blocks run as clusters of 2 on the same tiles of two
//      images, so they need the same conv2 weight stages at the same time; each block fetches half
//      of every stage by one bulk copy multicast to both (tc.cuh ClusterRing, mbarriers), and L2
//      sends each stage once per cluster (conv2 was bound by L2 -> SM bytes: 21 steps x 1.2 MB per
//      image at TF32; docs/perf-notes.md step 28). WCLUSTER 1: a cp.async ring per group, synced on
//      its own named barrier.
//   4. LRN over 256 channels in place, 3x3/2 max pool to pool2 in device memory (NCHW).
// GROUP_SPLIT 1 (TF32 at 2x13, whose FP32 maps would need about 361 KB in one block): the cluster's 2
// blocks run one image's tile, block g computing conv1 channels 32g .. 32g + 63, LRN and pool1 of
// conv2 group g's 48, conv2 group g (both warpgroups, from the block's own weight ring) and LRN2 and
// pool2 of its 128 channels, with the 2 channels of the peer that LRN2's window needs sent across
// the cluster each step (details at the define below).
// 16-bit storage rounds the same maps as lbl_tc.cu (conv1, norm1, conv2, norm2, pool2). TF32
// rounds what the convs multiply, the input patch and norm1 (pool1 of TF32 values is the TF32
// rounding of pool1, as lbl's conv2 rounds it), and keeps all of FP32 elsewhere.
// Compile-time: TILE_Y, TILE_X, REUSE, PREC, CONV1_BAND, CONV1_MAX_COLS, CONV2_CHUNK, WCLUSTER, CONV2_WGMMA,
// GROUP_SPLIT, CONV1_STAGES, CONV2_STAGE_SLOTS, EXPECT_SMEM_BYTES (kernels/registry.py
// fused_tc_smem_bytes); knobs whose other value is kept for
// an A/B (pipeline.bench --set; docs/perf-notes.md steps 28d, 29 and 30): CONV2_START_CLUSTER_SYNC,
// tc.cuh's RING_WAIT_CLUSTER, conv1's CONV1_S2D (and CONV1_S2D_STAGES), conv1_patch.cuh's
// CONV1_PATCH_RB, CONV1_PATCH_PREFETCH and CONV1_PATCH_VEC; and the diagnostic CONV1_ABLATE.
#include "conv1_patch.cuh"
#include "tc.cuh"

#ifndef TILE_Y
#define TILE_Y 2
#endif
#ifndef TILE_X
#define TILE_X TILE_Y
#endif
#ifndef PHASE_TIMING
#define PHASE_TIMING 0
#endif
#ifndef REUSE
#define REUSE 0  // 1: a block walks its column strip and keeps the 5 pool1 rows tiles share (reuse in y)
#endif
#ifndef WCLUSTER
#define WCLUSTER 1  // 2, 4: clusters of blocks that run the same tiles of 2 (4) images share the weight stages (sm_90a)
#endif
#if WCLUSTER != 1 && WCLUSTER != 2 && WCLUSTER != 4
#error "WCLUSTER must be 1, 2 or 4"
#endif
// How a conv2 phase starts with clusters (its ring aliases phase 1's space, and the peer's copies land
// in it): 0 (the default since perf-notes step 29), each block arrives on a `phase 1 done` mbarrier in
// both blocks and only the producers wait on it, before their first copy; 1 (as measured in step 28),
// a cluster barrier, whose release ptxas compiles to a MEMBAR.ALL.GPU (it waits for the previous
// step's pool2 stores too). 0 with RING_WAIT_CLUSTER 0 measured 0.97-1.00x the time of both at 1.
#ifndef CONV2_START_CLUSTER_SYNC
#define CONV2_START_CLUSTER_SYNC 0
#endif
// conv2's products (with clusters only: the host packs the weight stages for it): 0, mma.sync, the
// weights as A (128 channels x k) through ldmatrix and the pool1 pixels as B; 1, wgmma (sm_90a): a
// warpgroup per conv2 group, the pixels as A from registers (ldmatrix, 64 per product: 16 per warp,
// up to 2 x 64 per pass; the next stage's loaded while this stage's products run) and the weights as
// B straight from the ring (a shared-memory descriptor; the host packs each stage in wgmma's
// core-matrix layout, api.pack_weight_stages_core), 3 products of m64n128 per 64 pixels and stage in
// flight at once. The registry's 16-bit builds at tiles 2x7 and 4x7 take 1 (registry.
// FUSED_TC_CONV2_WGMMA_TILES): reuse-t4x7-fp16 0.87x the time of 0, 2x7 0.93x (perf-notes step 29);
// the others 0 (TF32 1x7 1.03-1.09x slower: its 30 new pixels a step fill 64-row products poorly).
#ifndef CONV2_WGMMA
#define CONV2_WGMMA 0
#endif
#if CONV2_WGMMA && WCLUSTER == 1
#error "CONV2_WGMMA needs the cluster ring (WCLUSTER > 1)"
#endif
// 1: the two blocks of a cluster split one image's tile by conv2 group instead of running it for two
// images (the registry's TF32 2x13 builds, whose FP32 maps do not fit one block: perf-notes step 34).
// Block g (its cluster rank) computes conv1 channels 32g .. 32g + 63 (its pool1 group's 48 and the
// LRN window's 2 neighbours, in whole m16 tiles: a third more conv1 than its share, no exchange),
// normalises and pools its group's 48 into a pool1 tile of 48 channels (conv2 group g's input),
// computes conv2 group g (mma.sync: 16 channels a warp; wgmma: both warpgroups, 64 pixels each) from
// its own weight ring (bulk copies into this block only) and LRN2 and pool2 of channels 128g ..
// 128g + 127. LRN2's window crosses the groups: after conv2 each block stores the peer's 2 window
// channels into the peer's shared memory (st.shared::cluster), then one cluster barrier a step.
#ifndef GROUP_SPLIT
#define GROUP_SPLIT 0
#endif
#if GROUP_SPLIT && (WCLUSTER != 2 || CONV1_S2D || PREC != 3)
#error "GROUP_SPLIT: TF32, clusters of 2 (a block per conv2 group) and the kx16 conv1"
#endif
// conv1 weight stages in flight (the ring's depth)
#ifndef CONV1_STAGES
#define CONV1_STAGES 3
#endif
// 1 (the default since perf-notes step 31, but with CONV1_S2D, which has its own patch load): while a
// conv1 chunk's products run, L2 is asked for the next chunk's input rows (c1p::prefetch_patch), so
// that chunk's patch load waits on L2, not DRAM (with 9 rows in flight a warp, 0 measured 0.997x the
// time of 1, and asking L1 1.000x; perf-notes step 32)
#ifndef CONV1_PATCH_PREFETCH
#define CONV1_PATCH_PREFETCH (!CONV1_S2D)
#endif
// conv1 as a 3x3 convolution over the input's 4x4 space-to-depth (48 channels: c, dy, dx), on wgmma
// with both operands in shared memory (sm_90a, 16-bit only; perf-notes step 30): A = 64 pixels of the
// chunk, read by a descriptor straight from a patch of 8-channel planes (a pixel's 8 values are one
// 16-byte core-matrix row, a row of pixels one run of rows, so every (dy, dx) is a shifted start
// address); B = a part's 48 weight rows of a stage, one (dy, dx) x 48 channels (K 432 for 363, where
// the kx16 patch pads to 528). The host packs the weights for it (kernels/api.py pack_weights_s2d).
#ifndef CONV1_S2D
#define CONV1_S2D 0
#endif
// CONV1_S2D's weight ring depth per part (stage t + depth - 2 is issued while stage t's products run)
#ifndef CONV1_S2D_STAGES
#define CONV1_S2D_STAGES 4
#endif
#if CONV1_S2D && (PREC == 3 || WCLUSTER == 1)
#error "CONV1_S2D: 16-bit values and the sm_90a build, which WCLUSTER > 1 selects (pipeline/core/nvcc.py target_arch)"
#endif
#if CONV1_S2D && (CONV1_PATCH_PREFETCH || CONV1_PATCH_VEC || CONV1_ABLATE)
#error "CONV1_S2D has its own patch load: CONV1_PATCH_PREFETCH, CONV1_PATCH_VEC and CONV1_ABLATE do not apply to it"
#endif

namespace ftc {

// Phase timing (-DPHASE_TIMING=1, as fused.cu; pipeline/stages/phases.py reads these names): thread 0
// reads the SM clock after the barrier that ends each phase and adds the cycles to its counter.
enum Phase { PH_CONV1, PH_NORM1, PH_POOL1, PH_CONV2, PH_NORM2, PH_POOL2, NPHASE };
#if PHASE_TIMING
}  // namespace ftc
extern "C" {
__device__ unsigned long long fused_phase_cycles[ftc::NPHASE + 1];
}
namespace ftc {
#endif
#define PHASE_MARK(p) PHASE_MARK_INTO(fused_phase_cycles, p, phase_t)  // common.cuh

constexpr int NT = 256;
constexpr int CIN = 3, C1 = 96, C2 = 256, G2 = 2, C1G = C1 / G2, C2G = C2 / G2;
// channels a block computes or holds (GROUP_SPLIT: one group's share, above)
constexpr int C1B = GROUP_SPLIT ? 64 : C1;   // conv1 (c1, its carried row)
constexpr int C1P = GROUP_SPLIT ? C1G : C1;  // pool1 (the pool1 tile)
constexpr int C2B = GROUP_SPLIT ? C2G : C2;  // conv2 (c2)
constexpr int MT1 = C1B / 2 / 16;            // conv1's m16 tiles per warp (its 2 channel parts)
constexpr int KS1 = 11, ST1 = 4, KS2 = 5;
constexpr int TY = TILE_Y, TX = TILE_X;
constexpr int P1H = 2 * TY + 5, P1W = 2 * TX + 5;      // pool1 tile incl. conv2's zero padding
// pool1 rows per conv1 pass: a step's new rows, or the 5 steps share; the registry lowers it where
// the shared memory would not fit
#ifndef CONV1_BAND
#define CONV1_BAND (2 * TY > 5 ? 2 * TY : 5)
#endif
constexpr int BAND = CONV1_BAND;
// Conv1 columns a block holds (c1's rows, the input patch's width): by default all that a tile's pool1
// columns stand on, conv2's padding columns included. A tile as wide as the pool2 map (AlexNet: 13,
// kernels/registry.py FUSED_TC_CONV1_COLS) has one strip, whose padding columns lie outside the map,
// so it needs fewer (227 input: 55, not 63) and the build holds only those: c1's rows and the
// patch of a 56-column chunk, not 64 (16 KB less shared memory at 2x13; a 55-column strip computed
// 56-column chunks before too, by the clipped-strip instantiation); kernels/api.py refuses a map
// whose strips need more.
#ifndef CONV1_MAX_COLS
#define CONV1_MAX_COLS (2 * P1W + 1)
#endif
constexpr int C1H = 2 * BAND + 1, C1W = CONV1_MAX_COLS;  // conv1 rows/cols under a band (at most)
static_assert(C1W >= 3 && C1W <= 2 * P1W + 1, "CONV1_MAX_COLS: at most the columns under the pool1 tile");
constexpr bool C1W_CAPPED = C1W < 2 * P1W + 1;
constexpr int C2H = 2 * TY + 1, C2W = 2 * TX + 1;      // conv2 tile
constexpr int LD1 = C1B * VS + 8, LD2 = C2B * VS + 8;  // channels-last pixel strides (slots): 208 / 528 B (TF32 400 / 1040)
constexpr int LDP = C1P * VS + 8;                      // the pool1 tile's (LD1 unless GROUP_SPLIT)
constexpr int K2 = KS2 * KS2 * C1G * VS;               // slots of 1200 values = 25 (ky, kx) x 48 channels
constexpr int RW1 = 4, NX1 = (C1W + 7) / 8 * 8;       // conv1 chunks: 4 rows of a band, its columns padded
constexpr int NS1 = CONV1_STAGES;                      // conv1 weight stages in flight
using Patch1 = c1p::Patch<RW1, NX1>;
// conv2 weight stage: a group's 128 rows x BK2 slots, 48 by default: one (ky, kx) (TF32: half of one).
// 96 (TF32 only) takes a whole (ky, kx) a stage: half the stages, each with twice the products per
// wait (the split TF32 builds: 24 k values a stage left conv2 waiting on its ring, perf-notes step 34).
#ifndef CONV2_STAGE_SLOTS
#define CONV2_STAGE_SLOTS 48
#endif
constexpr int BK2 = CONV2_STAGE_SLOTS, LDA2 = BK2 + 8;
constexpr int SPP2 = C1G * VS / BK2;                   // stages per (ky, kx)
static_assert(BK2 % 16 == 0 && SPP2 * BK2 == C1G * VS, "CONV2_STAGE_SLOTS: whole k steps, whole stages per (ky, kx)");
constexpr int NST2 = K2 / BK2;                         // conv2 weight stages: 25 (50)
constexpr int N2 = C2H * C2W;                          // conv2 pixels of a tile
// conv2 runs over its pixels in chunks (a multiple of 16, for ldmatrix pairs) of at most
// CONV2_CHUNK, so a warp's accumulators (2 x chunk/8 x 4) stay in registers.
#ifndef CONV2_CHUNK
#define CONV2_CHUNK 80
#endif

constexpr int al8(int v) { return (v + 7) / 8 * 8; }   // slots -> 16-byte multiples
constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int SZ_P1 = al8(P1H * P1W * LDP);
constexpr int SZ_C1 = al8((C1H * C1W + 1) * LD1);  // + a spare pixel for the stores of unused columns
constexpr int SZ_A1 = NS1 * C1B * c1p::LDA, SZ_B1 = Patch1::HALVES;  // conv1 weight ring, input patch
constexpr int SZ_C2 = al8((N2 + 1) * LD2);  // + a spare pixel for the stores of a chunk's padding
// Carried rows (the paper's reuse one layer further down): pool1's 3x3/2 windows of two bands
// overlap in one conv1 row, so a band's last conv1 row (after LRN) is kept for the next band
// (ROW1); with REUSE, pool2's windows of two steps overlap in one conv2 row, kept as c2's row 0.
constexpr int SZ_ROW1 = al8(C1W * LD1);
constexpr int SZ_ROW2 = REUSE ? al8(C2W * LD2) : 0;
// After the pool1 tile: phase 1 (conv1, LRN, pool1) = [c2 row 0 | c1 | A1 | B1], phase 2 (conv2,
// LRN, pool2) = [c2 | A2]; ROW1 past c1 and past A2, so neither phase's live data covers it (A1 and
// B1 are idle when it is written and read).
constexpr int SZ_PH1 = SZ_ROW2 + SZ_C1 + SZ_A1 + SZ_B1;
// conv2 weight stages: 4 deep where that (and ROW1 after it) fits in the space phase 1 needs
// anyway, else 3 (GROUP_SPLIT: one group's ring, up to 6 deep where they fit)
constexpr int fits_stages2(int ns) { return SZ_C2 + ns * C2B * LDA2 + SZ_ROW1 <= SZ_PH1; }
constexpr int NS2 = GROUP_SPLIT ? (fits_stages2(6) ? 6 : fits_stages2(5) ? 5 : fits_stages2(4) ? 4 : 3)
                                : (fits_stages2(4) ? 4 : 3);
constexpr int SZ_A2 = NS2 * C2B * LDA2;
constexpr int OFF_P1 = 0, OFF_U = SZ_P1;
constexpr int OFF_C2 = OFF_U, OFF_A2 = OFF_C2 + SZ_C2;
constexpr int OFF_C1 = OFF_U + SZ_ROW2, OFF_A1 = OFF_C1 + SZ_C1, OFF_B1 = OFF_A1 + SZ_A1;
constexpr int OFF_ROW1 = OFF_U + cmax(SZ_ROW2 + SZ_C1, SZ_C2 + SZ_A2);
// WCLUSTER > 1: each conv2 group's ring has NS2 full and NS2 empty mbarriers (tc.cuh ClusterRing), past
// the rest
// a group's conv2 weight stage: padded rows (ldmatrix), or wgmma's core matrices (no padding)
constexpr int STAGE2_BYTES = C2G * (CONV2_WGMMA ? BK2 : LDA2) * 2;
// a conv2 group's ring, read by its 4 warps (GROUP_SPLIT: the block's one ring, by all 8, filled by the block alone)
using Ring2 = ClusterRing<NS2, STAGE2_BYTES, GROUP_SPLIT ? 1 : WCLUSTER, GROUP_SPLIT ? 8 : 4>;
constexpr int RINGS2 = GROUP_SPLIT ? 1 : G2;
// and with CONV2_START_CLUSTER_SYNC 0 one more: the cluster's blocks are done with phase 1
constexpr bool PHASE1_BARRIER = WCLUSTER > 1 && !CONV2_START_CLUSTER_SYNC && !GROUP_SPLIT;  // `phase 1 done`, below
constexpr int BAR_BYTES = WCLUSTER > 1 ? (RINGS2 * Ring2::BAR_WORDS + (PHASE1_BARRIER ? 1 : 0)) * 8 : 0;
constexpr int OFF_BARS_BYTES = 2 * cmax(OFF_U + SZ_PH1, OFF_ROW1 + SZ_ROW1);
// GROUP_SPLIT: LRN2's 2 channels from the peer for each conv2 pixel, by step parity (the peer writes
// the next step's while this block may still read this one's), FP32
constexpr int HALO_BYTES = GROUP_SPLIT ? 2 * N2 * 2 * 4 : 0;
constexpr int OFF_HALO_BYTES = OFF_BARS_BYTES + BAR_BYTES;
constexpr int SMEM_BYTES = OFF_HALO_BYTES + HALO_BYTES;
#ifdef EXPECT_SMEM_BYTES
static_assert(SMEM_BYTES == EXPECT_SMEM_BYTES, "kernels/registry.py fused_tc_smem_bytes() disagrees with fused_tc.cu");
#endif
// Pool1 rows per band: CONV1_BAND for a band that starts without a carried row, an even count
// after (2B new conv1 rows, whole chunks of RW1 = 4 where 2B is a multiple of 4)
constexpr int BAND_CARRIED = BAND - BAND % 2 > 0 ? BAND - BAND % 2 : BAND;

// Copy n slots (a multiple of 8) between 16-byte aligned shared regions, the whole block.
__device__ __forceinline__ void copy_block(h16* dst, const h16* src, int n) {
    for (int e = threadIdx.x; e < n / 8; e += NT) reinterpret_cast<uint4*>(dst)[e] = reinterpret_cast<const uint4*>(src)[e];
}

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

// LRN across the channels of each pixel, in place. TPP threads (of one warp) share a pixel, each
// owning CPT = C/TPP consecutive channels, read and written 4 at a time; the window's halo
// channels come from the neighbouring threads by shuffle (the LRNs of a thread are independent, so
// they overlap in the pipeline; a pixel per thread was a serial chain of C steps). OPERAND: the
// output is a conv's operand (TF32: rounded to TF32; tc.cuh to_val). The window's channels past
// either end are zero, unless halo_side says that those below (-1) or above (+1) these C are held
// elsewhere: halo[p * halo_stride + d] for pixel p (GROUP_SPLIT, FP32: LRN2's from the peer, LRN1's
// from the block's other conv1 channels; the window's 2 on that side).
template <int C, int LD, int TPP, bool OPERAND>
__device__ __forceinline__ void lrn_pixels(h16* buf, int npix, float alpha_over_n, float beta, float kparam,
                                           const float* halo = nullptr, int halo_side = 0, int halo_stride = 2) {
    constexpr int CPT = C / TPP, PRE = (LRN_SIZE - 1) / 2, POST = LRN_SIZE - 1 - PRE;
    static_assert(C % TPP == 0 && 32 % TPP == 0, "a pixel's threads must split its channels within a warp");
    static_assert(CPT % 4 == 0 && CPT >= PRE && CPT >= POST && LD % (4 * VS) == 0,
                  "8- (TF32: 16-) byte accesses; the halo from one neighbour");
    const int sub = threadIdx.x % TPP;
    const int rounds = (npix + NT / TPP - 1) / (NT / TPP);  // every thread runs every round (shuffles)
    for (int rd = 0; rd < rounds; ++rd) {
        const int p = rd * (NT / TPP) + threadIdx.x / TPP;
        h16* v = buf + (p < npix ? p : 0) * LD + sub * CPT * VS;
        float x[PRE + CPT + POST];  // x[i] = in[sub*CPT - PRE + i]
#pragma unroll
        for (int q = 0; q < CPT / 4; ++q) {
#if PREC == 3
            const float4 r = reinterpret_cast<const float4*>(v)[q];
            x[PRE + 4 * q + 0] = r.x;
            x[PRE + 4 * q + 1] = r.y;
            x[PRE + 4 * q + 2] = r.z;
            x[PRE + 4 * q + 3] = r.w;
#else
            const uint2 r = reinterpret_cast<const uint2*>(v)[q];
            x[PRE + 4 * q + 0] = h2f(r.x & 0xffff);
            x[PRE + 4 * q + 1] = h2f(r.x >> 16);
            x[PRE + 4 * q + 2] = h2f(r.y & 0xffff);
            x[PRE + 4 * q + 3] = h2f(r.y >> 16);
#endif
        }
#pragma unroll
        for (int d = 0; d < PRE; ++d) {  // the previous thread's last channels; zero below channel 0
            const float t = __shfl_up_sync(0xffffffffu, x[CPT + d], 1, TPP);
            x[d] = sub > 0 ? t : halo_side < 0 && p < npix ? halo[p * halo_stride + d] : 0.f;
        }
#pragma unroll
        for (int d = 0; d < POST; ++d) {  // the next thread's first channels; zero past channel C-1
            const float t = __shfl_down_sync(0xffffffffu, x[PRE + d], 1, TPP);
            x[PRE + CPT + d] = sub < TPP - 1 ? t : halo_side > 0 && p < npix ? halo[p * halo_stride + d] : 0.f;
        }
        if (p < npix) {
#pragma unroll
            for (int q = 0; q < CPT / 4; ++q) {
                val_t y[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int i = 4 * q + u;
                    float s = 0.f;
#pragma unroll
                    for (int d = 0; d < PRE + POST + 1; ++d) s = fmaf(x[i + d], x[i + d], s);
                    y[u] = to_val<OPERAND>(lrn_value(x[i + PRE], s, alpha_over_n, beta, kparam));
                }
#if PREC == 3
                reinterpret_cast<float4*>(v)[q] = make_float4(y[0], y[1], y[2], y[3]);
#else
                reinterpret_cast<uint2*>(v)[q] = make_uint2(pack2(y[0], y[1]), pack2(y[2], y[3]));
#endif
            }
        }
    }
}

// A warp's MT x NT8 grid of m16n8 accumulators (kernels/tc.cuh layout) + bias, ReLU, stored into a
// channels-last shared region dst[pixel * ld + channel * VS], channels m0 + 0 .. 16*MT-1: 16-bit
// values rounded, by stmatrix (a pixel's 8 channels per 16-byte row; 2-byte stores were a quarter
// of conv1's instructions); FP32 (TF32 builds, kept whole: LRN reads them) by 4-byte stores, the 8
// lanes of a fragment row on 32 contiguous bytes. The warp's pixel n (< NT8*8) goes to
// pixel_of(n), a map's spare pixel where n is not stored. conv1's and conv2's epilogue.
template <int MT, int NT8, class PixelOf>
__device__ __forceinline__ void store_bias_relu(const float (&acc)[MT][NT8][4], h16* dst, int ld, int m0,
                                                const float* __restrict__ bias, PixelOf pixel_of) {
    const int lane = threadIdx.x & 31;
    float bv[MT][2];  // bias of the lane's fragment rows: channels m0 + 16i + lane/4 (+ 8)
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) bv[i][rr] = __ldg(bias + m0 + i * 16 + (lane >> 2) + 8 * rr);
#if PREC == 3
    float* d = reinterpret_cast<float*>(dst);
#pragma unroll
    for (int j = 0; j < NT8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float* px = d + pixel_of(j * 8 + 2 * (lane & 3) + h) * (ld / 2) + m0 + (lane >> 2);
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int rr = 0; rr < 2; ++rr) px[i * 16 + 8 * rr] = fmaxf(acc[i][j][2 * rr + h] + bv[i][rr], 0.f);
        }
#else
    auto h2 = [](float a, float b, float bias_v) { return pack2(f2h(fmaxf(a + bias_v, 0.f)), f2h(fmaxf(b + bias_v, 0.f))); };
#pragma unroll
    for (int j = 0; j < NT8; ++j) {
        // lane 8q + k: pixel k of matrix q, whose channels are the lo (q even) or hi 8 of an m16 tile
        h16* row = dst + pixel_of(j * 8 + (lane & 7)) * ld + m0 + ((lane >> 3) & 1) * 8;
        unsigned r[MT][2];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int rr = 0; rr < 2; ++rr) r[i][rr] = h2(acc[i][j][2 * rr], acc[i][j][2 * rr + 1], bv[i][rr]);
#pragma unroll
        for (int i = 0; i + 1 < MT; i += 2)  // matrices (i, lo), (i, hi), (i+1, lo), (i+1, hi)
            stmatrix_x4_trans(row + (i + (lane >> 4)) * 16, r[i][0], r[i][1], r[i + 1][0], r[i + 1][1]);
        if (MT % 2) stmatrix_x2_trans(row + (MT - 1) * 16, r[MT - 1][0], r[MT - 1][1]);
    }
#endif
}

// conv1 on the band's conv1 rows [first, cny) into c1 (channels-last, cnx pixels per row, cnx <= NXC):
// chunks of RW1 rows of NXC columns; warp (wm, wr) computes channels m0 + wm*16*MT1 .. +16*MT1 of chunk
// row wr (m0: the block's first conv1 channel, GROUP_SPLIT; c1 holds channels m0 ..).
template <int NXC>
__device__ __forceinline__ void conv1_rows(h16* c1, h16* a1s, h16* b1s, const val_t* __restrict__ xn,
                                           const val_t* __restrict__ w1, const float* __restrict__ b1, int H, int W,
                                           int cy0, int cx0, int first, int cny, int cnx, int m0) {
    const c1p::WarpPlace<2, RW1> wp;
    for (int r0 = first; r0 < cny; r0 += RW1) {
        __syncthreads();  // the previous chunk no longer reads the patch or the weight ring
        c1p::conv1_patch_prologue<2, NS1, NT, MT1>(a1s, w1, m0);
        if (!(CONV1_ABLATE & 1) || r0 == first) c1p::load_patch<RW1, NXC, NT>(b1s, xn, H, W, (cy0 + r0) * ST1, cx0 * ST1);
#if CONV1_PATCH_PREFETCH
        // the next chunk's rows (past the band: the next band's, which a reuse strip computes next)
        c1p::prefetch_patch<RW1, NXC, NT>(xn, H, W, (cy0 + r0 + RW1) * ST1, cx0 * ST1);
#endif
        float acc[MT1][NXC / 8][4];
        c1p::conv1_patch_mma<2, RW1, 1, NXC / 8, NS1, NT, MT1>(acc, b1s, a1s, w1, m0);
        const int row = r0 + wp.rw;
        if (row < cny)
            store_bias_relu(acc, c1, LD1, wp.mw * 16 * MT1, b1 + m0,
                            [&](int i) { return i < cnx ? row * cnx + i : C1H * C1W; });
    }
}

// conv2's stage s, for both product paths: the pool1 offset (slots) of its (ky, kx) and channels
// (TF32 at 48 slots: channels 24..47 in odd stages)
__device__ __forceinline__ int conv2_stage_offset(int s) {
    const int pos = s / SPP2;
    return ((pos / KS2) * P1W + pos % KS2) * LDP + (s % SPP2) * BK2;
}

#if CONV2_WGMMA || CONV1_S2D
// ---------------------------------------------------------------- wgmma (CONV2_WGMMA 1, CONV1_S2D 1)
// A shared-memory matrix descriptor (no swizzle, k-major): start, LBO (next core matrix along k), SBO
// (next 8 rows: n for B, m for A), each in 16-byte units. A stage of 128 rows x 96 bytes of k is 16 x 6 core matrices
// (8 rows x 16 bytes, contiguous), k-fastest: LBO 128 bytes, SBO 768.
constexpr unsigned WG_LBO = 128, WG_SBO = BK2 * 2 * 8;
__device__ __forceinline__ unsigned long long wg_desc(unsigned smem_byte_addr, unsigned lbo = WG_LBO,
                                                     unsigned sbo = WG_SBO) {
    return (unsigned long long)((smem_byte_addr >> 4) & 0x3fff) | ((unsigned long long)((lbo >> 4) & 0x3fff) << 16) |
           ((unsigned long long)((sbo >> 4) & 0x3fff) << 32);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// keeps the compiler from moving accumulator reads or writes across the asynchronous products
template <int N>
__device__ __forceinline__ void wg_fence_operands(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// D(64 x 128) += A(64 x k step, registers: this warp's 16 rows as an m16 mma fragment) * B(k step x 128,
// the descriptor's core matrices, k-major). D: this warp's rows 16w + lane/4 (+8), d[4j + e] at
// column 8j + 2(lane%4) + e%2, row +8 for e >= 2.
__device__ __forceinline__ void wg_mma(float (&d)[64], const unsigned (&a)[4], unsigned long long desc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
#if PREC == 1
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
#elif PREC == 2
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
#else
                 "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
#endif
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1"
#if PREC != 3
                 ", 0"  // B k-major (TF32 has no transpose operand)
#endif
                 ";\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc)
                 : "memory");
}

#if PREC != 3
// D(64 x 48) += A(64 x k16, descriptor da: k-major core matrices) * B(k16 x 48, descriptor db): as the
// register form, both operands from shared memory (16-bit values).
__device__ __forceinline__ void wg_mma_ss(float (&d)[24], unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
#if PREC == 1
                 "wgmma.mma_async.sync.aligned.m64n48k16.f32.f16.f16 "
#else
                 "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 "
#endif
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
                 : "l"(da), "l"(db)
                 : "memory");
}
#endif

// One stage's products, committed as one group: acc[mt] += A (this warp's 16 rows of 64mt.., as m16
// fragments for the stage's BK2 / 16 k steps) * B (the stage's core matrices at shared address
// `base`; a k step is 32 bytes of k: two core matrices along k).
template <int MT, int ND>
__device__ __forceinline__ void wg_stage_products(float (&acc)[MT][ND], const unsigned (&a)[MT][BK2 / 16][4],
                                                  unsigned base) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) wg_fence_operands(acc[mt]);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < BK2 / 16; ++kk)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) wg_mma(acc[mt], a[mt][kk], wg_desc(base + kk * 2 * WG_LBO));
    wg_commit();
}
// waits for every product in flight (they have read their stages and A registers)
template <int MT, int ND>
__device__ __forceinline__ void wg_wait_products(float (&acc)[MT][ND]) {
    wg_wait<0>();
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) wg_fence_operands(acc[mt]);
}

// bias + ReLU of this warp's part of a wgmma accumulator tile -> dst: its pixels pbase + lane/4 (+8)
// (pbase: the warp's first row), channels c0 + 8j + 2(lane%4) (+1) for j < NJ, at dst's pixel
// pixel_of(p) (stride ld slots). 16-bit: stmatrix, matrix q = (pixels +8(q&1), channels 8(j + q/2)),
// lane 8q + k addressing its row k; TF32: 8-byte stores.
template <int NJ, class PixelOf>
__device__ __forceinline__ void wg_store_bias_relu(const float (&acc)[4 * NJ], h16* dst, int ld, int c0,
                                                   const float* __restrict__ bias, int pbase, PixelOf pixel_of) {
    const int lane = threadIdx.x & 31;
#if PREC == 3
    float* d = reinterpret_cast<float*>(dst);
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
        const int c = c0 + 8 * j + 2 * (lane & 3);
        const float bv0 = __ldg(bias + c), bv1 = __ldg(bias + c + 1);
#pragma unroll
        for (int h = 0; h < 2; ++h)
            *reinterpret_cast<float2*>(d + pixel_of(pbase + (lane >> 2) + 8 * h) * (ld / 2) + c) =
                make_float2(fmaxf(acc[4 * j + 2 * h] + bv0, 0.f), fmaxf(acc[4 * j + 2 * h + 1] + bv1, 0.f));
    }
#else
    static_assert(NJ % 2 == 0, "stmatrix x4 takes two n8 tiles");
    const int q = lane >> 3;
    h16* row = dst + pixel_of(pbase + (lane & 7) + 8 * (q & 1)) * ld + c0 + 8 * (q >> 1);
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
        unsigned r[4];
#pragma unroll
        for (int u = 0; u < 2; ++u) {
            const int c = c0 + 8 * (j + u) + 2 * (lane & 3);
            const float bv0 = __ldg(bias + c), bv1 = __ldg(bias + c + 1);
#pragma unroll
            for (int h = 0; h < 2; ++h)
                r[2 * u + h] = pack2(f2h(fmaxf(acc[4 * (j + u) + 2 * h] + bv0, 0.f)),
                                     f2h(fmaxf(acc[4 * (j + u) + 2 * h + 1] + bv1, 0.f)));
        }
        stmatrix_x4(row + 8 * j, r[0], r[1], r[2], r[3]);
    }
#endif
}
#endif

#if CONV1_S2D
// ---------------------------------------------------------------- conv1 over the space-to-depth input (CONV1_S2D 1)
// out(oy, ox) = sum over dy, dx < 3 and the 48 channels q = 16c + 4a + b of S(oy + dy, ox + dx, q) *
// W'(dy, dx, q), where S(Y, X, 16c + 4a + b) = x(c, 4Y + a, 4X + b) and W'(dy, dx, 16c + 4a + b) =
// w(c, 4dy + a, 4dx + b), zero at 4dy + a or 4dx + b = 11 (kernels/api.py pack_weights_s2d).
namespace s2d {
constexpr int Q = CIN * ST1 * ST1, PLANES = Q / 8;  // 48 channels in 8-channel planes (16 bytes a pixel)
constexpr int TAPS = (KS1 + ST1 - 1) / ST1;         // 3 x 3 (dy, dx)
constexpr int KP = TAPS * TAPS * Q;                 // 432 values of a packed weight row
constexpr int NSTAGE = TAPS * TAPS;                 // a stage per (dy, dx): 48 values, c1p::BK
constexpr int NSR = CONV1_S2D_STAGES;
static_assert(Q == c1p::BK, "a stage is one (dy, dx)");
static_assert(NSR >= 3 && NSR <= NSTAGE, "ring depth");

// A part's weight stages (its 48 rows of the packed [96][KP] values, c1p::BK = 48 a stage) through
// its own ring of NSR slots, each stage laid out as wgmma's core matrices (8 rows x 16 bytes,
// k-fastest: LBO 128 bytes, SBO 768, as conv2's stages): each 16-byte cp.async lands where the
// descriptor reads it.
struct Stage {
    static constexpr int ROWS = 48, UNITS = c1p::BK / 8, CHUNKS = ROWS * UNITS, THREADS = NT / 2;
    static constexpr int PER = (CHUNKS + THREADS - 1) / THREADS, SLOT = ROWS * c1p::BK;  // slots per stage
    static_assert(c1p::BK == BK2, "the descriptor's offsets (WG_LBO, WG_SBO) assume 48-slot stages (CONV2_STAGE_SLOTS 48)");
    int sm[PER], gm[PER];
    __device__ __forceinline__ Stage(int part, int thread) {
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int e = thread + i * THREADS, row = e / UNITS, q = e - row * UNITS;
            sm[i] = e < CHUNKS ? ((row / 8) * UNITS + q) * 64 + (row % 8) * 8 : -1;
            gm[i] = (part * ROWS + row) * KP + q * 8;
        }
    }
    // stage t into slot t % NSR, then commit (an empty group past the last stage keeps the counts uniform)
    __device__ __forceinline__ void issue(h16* ring, const h16* __restrict__ w, int t) const {
        if (t < NSTAGE) {
#pragma unroll
            for (int i = 0; i < PER; ++i)
                if (sm[i] >= 0) cp_async16(ring + (t % NSR) * SLOT + sm[i], w + gm[i] + t * c1p::BK);
        }
        cp_async_commit();
    }
};

// A chunk of RW1 conv1 rows x NXC columns: the products run over WX = NXC + 2 columns of each row
// (pixel p = row * WX + x, so a (dy, dx) shifts every row's start by dy * WX + dx), MT x 64 of them;
// the patch holds PROWS rows of S (the rows the padding pixels read too) in PLANES planes.
template <int NXC>
struct Geom {
    static constexpr int WX = NXC + 2, NPX = RW1 * WX, MT = (NPX + 63) / 64;
    static constexpr int PROWS = (64 * MT - 1 + (TAPS - 1) * (WX + 1)) / WX + 1, LOADED = RW1 + TAPS - 1;
    static constexpr int PLANE = PROWS * WX * 8;  // slots
    static constexpr int SLOTS = 2 * NSR * Stage::SLOT + PLANES * PLANE;
    static_assert(SLOTS <= SZ_A1 + SZ_B1, "the rings and the patch fit conv1's weight ring and patch space");
};

// S rows Y0 .. Y0 + LOADED - 1 (input rows iy0 .. iy0 + 4 LOADED - 1) x WX columns (input columns ix0 ..)
// into the planes; zero outside the map. A warp takes whole input rows, RB of them in flight
// (conv1_patch.cuh). Rows LOADED .. PROWS - 1 are never loaded: only padding pixels, whose results
// are dropped, read them.
template <int NXC, int RB = CONV1_PATCH_RB>
__device__ __forceinline__ void load_patch(h16* patch, const val_t* __restrict__ xn, int H, int W, int iy0, int ix0) {
    using G = Geom<NXC>;
    constexpr int IR = G::LOADED * ST1, JW = ST1 * G::WX, NQ = (JW + 31) / 32;
    const int lane = threadIdx.x & 31;
    c1p::read_input_rows<IR, JW, NT, RB>(xn, H, W, iy0, ix0, [&](int cr, const val_t (&v)[NQ]) {
        const int c = cr / IR, r = cr - c * IR, Y = r / ST1, a = r % ST1;  // S row Y, channels 16c + 4a + (0..3)
        val_t* d = reinterpret_cast<val_t*>(patch + (c * 2 + a / 2) * G::PLANE + Y * G::WX * 8 + (a % 2) * 4);
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
            const int j = lane + 32 * q;
            if (j < JW) d[(j / ST1) * 8 + j % ST1] = v[q];
        }
    });
}
}  // namespace s2d

// conv1 + bias + ReLU -> c1 over the band's rows [first, cny), as conv1_rows: warps 0-3 (part 0)
// take channels 0-47, warps 4-7 channels 48-95, each over all of a chunk's pixels (MT products of
// 64, both operands by descriptor). A part's ring refills stage t + NSR - 2 at stage t, into the slot
// of stage t - 2, whose products every warp of the part waited for before the part's barrier.
template <int NXC>
__device__ __forceinline__ void conv1_rows_s2d(h16* c1, h16* a1s, h16*, const val_t* __restrict__ xn,
                                               const val_t* __restrict__ w1, const float* __restrict__ b1, int H, int W,
                                               int cy0, int cx0, int first, int cny, int cnx, int) {
    using G = s2d::Geom<NXC>;
    constexpr int MT = G::MT, NSR = s2d::NSR;
    const int tid = threadIdx.x, warp = tid >> 5, part = warp / 4, wm = warp % 4;
    const s2d::Stage ws(part, tid % (NT / 2));
    h16* ring = a1s + part * NSR * s2d::Stage::SLOT;
    h16* patch = a1s + 2 * NSR * s2d::Stage::SLOT;
    const unsigned ring_addr = smem_addr(ring), patch_addr = smem_addr(patch);
    const h16* w = reinterpret_cast<const h16*>(w1);
    for (int r0 = first; r0 < cny; r0 += RW1) {
        __syncthreads();  // the previous chunk no longer reads the patch or the rings
#pragma unroll
        for (int t = 0; t < NSR - 2; ++t) ws.issue(ring, w, t);
        s2d::load_patch<NXC>(patch, xn, H, W, (cy0 + r0) * ST1, cx0 * ST1);
        float acc[MT][24];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int i = 0; i < 24; ++i) acc[mt][i] = 0.f;
#pragma unroll 1  // unrolled (9 stages), t4x7 spills (16-36 bytes)
        for (int t = 0; t < s2d::NSTAGE; ++t) {
            cp_async_wait<NSR - 3>();  // this thread's copies of stage t landed ...
            fence_proxy_async_smem();  // ... and, with its patch stores, are visible to the products
            if (t == 0)
                __syncthreads();  // every thread's (the patch)
            else
                bar_sync(3 + part, NT / 2);  // the part's; every warp has waited for stage t - 2's products
            ws.issue(ring, w, t + NSR - 2);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) wg_fence_operands(acc[mt]);
            wg_fence();
            const int shift = (t / s2d::TAPS) * G::WX + t % s2d::TAPS;  // (dy, dx)
#pragma unroll
            for (int kk = 0; kk < c1p::BK / 16; ++kk)  // planes 2kk, 2kk + 1
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
                    wg_mma_ss(acc[mt],
                              wg_desc(patch_addr + 2 * (2 * kk * G::PLANE + (shift + 64 * mt) * 8), 2 * G::PLANE, 128),
                              wg_desc(ring_addr + 2 * (t % NSR) * s2d::Stage::SLOT + kk * 2 * WG_LBO));
            wg_commit();
            wg_wait<1>();  // stage t - 1's products are done
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) wg_fence_operands(acc[mt]);
        }
        wg_wait<0>();
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) wg_fence_operands(acc[mt]);
        cp_async_wait<0>();
        auto c1_index = [&](int p) {  // product row -> c1 pixel; the spare pixel for padding and clipped ones
            const int row = r0 + p / G::WX, x = p % G::WX;
            return p < G::NPX && x < cnx && row < cny ? row * cnx + x : C1H * C1W;
        };
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
            wg_store_bias_relu<6>(acc[mt], c1, LD1, part * 48, b1, 64 * mt + 16 * wm, c1_index);
    }
}
#endif

#if CONV2_WGMMA
// One pass of conv2 for group grp over MT x 64 pixels from ch0 (a warpgroup: its warp wm takes pixels
// 16wm .. +16 of each 64): every stage of the group's ring, then bias + ReLU -> c2.
template <int MT>
__device__ __forceinline__ void conv2_pass_wgmma(const h16* p1, const Ring2& rg, bool producer,
                                                 const unsigned char* wsrc, h16* c2, const float* __restrict__ b2,
                                                 int grp, int wm, int ch0, int th, int tw, unsigned& g2) {
    const int lane = threadIdx.x & 31;
    int pixoff[MT];  // ldmatrix rows of this lane: pixel 16wm + (lane & 15) of each 64, k half lane >> 4
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        int p = ch0 + 64 * mt + 16 * wm + (lane & 15);
        if (p >= N2 || (p % C2W) >= 2 * tw + 1 || (p / C2W) >= 2 * th + 1) p = 0;  // padding: any valid pixel
        pixoff[mt] = ((p / C2W) * P1W + (p % C2W)) * LDP + (GROUP_SPLIT ? 0 : grp * C1G * VS) + (lane >> 4) * 8;
    }
    float acc[MT][64];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[mt][i] = 0.f;
    // The ring keeps NS2 stages in flight: stage s's slot is refilled with stage s + NS2 as soon as the
    // cluster's consumers have released it. Each stage's products run asynchronously while the
    // warpgroup loads the next stage's pixels (a second set of A registers), then waits for them.
    // Measured slower (perf-notes steps 28e and 29): waiting only for the previous stage (the refill
    // then comes a stage later), and a producer that refills only what is free without waiting.
    if (producer)
        for (int s = 0; s < NS2; ++s) rg.produce(g2 + s, wsrc + s * STAGE2_BYTES);
    __syncwarp();
    using AFrag = unsigned[MT][BK2 / 16][4];
    auto load_a = [&](AFrag& a, int s) {
        const int koff = conv2_stage_offset(s);
#pragma unroll
        for (int kk = 0; kk < BK2 / 16; ++kk)
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(a[mt][kk], p1 + pixoff[mt] + koff + kk * 16);
    };
    // stage s from the A registers `a` (loaded already), loading stage s + 1's into `a_next`
    auto stage = [&](int s, AFrag& a, AFrag& a_next) {
        const unsigned g = g2 + s;
        rg.wait(g);  // stage s landed, in full
        wg_stage_products(acc, a, smem_addr(rg.slot(g)));
        if (s + 1 < NST2) load_a(a_next, s + 1);  // while the products run
        wg_wait_products(acc);  // the products have read the stage (and the A registers)
        rg.release(g);
        if (producer && s + NS2 < NST2) rg.produce(g + NS2, wsrc + (s + NS2) * STAGE2_BYTES);
        __syncwarp();
    };
    AFrag a0, a1;  // the two sets, alternating by stage
    load_a(a0, 0);
    for (int s = 0; s < NST2; s += 2) {
        stage(s, a0, a1);
        if (s + 1 < NST2) stage(s + 1, a1, a0);
    }
    g2 += NST2;
    // bias + ReLU -> c2: the group's channels of the pass's pixels (past N2: the spare pixel)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
        wg_store_bias_relu<16>(acc[mt], c2, LD2, GROUP_SPLIT ? 0 : grp * C2G, b2 + (GROUP_SPLIT ? grp * C2G : 0),
                               ch0 + 64 * mt + 16 * wm,
                               [](int p) { return p < N2 ? p : N2; });
}
#endif

// conv2 (per group), bias + ReLU -> c2, LRN, pool2 -> out for the pool2 tile rows [r0, r0+th), cols
// [q0, q0+tw); the pool1 tile p1 holds pool1 rows 2r0-2 .. 2r0+2th+2. Pixels from P0 on: P0 = C2W
// where c2's row 0 holds the previous step's last conv2 row (REUSE), normalised already.
template <int P0>
__device__ __forceinline__ void conv2_lrn_pool2(const h16* p1, h16* a2s, h16* c2, const val_t* __restrict__ w2,
                                                const float* __restrict__ b2, val_t* __restrict__ out, int n,
                                                bool store_out, int r0, int th, int q0, int tw, int HP2, int WP2,
                                                float alpha_over_n, float beta, float kparam,
                                                unsigned long long* bars, unsigned& g2, unsigned conv2_phase,
                                                int gsel, float* halo
#if PHASE_TIMING
                                                , long long& phase_t
#endif
) {
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
#if WCLUSTER > 1
    // conv1's space (a2s, c2) is free and the pool1 tile complete, in both blocks: the peer's
    // copies land in this block's ring, which aliases phase 1's space (written by st.shared: the
    // proxy fence orders those writes before the copies')
    fence_proxy_async_smem();
#if GROUP_SPLIT
    __syncthreads();  // the block's own ring (it alone copies into it) aliases its phase-1 space
#elif CONV2_START_CLUSTER_SYNC
    cluster_sync_all();
#else
    // this block is done with phase 1: tell both blocks' producers, which wait on it before this
    // phase's first copy. A CTA-scope release, the trade-off of the ring's slot releases (tc.cuh
    // mbar_arrive_cluster): the PTX model asks for cluster scope, whose MEMBAR.ALL.GPU is what this
    // knob removes; the __syncthreads before it has every warp done with phase 1.
    __syncthreads();
    unsigned long long* phase1_done = bars + G2 * Ring2::BAR_WORDS;
    if (tid < WCLUSTER) mbar_arrive_cluster(phase1_done, tid);
#endif
#else
    __syncthreads();  // conv1's space (a2s, c2) is free; the pool1 tile is complete
#endif
    // ---------------------------------------------------------------- 3. conv2 -> c2
    {
#if GROUP_SPLIT
        const int grp = gsel, wm = warp;  // the block's group; warp: channels wm*16 .. +16 of it
        constexpr int MT2 = 1, RING = 0;
#else
        (void)gsel;
        const int grp = warp / 4, wm = warp % 4;  // warp: group grp, channels wm*32 .. +32 of it
        constexpr int MT2 = 2;
        const int RING = grp;
#endif
        constexpr int WCH = 16 * MT2;  // a warp's conv2 channels
#if WCLUSTER > 1
        // Each group's 128 weight rows, stage by stage (s: BK2 slots of (ky, kx) = s / SPP2, packed by the
        // host in the ring's layout), come through a ring the cluster's blocks fill together; the
        // group's 4 warps wait on its mbarriers only (GROUP_SPLIT: the block's ring, its 8 warps).
        const Ring2 rg(bars + RING * Ring2::BAR_WORDS, a2s + RING * NS2 * C2G * LDA2);
#if GROUP_SPLIT
        const bool producer = warp == 0 && lane == 0;
#else
        const bool producer = wm == 0 && lane == 0;
#endif
#if !CONV2_START_CLUSTER_SYNC && !GROUP_SPLIT
        if (producer) mbar_wait(phase1_done, conv2_phase & 1);  // both blocks are done with phase 1
#endif
        const unsigned char* wsrc = reinterpret_cast<const unsigned char*>(w2) + (size_t)grp * NST2 * STAGE2_BYTES;
#else
        (void)bars;
        (void)g2;
        (void)conv2_phase;
        // Each group's 4 warps stream its 128 weight rows (stage s: 48 slots of (ky, kx) = s / VS)
        // through its own ring and sync among themselves only (bar.sync 1 + grp, 128 threads).
        const WeightStage<C2G, BK2, K2, NT / G2> ws(grp * C2G, tid % (NT / G2));
        h16* ring = a2s + grp * NS2 * C2G * LDA2;
        auto load_a = [&](int s) { ws.template issue<NS2>(ring, reinterpret_cast<const h16*>(w2), s); };
        auto sync_group = [&]() { bar_sync(1 + grp, NT / G2); };
#endif
#if CONV2_WGMMA && GROUP_SPLIT
        (void)WCH;
        // both warpgroups on the block's group: warpgroup w takes pixels 64w .. +64 of each 128
        for (int base = P0; base < N2; base += 128)
            conv2_pass_wgmma<1>(p1, rg, producer, wsrc, c2, b2, grp, warp % 4, base + 64 * (warp / 4), th, tw, g2);
#elif CONV2_WGMMA
        constexpr int NSUB = (N2 - P0 + 63) / 64;  // passes of 2 x 64 pixels (64 for the last of an odd count)
#pragma unroll
        for (int sub = 0; sub < NSUB; sub += 2) {
            if (NSUB - sub >= 2)
                conv2_pass_wgmma<2>(p1, rg, producer, wsrc, c2, b2, grp, wm, P0 + 64 * sub, th, tw, g2);
            else
                conv2_pass_wgmma<1>(p1, rg, producer, wsrc, c2, b2, grp, wm, P0 + 64 * sub, th, tw, g2);
        }
#else
        constexpr int NPIX = N2 - P0, NCH = (NPIX + CONV2_CHUNK - 1) / CONV2_CHUNK;
        constexpr int CH = ((NPIX + NCH - 1) / NCH + 15) / 16 * 16, NT8_2 = CH / 8;
        for (int ch0 = P0; ch0 < P0 + NCH * CH; ch0 += CH) {
        // ldmatrix rows of this lane for n-tile pair j: pixel j*8 + (lane&7) + 8*(lane>>4), k half (lane>>3)&1
        int pixoff[NT8_2 / 2];
#pragma unroll
        for (int j = 0; j < NT8_2; j += 2) {
            int p = ch0 + j * 8 + (lane & 7) + ((lane >> 4) << 3);
            if (p >= N2 || (p % C2W) >= 2 * tw + 1 || (p / C2W) >= 2 * th + 1) p = 0;  // padding: any valid pixel
            pixoff[j / 2] = ((p / C2W) * P1W + (p % C2W)) * LDP + (GROUP_SPLIT ? 0 : grp * C1G * VS) + ((lane >> 3) & 1) * 8;
        }
        float acc[MT2][NT8_2][4];
        zero_acc(acc);
#if WCLUSTER > 1
        if (producer)
            for (int s = 0; s < NS2 - 1; ++s) rg.produce(g2 + s, wsrc + s * STAGE2_BYTES);
        for (int s = 0; s < NST2; ++s) {
            const unsigned g = g2 + s;
            rg.wait(g);  // stage s landed, in full
            // refill the slot of stage s - 1, once the cluster's consumers have released it
            if (producer && s + NS2 - 1 < NST2) rg.produce(g + NS2 - 1, wsrc + (s + NS2 - 1) * STAGE2_BYTES);
            const h16* a0 = rg.slot(g) + wm * WCH * LDA2;
#else
        sync_group();  // the previous chunk no longer reads the group's weight stages
#pragma unroll
        for (int s = 0; s < NS2 - 1; ++s) load_a(s);
        for (int s = 0; s < NST2; ++s) {
            cp_async_wait<NS2 - 2>();  // stage s landed (later ones may be in flight)
            sync_group();              // ... for the group's threads; and stage s - 1 is no longer read
            load_a(s + NS2 - 1);
            const h16* a0 = ring + (s % NS2) * C2G * LDA2 + wm * 32 * LDA2;
#endif
            const int koff = conv2_stage_offset(s);
#pragma unroll
            for (int kk = 0; kk < BK2; kk += 16) {
                unsigned a[MT2][4], b[NT8_2][2];
#pragma unroll
                for (int i = 0; i < MT2; ++i) ldmatrix_x4(a[i], a0 + (i * 16 + (lane & 15)) * LDA2 + kk + (lane >> 4) * 8);
#pragma unroll
                for (int j = 0; j < NT8_2; j += 2) {
                    unsigned rr[4];
                    ldmatrix_x4(rr, p1 + pixoff[j / 2] + koff + kk);
                    b[j][0] = rr[0];
                    b[j][1] = rr[1];
                    b[j + 1][0] = rr[2];
                    b[j + 1][1] = rr[3];
                }
#pragma unroll
                for (int i = 0; i < MT2; ++i)
#pragma unroll
                    for (int j = 0; j < NT8_2; ++j) mma_kstep(acc[i][j], a[i], b[j]);
            }
#if WCLUSTER > 1
            rg.release(g);
#endif
        }
#if WCLUSTER > 1
        g2 += NST2;
#else
        cp_async_wait<0>();
#endif
        store_bias_relu(acc, c2, LD2, (GROUP_SPLIT ? 0 : grp * C2G) + wm * WCH, b2 + (GROUP_SPLIT ? grp * C2G : 0),
                        [&](int i) { return ch0 + i < N2 ? ch0 + i : N2; });
        }
#endif
    }
    __syncthreads();
    PHASE_MARK(PH_CONV2);

    // ---------------------------------------------------------------- 4. LRN, pool2 -> out
#if GROUP_SPLIT
    // LRN2's window crosses the groups: each block sends the peer its 2 channels next to the boundary
    // (group 0: 126-127, group 1: 128-129) of every pixel LRN2 normalises, into the peer's halo of
    // this step's parity; the cluster barrier orders them before the peer's LRN2. The peer writes the
    // other parity next, after passing the next step's barrier, which this block reaches only after
    // this LRN2.
    float* halo_step = halo + (conv2_phase & 1) * 2 * N2;
    {
        const unsigned remote = mapa_shared(smem_addr(halo_step), gsel ^ 1);
        const int cb = gsel == 0 ? C2G - 2 : 0;
        for (int p = tid; p < N2 - P0; p += NT) {  // FP32 values (GROUP_SPLIT is TF32 only)
            const float2 f = *reinterpret_cast<const float2*>(c2 + (P0 + p) * LD2 + cb * VS);
            st_cluster_f2(remote + 8 * p, f.x, f.y);
        }
    }
    cluster_sync_all();
    lrn_pixels<C2B, LD2, 32, false>(c2 + P0 * LD2, N2 - P0, alpha_over_n, beta, kparam, halo_step, gsel == 0 ? 1 : -1);
#else
    lrn_pixels<C2B, LD2, 32, false>(c2 + P0 * LD2, N2 - P0, alpha_over_n, beta, kparam);
#endif
    __syncthreads();
    PHASE_MARK(PH_NORM2);
    for (int e = tid; e < C2B * VS / 8 * TY * TX; e += NT) {  // a 16-byte word of a pixel (8 / VS channels) per thread
        const int pix = e % (TY * TX), c = e / (TY * TX) * 8, yl = pix / TX, xl = pix - yl * TX;  // c: slot
        if (yl >= th || xl >= tw || !store_out) continue;
        const h16* s = c2 + ((2 * yl) * C2W + 2 * xl) * LD2 + c;
        uint4 m = make_uint4(NEG_INF2, NEG_INF2, NEG_INF2, NEG_INF2);
#pragma unroll
        for (int dy = 0; dy < 3; ++dy)
#pragma unroll
            for (int dx = 0; dx < 3; ++dx) m = max8(m, *reinterpret_cast<const uint4*>(s + (dy * C2W + dx) * LD2));
        const unsigned mw[4] = {m.x, m.y, m.z, m.w};
        val_t* o = out + (((size_t)n * C2 + (GROUP_SPLIT ? gsel * C2G : 0) + c / VS) * HP2 + r0 + yl) * WP2 + q0 + xl;
#if PREC == 3
#pragma unroll
        for (int u = 0; u < 4; ++u) o[(size_t)u * HP2 * WP2] = __uint_as_float(mw[u]);
#else
#pragma unroll
        for (int u = 0; u < 8; ++u) o[(size_t)u * HP2 * WP2] = static_cast<h16>(mw[u / 2] >> (16 * (u % 2)));
#endif
    }
    if (REUSE) {  // the next step's first conv2 row is this step's last: keep it as row 0
        __syncthreads();
        copy_block(c2, c2 + 2 * th * C2W * LD2, C2W * LD2);
    }
#if PHASE_TIMING
    __syncthreads();
#endif
    PHASE_MARK(PH_POOL2);
}

__device__ __forceinline__ void fused_tc_body(const val_t* __restrict__ x, const val_t* __restrict__ w1,
                                              const float* __restrict__ b1, const val_t* __restrict__ w2,
                                              const float* __restrict__ b2, val_t* __restrict__ out, int N, int H,
                                              int W, float alpha, float beta, float kparam, int images_per_group) {
    if (dynamic_smem_bytes() < (unsigned)SMEM_BYTES || images_per_group < 1) return;  // host checks first
    extern __shared__ __align__(16) unsigned char smem_raw[];
    h16* smem = reinterpret_cast<h16*>(smem_raw);
    h16* p1 = smem + OFF_P1;
    h16* c1 = smem + OFF_C1;
    h16* a1s = smem + OFF_A1;
    h16* b1s = smem + OFF_B1;
    h16* c2 = smem + OFF_C2;
    h16* a2s = smem + OFF_A2;
    h16* row1 = smem + OFF_ROW1;
    int row1_y = -1;  // the conv1 row held in row1 (-1: none)
    const int tid = threadIdx.x;

    const int H1 = (H - KS1) / ST1 + 1, W1 = (W - KS1) / ST1 + 1;  // conv1
    const int HP1 = (H1 - 3) / 2 + 1, WP1 = (W1 - 3) / 2 + 1;      // pool1 = conv2 (pad 2, 5x5/1)
    const int HP2 = (HP1 - 3) / 2 + 1, WP2 = (WP1 - 3) / 2 + 1;    // pool2
    // Block order as fused.cu: within groups of images_per_group images, tile-major. With clusters
    // (WCLUSTER 2; grid (WCLUSTER x tiles_x, tiles_y, ceil(N / WCLUSTER))), the cluster takes the place
    // of the block and an image slot (WCLUSTER images, block r of the cluster doing image
    // slot*WCLUSTER + r) the place of the image; images_per_group counts slots. Past the batch's last
    // image, a block runs image N-1 again, for the shared weight stream, and stores nothing.
    // GROUP_SPLIT: a slot is one image (grid z = N), whose conv2 groups the cluster's blocks split.
    const int gx = gridDim.x / WCLUSTER, slots = gridDim.z;
    const int ntiles = gx * gridDim.y;
    const int lin = blockIdx.x / WCLUSTER + gx * (blockIdx.y + gridDim.y * blockIdx.z);
    const int g0 = lin / (ntiles * images_per_group) * images_per_group;
    const int gsz = min(images_per_group, slots - g0);
    const int r = lin - g0 * ntiles;
    const int tile = r / gsz, slot = g0 + r % gsz;
    // GROUP_SPLIT: the cluster's blocks run conv2 group gsel (their rank) of one image, the slot's
    const int gsel = GROUP_SPLIT ? (int)cluster_rank() : 0;
    const int n_run = GROUP_SPLIT ? slot : slot * WCLUSTER + (WCLUSTER > 1 ? (int)cluster_rank() : 0);
    const int n = min(n_run, N - 1);
    const bool store_out = n_run < N;
    const int bx = tile % gx, by = tile / gx;
    unsigned long long* bars = reinterpret_cast<unsigned long long*>(smem_raw + OFF_BARS_BYTES);
    unsigned g2 = 0;  // conv2 weight stages this block has consumed (WCLUSTER > 1: the same in every block of the cluster)
#if WCLUSTER > 1
    if (tid == 0) {
        for (int gr = 0; gr < RINGS2; ++gr) Ring2(bars + gr * Ring2::BAR_WORDS, nullptr).init();
        if (PHASE1_BARRIER) mbar_init(bars + G2 * Ring2::BAR_WORDS, WCLUSTER);  // phase 1 done: an arrival per block
        mbar_init_fence();
    }
    cluster_sync_all();  // the barriers are initialised before any block of the cluster uses them
#endif
    const int q0 = tile_start<TX>(bx, WP2), tw = tile_size<TX>(bx, WP2);
    const int px0 = 2 * q0 - 2, pw = 2 * tw + 5;  // pool1 tile columns (origin may be -2)
    const int pxa = max(px0, 0), pxb = min(px0 + pw, WP1);
    const int cx0 = 2 * pxa, cnx = 2 * (pxb - pxa) + 1;  // conv1 columns under them
    if (C1W_CAPPED && cnx > C1W) return;  // the host checks first (kernels/api.py); both blocks of a cluster leave
    const float alpha_over_n = alpha / LRN_SIZE;
    const val_t* xn = x + (size_t)n * CIN * H * W;
    // GROUP_SPLIT: conv1 channels c1_base .. + 63 in c1; the pool1 group's 48 start c1_own slots into a pixel
    const int c1_base = GROUP_SPLIT ? 32 * gsel : 0, c1_own = GROUP_SPLIT ? 16 * gsel * VS : 0;
    float* halo = reinterpret_cast<float*>(smem_raw + OFF_HALO_BYTES);

#if PHASE_TIMING
    long long phase_t = clock64();
    if (tid == 0) atomicAdd(&fused_phase_cycles[NPHASE], 1ull);
#endif

    // Pool1 tile rows [ta, tb) of the step whose tile starts at pool1 row py0: conv1 on the conv1 rows
    // under the band's valid pool1 rows, LRN, 3x3/2 max pool (rows outside the map: zero padding).
    // The band's first conv1 row comes from row1 where the previous band ended on it.
    auto pool1_band = [&](int py0, int ta, int tb) {
        const int pya = max(py0 + ta, 0), pyb = min(py0 + tb, HP1);
        const int cy0 = 2 * pya, cny = pyb > pya ? 2 * (pyb - pya) + 1 : 0;
        const int n1 = cny * cnx;
        const int first = cny > 0 && cy0 == row1_y ? 1 : 0;  // conv1 rows [first, cny) to compute
        if (first) copy_block(c1, row1, cnx * LD1);          // (the conv1 loop's barrier follows)
        // ------------------------------------------------------------ conv1 -> c1
#if CONV1_S2D
#define CONV1_ROWS conv1_rows_s2d
#else
#define CONV1_ROWS conv1_rows
#endif
        if (NX1 > 8 && cnx <= NX1 - 8)  // a clipped strip (AlexNet 227: the second of two): an n8 tile less per row
            CONV1_ROWS<(NX1 > 8 ? NX1 - 8 : NX1)>(c1, a1s, b1s, xn, w1, b1, H, W, cy0, cx0, first, cny, cnx, c1_base);
        else
            CONV1_ROWS<NX1>(c1, a1s, b1s, xn, w1, b1, H, W, cy0, cx0, first, cny, cnx, c1_base);
#undef CONV1_ROWS
        __syncthreads();
        PHASE_MARK(PH_CONV1);
        // ------------------------------------------------------------ LRN, pool1 -> p1 rows [ta, tb)
#if GROUP_SPLIT
        {  // the block's pool1 group only (48 of its 64 channels); the window's other 2 are c1's next ones
            h16* own = c1 + first * cnx * LD1 + c1_own;
            lrn_pixels<C1G, LD1, 4, true>(own, n1 - first * cnx, alpha_over_n, beta, kparam,
                                          reinterpret_cast<const float*>(own) + (gsel ? -2 : C1G), gsel ? -1 : 1, LD1 / VS);
        }
#else
        lrn_pixels<C1B, LD1, 8, true>(c1 + first * cnx * LD1, n1 - first * cnx, alpha_over_n, beta, kparam);
#endif
        __syncthreads();
        PHASE_MARK(PH_NORM1);
        if (cny > 0) copy_block(row1, c1 + (cny - 1) * cnx * LD1, cnx * LD1);  // for the next band
        row1_y = cny > 0 ? cy0 + cny - 1 : -1;
        for (int e = tid; e < (tb - ta) * P1W * (C1P * VS / 8); e += NT) {  // a 16-byte word of a pixel per thread
            const int c = e % (C1P * VS / 8) * 8, pix = e / (C1P * VS / 8), yl = ta + pix / P1W, xl = pix % P1W;
            const int py = py0 + yl, px = px0 + xl;
            uint4 m = make_uint4(0, 0, 0, 0);  // conv2's zero padding (and unused columns of a clipped tile)
            if (xl < pw && py >= 0 && py < HP1 && px >= 0 && px < WP1) {
                const h16* s = c1 + ((2 * py - cy0) * cnx + (2 * px - cx0)) * LD1 + c1_own + c;
                m = make_uint4(NEG_INF2, NEG_INF2, NEG_INF2, NEG_INF2);
#pragma unroll
                for (int dy = 0; dy < 3; ++dy)
#pragma unroll
                    for (int dx = 0; dx < 3; ++dx) m = max8(m, *reinterpret_cast<const uint4*>(s + (dy * cnx + dx) * LD1));
            }
            *reinterpret_cast<uint4*>(p1 + (yl * P1W + xl) * LDP + c) = m;
        }
        __syncthreads();
        PHASE_MARK(PH_POOL1);
    };

    // reuse: the block walks its column strip, a step per tile row; recompute: one step, its tile
    const int step0 = REUSE ? 0 : by, step1 = REUSE ? (HP2 + TY - 1) / TY : by + 1;
    int prev_th = 0;
    for (int step = step0; step < step1; ++step) {
        const int r0 = tile_start<TY>(step, HP2), th = tile_size<TY>(step, HP2);
        const int py0 = 2 * r0 - 2, ph = 2 * th + 5;
        int ta = 5;
        if (step == step0) {  // the whole pool1 tile, in bands
            ta = 0;
        } else {  // the previous tile's last 5 pool1 rows are this tile's first 5: move them up
            // Row by row, a barrier after each: row i is read (as row 2*prev_th + j, j < i) only by
            // earlier passes, so no pass overwrites a row another still has to read.
            constexpr int ROW = P1W * LDP / 8;  // uint4 per pool1 row
            uint4* q = reinterpret_cast<uint4*>(p1);
            for (int i = 0; i < 5; ++i) {
                for (int e = tid; e < ROW; e += NT) q[i * ROW + e] = q[(2 * prev_th + i) * ROW + e];
                __syncthreads();
            }
        }
        while (ta < ph) {  // bands of BAND pool1 rows, BAND_CARRIED after a carried conv1 row
            const int tb = min(ta + (row1_y < 0 ? BAND : BAND_CARRIED), ph);
            pool1_band(py0, ta, tb);
            ta = tb;
        }
        prev_th = th;
#if PHASE_TIMING
#define FTC_PHASE_ARG , phase_t
#else
#define FTC_PHASE_ARG
#endif
        if (REUSE && step > step0)  // c2's row 0 holds the previous step's last conv2 row
            conv2_lrn_pool2<C2W>(p1, a2s, c2, w2, b2, out, n, store_out, r0, th, q0, tw, HP2, WP2, alpha_over_n, beta,
                                 kparam, bars, g2, step - step0, gsel, halo FTC_PHASE_ARG);
        else
            conv2_lrn_pool2<0>(p1, a2s, c2, w2, b2, out, n, store_out, r0, th, q0, tw, HP2, WP2, alpha_over_n, beta,
                               kparam, bars, g2, step - step0, gsel, halo FTC_PHASE_ARG);
    }
#if WCLUSTER > 1
    cluster_sync_all();  // no block leaves while the peer may still arrive on its barriers
#endif
}

}  // namespace ftc

#define FTC_CAT2(a, b) a##b
#define FTC_CAT(a, b) FTC_CAT2(a, b)
#if TILE_X == TILE_Y
#define FTC_TILE_NAME TILE_X
#else
#define FTC_TILE_NAME FTC_CAT(FTC_CAT(TILE_Y, x), TILE_X)
#endif
#if REUSE
#define FTC_ENTRY FTC_CAT(fused_tc_reuse_t, FTC_TILE_NAME)
#else
#define FTC_ENTRY FTC_CAT(fused_tc_recompute_t, FTC_TILE_NAME)
#endif

// Grid: (WCLUSTER x tiles_x, tiles_y, ceil(N / WCLUSTER)) of balanced tiles (reuse: tiles_y = 1); 256
// threads; dynamic shared memory SMEM_BYTES.
// w1: [96][528] (k = (ci*11 + ky)*16 + kx, zero at kx >= 11), w2: [256][1200] (k = (ky*5 + kx)*48 + ci),
// 16-bit, or FP32 holding TF32 values; with WCLUSTER > 1, w2 stage by stage in the ring's layout,
// [2 groups][NST2 stages][128 rows][48 + 8 slots] (kernels/api.py pack_weight_stages), or with
// CONV2_WGMMA as wgmma's core matrices, [2][NST2][16 row octets][6 k units][8 rows][16 bytes]
// (pack_weight_stages_core).
extern "C" __global__ void __launch_bounds__(256, 1)
#if WCLUSTER > 1
    __cluster_dims__(WCLUSTER, 1, 1)
#endif
    FTC_ENTRY(const val_t* __restrict__ x, const val_t* __restrict__ w1, const float* __restrict__ b1,
              const val_t* __restrict__ w2, const float* __restrict__ b2, val_t* __restrict__ out, int N, int H, int W,
              float alpha, float beta, float kparam, int images_per_group) {
    ftc::fused_tc_body(x, w1, b1, w2, b2, out, N, H, W, alpha, beta, kparam, images_per_group);
}
