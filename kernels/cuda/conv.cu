// conv.cu -- the data-movement half of 2-D convolution (NCHW): im2col and col2im.
//
// Compiled at run time by NVRTC (CuPy's RawModule): no headers, every entry point extern "C".
//
// A convolution is a matrix product in disguise (see kernels/reference/conv.py). Lay out, for
// every output position p = (y, x), the Cg x KH x KW input values under the kernel as one column
// q = (c, i, j) of a matrix "cols"; then for each group g
//
//     out[n, g]  = W[g] (Kg x Q)  @ cols[n, g] (Q x P)                          (forward)
//     dcols[n,g] = W[g]^T         @ dout[n, g] (Kg x P), then col2im -> dx       (backward-input)
//     dW[g]      = sum_n dout[n, g] @ cols[n, g]^T                              (backward-weight)
//
// The products run on the GEMM of matmul.cu. This file holds the three gathers around it:
//
//   im2col     x (N, C, H, W)           -> cols  (N, C*KH*KW, P)       rows q, columns p
//   im2col_t   x                        -> colsT (G, N*P, Cg*KH*KW)    the transpose, per group,
//                                          with all images stacked, so that dW is one GEMM
//                                          whose k runs over (image, position)
//   col2im     dcols (N, C*KH*KW, P)    -> dx (N, C, H, W)
//
// Every kernel uses one thread per *output* element, so every thread writes exactly one value
// and no two threads write the same address: no atomics, no races, and deterministic results.
// For col2im that means a gather: an input pixel (h, w) sums the column entries of every
// window that covers it, instead of each window scattering (adding) into the pixels it covers,
// which would need atomicAdd wherever windows overlap (stride < kernel size).
//
// Threads take consecutive indices of the array they *write* (coalesced stores); the reads
// are gathers, but neighbouring threads read neighbouring or nearby pixels, which the L1/L2
// caches serve. All loops are grid-stride loops, so any grid size is correct, and arrays of
// more than 2^31 elements work (see the index arithmetic below).

struct ConvGeom {
    int C, H, W;      // input channels and plane (of the whole input, all groups)
    int KH, KW;       // kernel
    int sh, sw;       // stride
    int ph, pw;       // padding
    int dh, dw;       // dilation
    int Ho, Wo;       // output plane
};

// Index arithmetic. Splitting a flat index into (n, c, i, j, y, x) costs several divisions per
// element, and a 64-bit integer division is a long software routine on the GPU, while a 32-bit
// one is a few instructions. So each kernel's body is a template on the index type I, and the
// grid-stride loop below runs it with `int` whenever the array and the grid both have fewer
// than 2^30 elements / threads (so that idx + stride cannot overflow), else with `long long`.
#ifndef MINIDL_INDEX32_LIMIT  // a test can define it as 0 to run the 64-bit path on small arrays
#define MINIDL_INDEX32_LIMIT (1LL << 30)
#endif
#define MINIDL_GRID_STRIDE(TOTAL, BODY)                                                                      \
    do {                                                                                                     \
        const long long stride_ = (long long)gridDim.x * blockDim.x;                                         \
        const long long first_ = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
        if ((TOTAL) < MINIDL_INDEX32_LIMIT && stride_ < MINIDL_INDEX32_LIMIT) {                              \
            for (int idx = (int)first_; idx < (int)(TOTAL); idx += (int)stride_) BODY<int>(idx);             \
        } else {                                                                                             \
            for (long long idx = first_; idx < (TOTAL); idx += stride_) BODY<long long>(idx);                \
        }                                                                                                    \
    } while (0)

// cols[n, (c, i, j), (y, x)] = x[n, c, y*sh - ph + i*dh, x*sw - pw + j*dw], or 0 in the padding.
// Consecutive threads write consecutive positions p = (y, x) and, for stride 1, read
// consecutive pixels of one input row.
template <typename T>
struct Im2col {
    const T* __restrict__ x;
    T* __restrict__ cols;
    ConvGeom g;

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const I P = (I)g.Ho * g.Wo;
        const I Q = (I)g.C * g.KH * g.KW;
        const int p = (int)(idx % P);
        const I r = idx / P;
        const int q = (int)(r % Q);
        const I n = r / Q;
        const int j = q % g.KW;
        const int i = (q / g.KW) % g.KH;
        const int c = q / (g.KW * g.KH);
        const int h = (p / g.Wo) * g.sh - g.ph + i * g.dh;
        const int w = (p % g.Wo) * g.sw - g.pw + j * g.dw;
        T v = T(0);
        if (h >= 0 && h < g.H && w >= 0 && w < g.W) v = x[(((long long)n * g.C + c) * g.H + h) * g.W + w];
        cols[idx] = v;
    }
};

// colsT[grp, n*P + p, q] with q = (c_in_group, i, j): the transpose of im2col, grouped, with the
// images of the batch stacked along the rows. `groups` splits the C channels into groups of
// Cg = C / groups. The q index varies fastest, so the writes are coalesced.
template <typename T>
struct Im2colT {
    const T* __restrict__ x;
    T* __restrict__ colsT;
    ConvGeom g;
    int N, groups;

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const int P = g.Ho * g.Wo;
        const int Cg = g.C / groups;
        const int Q = Cg * g.KH * g.KW;
        const int q = (int)(idx % Q);
        I r = idx / Q;
        const int p = (int)(r % P);
        r /= P;
        const I n = r % N;
        const int grp = (int)(r / N);
        const int j = q % g.KW;
        const int i = (q / g.KW) % g.KH;
        const int c = grp * Cg + q / (g.KW * g.KH);
        const int h = (p / g.Wo) * g.sh - g.ph + i * g.dh;
        const int w = (p % g.Wo) * g.sw - g.pw + j * g.dw;
        T v = T(0);
        if (h >= 0 && h < g.H && w >= 0 && w < g.W) v = x[(((long long)n * g.C + c) * g.H + h) * g.W + w];
        colsT[idx] = v;
    }
};

// dx[n, c, h, w] = sum over kernel taps (i, j) and output positions (y, x) with
//     y*sh - ph + i*dh == h  and  x*sw - pw + j*dw == w     of  dcols[n, (c, i, j), (y, x)].
// For a tap i the matching y is (h + ph - i*dh) / sh, which must be an integer in [0, Ho):
// the stride skips some taps, the borders clip others. The taps are summed in the order
// (i, j), the order in which the reference adds them.
template <typename T>
struct Col2im {
    const T* __restrict__ dcols;
    T* __restrict__ dx;
    ConvGeom g;

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const int P = g.Ho * g.Wo;
        const int KK = g.KH * g.KW;
        const int w = (int)(idx % g.W);
        const I rest = idx / g.W;
        const int h = (int)(rest % g.H);
        const I nc = rest / g.H;                            // n * C + c
        const T* base = dcols + (long long)nc * KK * P;     // rows (c, 0, 0) .. (c, KH-1, KW-1) of image n
        T sum = T(0);
        for (int i = 0; i < g.KH; ++i) {
            const int hy = h + g.ph - i * g.dh;
            if (hy < 0 || hy % g.sh != 0) continue;
            const int y = hy / g.sh;
            if (y >= g.Ho) continue;
            for (int j = 0; j < g.KW; ++j) {
                const int wx = w + g.pw - j * g.dw;
                if (wx < 0 || wx % g.sw != 0) continue;
                const int xo = wx / g.sw;
                if (xo >= g.Wo) continue;
                sum += base[(long long)(i * g.KW + j) * P + y * g.Wo + xo];
            }
        }
        dx[idx] = sum;
    }
};

// extern "C" entry points, one per dtype. The geometry travels as a struct passed by value
// (CuPy cannot pass structs, so the host passes the 13 ints and they are packed here).
#define MINIDL_CONV_GEOM ConvGeom{C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo}
#define MINIDL_CONV_ARGS                                                                                      \
    int C, int H, int W, int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo

#define MINIDL_CONV(SUFFIX, T)                                                                                \
    extern "C" __global__ void im2col_##SUFFIX(const T* __restrict__ x, T* __restrict__ cols, MINIDL_CONV_ARGS, \
                                               long long total) {                                            \
        const Im2col<T> k{x, cols, MINIDL_CONV_GEOM};                                                        \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }                                                                                                         \
    extern "C" __global__ void im2col_t_##SUFFIX(const T* __restrict__ x, T* __restrict__ colsT,              \
                                                 MINIDL_CONV_ARGS, int N, int groups, long long total) {      \
        const Im2colT<T> k{x, colsT, MINIDL_CONV_GEOM, N, groups};                                           \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }                                                                                                         \
    extern "C" __global__ void col2im_##SUFFIX(const T* __restrict__ dcols, T* __restrict__ dx,               \
                                               MINIDL_CONV_ARGS, long long total) {                          \
        const Col2im<T> k{dcols, dx, MINIDL_CONV_GEOM};                                                      \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }

MINIDL_CONV(f32, float)
MINIDL_CONV(f64, double)
