// matmul.cu -- a tiled, register-blocked GEMM: C = A @ B, batched, float32 and float64.
//
// Compiled at run time by NVRTC (CuPy's RawModule), so it includes no headers and every entry
// point is `extern "C"` (C names, no C++ mangling, so Python can look them up by name).
//
// ---------------------------------------------------------------------------------------------
// Why tiles? A naive kernel (one thread per C element, a loop over k) reads 2K numbers from
// global memory for 2K flops: it is limited by memory bandwidth, at ~1 flop per 4 bytes. The
// two classic fixes, used here, raise the number of flops per byte moved:
//
// 1. Shared-memory tiling. A block of threads owns a BM x BN tile of C. It walks k in steps of
//    BK: all threads cooperatively copy a BM x BK slab of A and a BK x BN slab of B into shared
//    memory (on-chip, ~100x faster than DRAM), then every thread reads them from there. Each
//    number fetched from DRAM is reused BN (for A) or BM (for B) times.
//
// 2. Register blocking. Each thread computes not one but a TM x TN micro-tile of C, kept in
//    registers. Per step of k it loads TM numbers of A and TN of B from shared memory and does
//    TM * TN fused multiply-adds: an outer product. With TM = TN = 8 that is 64 FMAs per 16
//    shared loads, so the FMA units, not the shared-memory port, set the pace.
//
//      block tile of C (BM x BN)               one thread's micro-tile (TM x TN)
//      +---------------------------+            a[0..TM) (column of the A slab)
//      | t0 | t1 | ...             |              x
//      |----+----+                 |            b[0..TN) (row of the B slab)
//      | .. |                      |              = rank-1 update of acc[TM][TN]
//      +---------------------------+
//
// Details that matter for speed, each explained where it happens below:
//   * vectorized 16-byte loads (float4 / double2) from global and shared memory;
//   * A is stored *transposed* in shared memory (As[k][m]) so that a thread's TM values of A at
//     one k are contiguous and can be read with vector loads;
//   * double buffering: two copies of each shared slab, so that the global loads for step t+1
//     are in flight while step t is being computed, with one __syncthreads per step;
//   * a "grouped" tile order so that blocks running at the same time share rows of A and
//     columns of B in the L2 cache;
//   * a split of the k range over several blocks ("split-K") when C has too few tiles to fill
//     the GPU; each split writes its own partial C and the host sums them (deterministic,
//     unlike atomics).
//
// Layout and batching. A is (M, K) row-major with leading dimension lda (the distance between
// rows, in elements: more than K for a column-sliced view, 0 for rows broadcast by
// broadcast_to, so neither needs a copy), B is (K, N) with ldb, C is (M, N) with ldc. A batch of products is indexed by blockIdx.z as b = outer * inner_count + inner, and
// each operand has one stride per level (in elements). A stride of 0 means the operand is
// broadcast along that level: conv2d, for example, uses outer = image, inner = group, with the
// weights broadcast over images (stride 0) but not over groups.
// ---------------------------------------------------------------------------------------------

// V consecutive elements moved as one aligned unit: with V * sizeof(T) == 16 the compiler
// emits a single 128-bit load or store (LDG.128 / LDS.128) instead of V separate ones.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

template <typename T, int BM, int BN, int BK, int TM, int TN, int V>
struct Gemm {
    // Threads per block: one per micro-tile.
    static constexpr int THREADS = (BM / TM) * (BN / TN);
    // Elements per 16-byte shared-memory read (float4 or double2).
    static constexpr int VS = 16 / (int)sizeof(T);
    // A thread's TM rows are split into GM groups of VS consecutive rows, GM * VS == TM. The
    // groups are BM / GM rows apart: in a warp, neighbouring threads then read neighbouring
    // 16-byte words of the B slab (no bank conflicts), and a thread's rows are spread over
    // the tile, which keeps the global stores of C from one warp close together.
    static constexpr int GM = TM / VS;
    static constexpr int GN = TN / VS;
    // Padding of the transposed A slab. Without it, the transposing stores of threads that
    // load different k columns of the same rows land in the same shared-memory bank. Padding
    // by 16 bytes keeps each row 16-byte aligned for the vector reads.
    static constexpr int PAD = VS;
    // Global -> register loads per thread per k step, for the A slab (BM x BK) and the B slab
    // (BK x BN), each load moving V elements.
    static constexpr int A_VECS = BM * BK / V;
    static constexpr int B_VECS = BK * BN / V;
    static constexpr int A_LOADS = (A_VECS + THREADS - 1) / THREADS;
    static constexpr int B_LOADS = (B_VECS + THREADS - 1) / THREADS;
    // Tile rows per group of the grouped tile order (see run()).
    static constexpr int GROUP_M = 8;

    static_assert(TM % VS == 0 && TN % VS == 0, "micro-tile must be a multiple of 16 bytes");
    static_assert(BM % TM == 0 && BN % TN == 0, "block tile must be a multiple of the micro-tile");
    static_assert(BK % V == 0 && BN % V == 0, "slab rows must hold whole vectors");
    static_assert(V == 1 || V == VS, "global vectors are scalars or 16 bytes");

    // Shared memory: two buffers (double buffering) of each slab.
    struct alignas(16) Smem {
        T a[2][BK][BM + PAD];  // A slab, transposed: a[buf][k][m]
        T b[2][BK][BN];        // B slab, as in memory: b[buf][k][n]
    };

    // ---- global -> registers ------------------------------------------------------------
    // The A slab: rows m0..m0+BM of A, columns k0..k0+BK. Consecutive threads take consecutive
    // vectors along a row (k), then the next row, so a warp reads whole 32-byte sectors.
    // Each thread's source addresses are computed once per tile (a row pointer per load) and
    // advanced by BK columns per step, which keeps 64-bit address arithmetic out of the loop.
    // Out-of-range elements (past M, or past the end of K) read as 0, so a partial edge tile
    // adds nothing to the sums. With V > 1 the host guarantees K % V == 0, so a vector is
    // either entirely inside or entirely outside the matrix.
    struct Cursor {
        const T* a[A_LOADS];  // where this thread's A vectors start, at column k0 = 0
        const T* b[B_LOADS];  // where its B vectors start, at row k0 = 0
    };

    static __device__ __forceinline__ int a_row(int idx) { return idx / (BK / V); }
    static __device__ __forceinline__ int a_col(int idx) { return (idx % (BK / V)) * V; }
    static __device__ __forceinline__ int b_row(int idx) { return idx / (BN / V); }
    static __device__ __forceinline__ int b_col(int idx) { return (idx % (BN / V)) * V; }

    static __device__ __forceinline__ void start(Cursor& c, const T* __restrict__ A, const T* __restrict__ B,
                                                 long long lda, long long ldb, int M, int N, int m0, int n0,
                                                 int tid) {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            const int gm = m0 + a_row(idx);
            // A row past M is never read; point it at row 0 so the address stays valid.
            c.a[l] = A + (long long)(gm < M ? gm : 0) * lda + a_col(idx);
        }
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            const int gn = n0 + b_col(idx);
            c.b[l] = B + (long long)b_row(idx) * ldb + (gn < N ? gn : 0);
        }
    }

    static __device__ __forceinline__ void load_a(T (&r)[A_LOADS][V], const Cursor& c, int M, int K, int m0, int k0,
                                                  int tid) {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            if ((A_VECS % THREADS == 0 || idx < A_VECS) && m0 + a_row(idx) < M && k0 + a_col(idx) < K) {
                const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(c.a[l] + k0);
#pragma unroll
                for (int i = 0; i < V; ++i) r[l][i] = p.v[i];
            } else {
#pragma unroll
                for (int i = 0; i < V; ++i) r[l][i] = T(0);
            }
        }
    }

    // The B slab: rows k0..k0+BK of B, columns n0..n0+BN; consecutive threads read
    // consecutive vectors of one row of B (fully coalesced).
    static __device__ __forceinline__ void load_b(T (&r)[B_LOADS][V], const Cursor& c, long long ldb, int N, int K,
                                                  int n0, int k0, int tid) {
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            if ((B_VECS % THREADS == 0 || idx < B_VECS) && k0 + b_row(idx) < K && n0 + b_col(idx) < N) {
                const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(c.b[l] + (long long)k0 * ldb);
#pragma unroll
                for (int i = 0; i < V; ++i) r[l][i] = p.v[i];
            } else {
#pragma unroll
                for (int i = 0; i < V; ++i) r[l][i] = T(0);
            }
        }
    }

    // ---- registers -> shared ------------------------------------------------------------
    static __device__ __forceinline__ void store_a(Smem& s, int buf, const T (&r)[A_LOADS][V], int tid) {
#pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            if (A_VECS % THREADS == 0 || idx < A_VECS) {
                const int row = a_row(idx), col = a_col(idx);
#pragma unroll
                for (int i = 0; i < V; ++i) s.a[buf][col + i][row] = r[l][i];  // the transpose
            }
        }
    }

    static __device__ __forceinline__ void store_b(Smem& s, int buf, const T (&r)[B_LOADS][V], int tid) {
#pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            if (B_VECS % THREADS == 0 || idx < B_VECS) {
                const int row = b_row(idx), col = b_col(idx);
                Pack<T, V> p;
#pragma unroll
                for (int i = 0; i < V; ++i) p.v[i] = r[l][i];
                *reinterpret_cast<Pack<T, V>*>(&s.b[buf][row][col]) = p;
            }
        }
    }

    // ---- the inner product: BK rank-1 updates of the micro-tile -------------------------
    static __device__ __forceinline__ void compute(const Smem& s, int buf, T (&acc)[TM][TN], int tx, int ty) {
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            T a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < GM; ++g) {
                const Pack<T, VS> p = *reinterpret_cast<const Pack<T, VS>*>(&s.a[buf][k][g * (BM / GM) + ty * VS]);
#pragma unroll
                for (int i = 0; i < VS; ++i) a[g * VS + i] = p.v[i];
            }
#pragma unroll
            for (int g = 0; g < GN; ++g) {
                const Pack<T, VS> p = *reinterpret_cast<const Pack<T, VS>*>(&s.b[buf][k][g * (BN / GN) + tx * VS]);
#pragma unroll
                for (int j = 0; j < VS; ++j) b[g * VS + j] = p.v[j];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];  // contracted to one FMA
        }
    }

    // ---- one BM x BN tile of one product --------------------------------------------------
    static __device__ __forceinline__ void tile(Smem& s, const T* __restrict__ A, const T* __restrict__ B,
                                                T* __restrict__ C, int M, int N, int K, long long lda,
                                                long long ldb, long long ldc, int m0, int n0) {
        const int tid = threadIdx.x;
        const int tx = tid % (BN / TN), ty = tid / (BN / TN);

        T acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

        Cursor c;
        start(c, A, B, lda, ldb, M, N, m0, n0, tid);
        T ra[A_LOADS][V], rb[B_LOADS][V];
        const int steps = (K + BK - 1) / BK;

        // Prologue: the first slabs go straight to buffer 0.
        load_a(ra, c, M, K, m0, 0, tid);
        load_b(rb, c, ldb, N, K, n0, 0, tid);
        store_a(s, 0, ra, tid);
        store_b(s, 0, rb, tid);
        __syncthreads();

        // Main loop, double buffered. In step t the block computes from buffer t % 2 while the
        // loads of slab t + 1 (issued first, so they overlap the math) are stored into the
        // other buffer. One barrier per step is enough:
        //   - the writes into buffer (t+1) % 2 happen after every thread passed the barrier
        //     that ended step t - 1, the last step that read that buffer;
        //   - the reads of buffer t % 2 in step t happen after the barrier that ended step
        //     t - 1, which follows the writes of that buffer.
        for (int t = 0; t < steps; ++t) {
            const int cur = t & 1;
            const bool more = t + 1 < steps;
            if (more) {
                load_a(ra, c, M, K, m0, (t + 1) * BK, tid);
                load_b(rb, c, ldb, N, K, n0, (t + 1) * BK, tid);
            }
            compute(s, cur, acc, tx, ty);
            if (more) {
                store_a(s, cur ^ 1, ra, tid);
                store_b(s, cur ^ 1, rb, tid);
            }
            __syncthreads();
        }

        // Epilogue: write the micro-tile, row by row, skipping what lies outside C. When the
        // host chose V == VS it guaranteed N % VS == 0 and 16-byte aligned rows, so each group
        // of VS columns is stored as one vector and is entirely inside or outside C.
#pragma unroll
        for (int gi = 0; gi < GM; ++gi) {
#pragma unroll
            for (int i = 0; i < VS; ++i) {
                const int m = m0 + gi * (BM / GM) + ty * VS + i;
                if (m >= M) continue;
                T* crow = C + (long long)m * ldc;
#pragma unroll
                for (int gj = 0; gj < GN; ++gj) {
                    const int n = n0 + gj * (BN / GN) + tx * VS;
                    if (V == VS) {
                        if (n < N) {
                            Pack<T, VS> p;
#pragma unroll
                            for (int j = 0; j < VS; ++j) p.v[j] = acc[gi * VS + i][gj * VS + j];
                            *reinterpret_cast<Pack<T, VS>*>(crow + n) = p;
                        }
                    } else {
#pragma unroll
                        for (int j = 0; j < VS; ++j)
                            if (n + j < N) crow[n + j] = acc[gi * VS + i][gj * VS + j];
                    }
                }
            }
        }
    }

    // ---- the whole launch: every (batch entry, k split) x every tile ---------------------
    // Both loops stride by the grid size, so any grid is correct (the host launches one block
    // per tile and one z index per batch entry and split, capped at CUDA's grid limits).
    static __device__ __forceinline__ void run(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C,
                                               int M, int N, int K, long long lda, long long ldb, long long ldc,
                                               long long batch, long long inner, long long sAo, long long sAi,
                                               long long sBo, long long sBi, long long sCo, long long sCi,
                                               int splits, int kchunk, long long sCsplit) {
        __shared__ Smem s;
        const int tiles_m = (M + BM - 1) / BM;
        const int tiles_n = (N + BN - 1) / BN;
        const long long tiles = (long long)tiles_m * tiles_n;
        const long long work = batch * splits;

        for (long long z = blockIdx.z; z < work; z += gridDim.z) {
            const long long b = z / splits;
            const int split = (int)(z % splits);
            const long long bo = b / inner, bi = b % inner;
            // This split's share of k: [k_begin, k_begin + k_len). The host makes kchunk a
            // multiple of 16, so the shifted A pointer keeps its 16-byte alignment.
            const int k_begin = split * kchunk;
            const int k_len = K - k_begin < kchunk ? K - k_begin : kchunk;
            const T* Ab = A + bo * sAo + bi * sAi + k_begin;
            const T* Bb = B + bo * sBo + bi * sBi + (long long)k_begin * ldb;
            T* Cb = C + bo * sCo + bi * sCi + split * sCsplit;

            for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
                // Grouped order: walk GROUP_M tile rows top to bottom before moving one tile
                // column right. Blocks resident at the same time then touch ~GROUP_M row
                // panels of A and a few column panels of B, which stay in L2, instead of one
                // row panel of A and *all* of B.
                const long long per_group = (long long)GROUP_M * tiles_n;
                const int first_m = (int)(t / per_group) * GROUP_M;
                const int group_rows = tiles_m - first_m < GROUP_M ? tiles_m - first_m : GROUP_M;
                const int within = (int)(t % per_group);
                const int tm = first_m + within % group_rows;
                const int tn = within / group_rows;
                tile(s, Ab, Bb, Cb, M, N, k_len, lda, ldb, ldc, tm * BM, tn * BN);
                // tile() ends with a barrier, so the next tile may overwrite the slabs.
            }
        }
    }
};

// One extern "C" entry point per (dtype, tile shape, global vector width). NAME encodes them:
//   gemm_<dtype>_<BM>x<BN>_v<V>, e.g. gemm_f32_128x128_v4.
// The v1 variants are the fallback when K, N, a leading dimension or a pointer is not aligned
// to 16 bytes: the same kernel, with scalar global loads. MIN_BLOCKS is the second argument of
// __launch_bounds__: the compiler limits registers per thread so that that many blocks fit on
// one SM (65536 registers / (256 threads x 2 blocks) = 128 registers per thread).
#define MINIDL_GEMM(NAME, T, BM, BN, BK, TM, TN, V, MIN_BLOCKS)                                               \
    extern "C" __global__ void __launch_bounds__((BM / TM) * (BN / TN), MIN_BLOCKS)                          \
        NAME(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K,         \
             long long lda, long long ldb, long long ldc, long long batch, long long inner, long long sAo,     \
             long long sAi, long long sBo, long long sBi, long long sCo, long long sCi, int splits, int kchunk, \
             long long sCsplit) {                                                                             \
        Gemm<T, BM, BN, BK, TM, TN, V>::run(A, B, C, M, N, K, lda, ldb, ldc, batch, inner, sAo, sAi, sBo, sBi, \
                                            sCo, sCi, splits, kchunk, sCsplit);                               \
    }

// float32, large problems: 128 x 128 tiles, 256 threads with 8 x 8 micro-tiles, BK = 8.
// Shared memory: 2 buffers x (8 x 132 + 8 x 128) floats = 16.6 KB. About 150 registers per
// thread, so one block (8 warps) per SM; each warp has 64 independent FMAs per k to hide
// latency with.
MINIDL_GEMM(gemm_f32_128x128_v4, float, 128, 128, 8, 8, 8, 4, 1)
MINIDL_GEMM(gemm_f32_128x128_v1, float, 128, 128, 8, 8, 8, 1, 1)
// The same, squeezed to 128 registers so that two blocks share an SM and one block's barrier
// wait is covered by the other's math. ptxas then spills a few values (~100 bytes) to local
// memory; whether the trade pays is for the benchmark to say (benchmarks/gpu.py times both).
MINIDL_GEMM(gemm_f32_128x128occ2_v4, float, 128, 128, 8, 8, 8, 4, 2)
MINIDL_GEMM(gemm_f32_128x128occ2_v1, float, 128, 128, 8, 8, 8, 1, 2)
// float32, the same micro-tile in 128 x 64 tiles of 128 threads: smaller blocks (~165
// registers x 128 threads), so three fit on an SM and one block's barrier stall is covered by
// the others, at the price of re-reading A twice as often. Selectable; timed by the benchmark.
MINIDL_GEMM(gemm_f32_128x64_v4, float, 128, 64, 8, 8, 8, 4, 1)
MINIDL_GEMM(gemm_f32_128x64_v1, float, 128, 64, 8, 8, 8, 1, 1)
// float32, small problems (fewer 128 x 128 tiles than SMs): 64 x 64 tiles, 4 x 4 micro-tiles,
// BK = 16. Shared memory: 2 x (16 x 68 + 16 x 64) floats = 16.9 KB; two or more blocks per SM.
MINIDL_GEMM(gemm_f32_64x64_v4, float, 64, 64, 16, 4, 4, 4, 2)
MINIDL_GEMM(gemm_f32_64x64_v1, float, 64, 64, 16, 4, 4, 1, 2)
// float64: 64 x 64 tiles, 4 x 4 micro-tiles, BK = 8: 2 x (8 x 66 + 8 x 64) doubles = 16.6 KB,
// two blocks per SM (without the bound ptxas takes ~140 registers and only one fits).
// A double takes two registers, so an 8 x 8 micro-tile would need 128 registers for the
// accumulators alone; 8 x 4 (in 128 x 64 tiles) is offered as a selectable larger shape.
MINIDL_GEMM(gemm_f64_64x64_v2, double, 64, 64, 8, 4, 4, 2, 2)
MINIDL_GEMM(gemm_f64_64x64_v1, double, 64, 64, 8, 4, 4, 1, 2)
MINIDL_GEMM(gemm_f64_128x64_v2, double, 128, 64, 8, 8, 4, 2, 1)
MINIDL_GEMM(gemm_f64_128x64_v1, double, 128, 64, 8, 8, 4, 1, 1)
