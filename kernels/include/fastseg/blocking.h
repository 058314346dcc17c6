/*
 * fastseg/blocking.h -- the SGEMM blocking constants (BLIS naming), per ISA.
 *
 * The loops of fs_sgemm (gemm.c) and of the fused convolution cut C = A*B as
 *   jc: NC columns of B  -> the packed KC x NC panel of B lives in L3
 *   pc: KC of the k dim  -> one rank-KC update at a time
 *   ic: MC rows of A     -> the packed MC x KC block of A lives in L2
 *   jr: NR columns       -> one KC x NR micro-panel of B stays in L1
 *   ir: MR rows          -> one MR x NR tile of C stays in registers
 * MR x NR is fixed per kernel table (it is the packing format); MC, KC and NC
 * start from the ISA's values below and shrink to the caches this CPU has
 * (fs_blocking_fit in isa_dispatch.c, from the sizes cpu.c reads at run
 * time), so one build serves a Zen 3 (32 KiB L1d, 512 KiB L2), a Zen 4
 * (32 KiB, 1 MiB), a Zen 5 (48 KiB, 1 MiB) and a Xeon (48 KiB, 2 MiB).
 * Each value is #ifndef-guarded so a tuning build can try others
 * (-DFS_GEMM_KC_AVX512=...); kernels/tests/test_dispatch.c checks the
 * fitting on those CPUs' caches. At run time fs_set_blocking replaces the
 * fitted MC, KC, NC of an ISA with measured ones (fastseg tune: the
 * candidates it times and why live in src/fastseg/tuning/tuner.py); the
 * fitted values stay the default and the fallback. Rounding: a K-long sum
 * is added up one KC block at a time (fs_sgemm's pc loop, the convolutions'
 * K blocks), so another KC regroups it and results move at rounding level
 * (fs_sgemm, conv2d/conv3d forward and dW, linear); MC and NC cut only M and
 * N, and the thread split only who computes which block: no result moves
 * with them. For a given KC every result stays bitwise the same from run to
 * run and for any thread count, as before.
 */
#ifndef FASTSEG_BLOCKING_H
#define FASTSEG_BLOCKING_H

/* ---- AVX2/FMA (and the portable kernel, which shares its packing) --------
 * MR x NR = 6 x 16: 6*2 = 12 ymm accumulators + 2 for the B row + 1 for the
 * broadcast A element = 15 of 16 registers. 12 independent FMA chains cover
 * the 2 pipes x 4 cycles = 8 needed to keep both FMA units busy, and each
 * k step does 8 loads for 12 FMAs. (8x8 would need 8 accumulators only and
 * 8 broadcasts per 8 FMAs: load-bound.)
 * KC 256: the B micro-panel (16 KiB) in half of a 32 KiB L1d (384 measured
 * the same on Zen 4; 512 was slower on K = 500). MC 144: the A block
 * (144 KiB) well inside L2 (72..288 measured within noise). NC 4080: a 4 MiB
 * B panel in L3, 255 micro-panels. */
#define FS_GEMM_MR_AVX2 6
#define FS_GEMM_NR_AVX2 16
#ifndef FS_GEMM_KC_AVX2
#define FS_GEMM_KC_AVX2 256
#endif
#ifndef FS_GEMM_MC_AVX2
#define FS_GEMM_MC_AVX2 144
#endif
#ifndef FS_GEMM_NC_AVX2
#define FS_GEMM_NC_AVX2 4080
#endif

/* ---- AVX-512F ---------------------------------------------------------------
 * MR x NR = 10 x 32: 20 zmm accumulators + 2 for the B row + 1 broadcast =
 * 23 of 32 registers; 12 loads per 20 FMAs (Intel's two load ports keep up).
 * Alone, every candidate from 6x32 to 14x32, 8x48 and 6x64 ran at the Zen 5's
 * peak (~265 GFLOP/s a core), so the choice is the shapes': 10 rows divide
 * lai2d's 20 and 50 filters, its 500 = c*k*k and its 1000 units exactly, and
 * 32 columns are two output rows of its 16-wide feature maps, which the
 * convolution's gathered-B and scatter forms read and write as two 16-float
 * segments. Measured against it (one core, CPU time, medians): 12x32 and
 * 14x32 5-17 % slower on the convolutions, 8x32 5-10 %, 8x48 18-37 %, 6x64
 * 2-5 % there and up to 18 % on the GEMMs (6x64 won only lai2d's dX as a
 * plain GEMM, 10 %, which the fused convolution does not run).
 * KC: the B micro-panel (128 bytes a k step) in half of L1d: 192 on a
 * 48 KiB L1d (Zen 5, Xeon), 128 on a 32 KiB one (Zen 4). On the Zen 5 256
 * and 320 measured the same as 192 or 1-7 % slower, 128 1-7 % slower. MC
 * 150 (80..600 within noise), NC 4096 (704..2048 within noise). */
#ifndef FS_GEMM_MR_AVX512
#define FS_GEMM_MR_AVX512 10
#endif
#ifndef FS_GEMM_NR_AVX512
#define FS_GEMM_NR_AVX512 32
#endif
#ifndef FS_GEMM_KC_AVX512
#define FS_GEMM_KC_AVX512 256
#endif
#ifndef FS_GEMM_MC_AVX512
#define FS_GEMM_MC_AVX512 150
#endif
#ifndef FS_GEMM_NC_AVX512
#define FS_GEMM_NC_AVX512 4096
#endif

/* ---- fitting the blocks to the caches (fs_blocking_fit) --------------------
 * KC: the B micro-panel (KC x NR floats) takes at most this share of L1d,
 * leaving the rest to the streaming A micro-panel and the C tile.
 * MC: the A block (MC x KC) at most this share of L2, the rest for the B
 * micro-panels and C tiles passing through.
 * NC: the B panel (KC x NC) at most this share of the core's part of L3. */
#ifndef FS_BLOCK_L1_SHARE
#define FS_BLOCK_L1_SHARE 0.5
#endif
#ifndef FS_BLOCK_L2_SHARE
#define FS_BLOCK_L2_SHARE 0.5
#endif
#ifndef FS_BLOCK_L3_SHARE
#define FS_BLOCK_L3_SHARE 0.5
#endif
/* Floors, so a CPU that reports tiny (or no) caches still gets sane blocks. */
#define FS_GEMM_KC_MIN 64

/* ---- the deep K block (conv_fused.c's forward with a huge weight) ----------
 * A convolution whose weight is packed once for the whole team (segment's
 * dense lai2d: 1000 filters x 12800 taps) reads B in place or packs it per
 * K block, and every micro-kernel call loads and stores its C tile once per
 * K block. Blocks as long as the fitted A block (MC x KC) fits
 * FS_BLOCK_L2_SHARE of L2, at most FS_GEMM_KC_LIMIT and never shorter than
 * the fitted KC. Tuned MC, KC, NC leave it; the tuner times it on its own
 * (conv.kc_deep) and fs_set_deep_kc sets it. On a Zen 4 (1 MiB L2, MC 150:
 * 864) that layer ran at 220-224 GFLOP/s on two threads against 189-206 at
 * KC 128-256 (bench/README.md). */

/* ---- blocks set at run time (fs_set_blocking: the tuner) -------------------
 * The range a tuned block may take. Wide enough for any cache this side of
 * a server's L2 (the tuner tries a few values around the fitted ones), and
 * bounded so a bad value cannot ask for absurd packing space: a thread's
 * A block (MC x KC) at most 16 MiB and B panel (KC x NC) at most 32 MiB. */
#define FS_GEMM_MC_LIMIT 4096
#define FS_GEMM_KC_LIMIT_MIN 16
#define FS_GEMM_KC_LIMIT 2048
#define FS_GEMM_NC_LIMIT 32768
#define FS_GEMM_A_BLOCK_LIMIT ((fs_idx)1 << 22)
#define FS_GEMM_B_PANEL_LIMIT ((fs_idx)1 << 23)

/* The largest MR and NR of any table (stack arrays of tile rows) and the
 * segment width of the convolution forms: a B row or C row of NR floats is
 * NR/16 runs of 16 contiguous floats, each a 16-wide piece of an output row. */
#define FS_GEMM_MR_MAX 16
#define FS_GEMM_NR_MAX 64
#define FS_GEMM_SEG 16

#if FS_GEMM_MC_AVX2 % FS_GEMM_MR_AVX2 != 0 || FS_GEMM_NC_AVX2 % FS_GEMM_NR_AVX2 != 0 || \
    FS_GEMM_MC_AVX512 % FS_GEMM_MR_AVX512 != 0 || FS_GEMM_NC_AVX512 % FS_GEMM_NR_AVX512 != 0
#error "MC must be a multiple of MR and NC a multiple of NR"
#endif
#if FS_GEMM_NR_AVX2 % FS_GEMM_SEG != 0 || FS_GEMM_NR_AVX512 % FS_GEMM_SEG != 0 || \
    FS_GEMM_MR_AVX2 > FS_GEMM_MR_MAX || FS_GEMM_MR_AVX512 > FS_GEMM_MR_MAX || \
    FS_GEMM_NR_AVX2 > FS_GEMM_NR_MAX || FS_GEMM_NR_AVX512 > FS_GEMM_NR_MAX
#error "NR must be whole segments and MR at most FS_GEMM_MR_MAX"
#endif

#endif /* FASTSEG_BLOCKING_H */
