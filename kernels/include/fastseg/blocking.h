/*
 * fastseg/blocking.h -- the SGEMM blocking constants (BLIS naming).
 *
 * The loops of fs_sgemm (gemm.c) cut C = A*B as
 *   jc: NC columns of B  -> the packed KC x NC panel of B lives in L3
 *   pc: KC of the k dim  -> one rank-KC update at a time
 *   ic: MC rows of A     -> the packed MC x KC block of A lives in L2
 *   jr: NR columns       -> one KC x NR micro-panel of B stays in L1
 *   ir: MR rows          -> one MR x NR tile of C stays in registers
 * Sized for AMD Zen4 (32 KiB L1d, 1 MiB L2 per core, 32 MiB shared L3) with
 * the AVX2/FMA micro-kernel: 16 ymm registers, two 256-bit FMA pipes with a
 * 4-cycle latency. The portable micro-kernel uses the same MR/NR so one
 * packing format serves both.
 */
#ifndef FASTSEG_BLOCKING_H
#define FASTSEG_BLOCKING_H

/* MR x NR = 6 x 16: 6*2 = 12 ymm accumulators + 2 for the B row + 1 for the
 * broadcast A element = 15 of 16 registers. 12 independent FMA chains cover
 * the 2 pipes x 4 cycles = 8 needed to keep both FMA units busy, and each
 * k step does 8 loads for 12 FMAs, within Zen4's load bandwidth. (8x8 would
 * need 8 accumulators only and 8 broadcasts per 8 FMAs: load-bound.) */
#define FS_GEMM_MR 6
#define FS_GEMM_NR 16

/* KC: the B micro-panel (KC*NR*4 = 16 KiB) plus the streaming A micro-panel
 * (KC*MR*4 = 6 KiB) fit in the 32 KiB L1d with room for the C tile, and a
 * rank-256 update is long enough to amortise loading/storing the C tile.
 * (384 measured the same; 512 was slower on K = 500.) The
 * #ifndef lets a tuning build try other values with -DFS_GEMM_KC=... */
#ifndef FS_GEMM_KC
#define FS_GEMM_KC 256
#endif

/* MC: the packed A block (MC*KC*4 = 144 KiB at 144) sits comfortably in the
 * 1 MiB L2 next to the B micro-panels streaming through it; a multiple of MR
 * so blocks hold whole micro-panels. 72..288 measured within noise of each
 * other; 144 keeps the block well inside L2 with room for prefetched B. */
#ifndef FS_GEMM_MC
#define FS_GEMM_MC 144
#endif

/* NC: the packed B panel (KC*NC*4 ~ 4 MiB) stays in the shared L3 and is
 * reused by every MC block; a multiple of NR (255 micro-panels) so blocks
 * hold whole micro-panels. */
#ifndef FS_GEMM_NC
#define FS_GEMM_NC 4080
#endif

#if FS_GEMM_MC % FS_GEMM_MR != 0 || FS_GEMM_NC % FS_GEMM_NR != 0
#error "MC must be a multiple of MR and NC a multiple of NR"
#endif

#endif /* FASTSEG_BLOCKING_H */
