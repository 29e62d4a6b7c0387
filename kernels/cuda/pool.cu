// pool.cu -- 2-D max and average pooling (NCHW), forward and backward, with torch's rules.
//
// Compiled at run time by NVRTC (CuPy's RawModule): no headers, every entry point extern "C".
// Shapes and sizes follow kernels/reference/pool.py, which the tests compare against.
//
// Pooling is memory-bound (a handful of flops per value read), so the design is simply one
// thread per element of the array being *written*, with consecutive threads on consecutive
// elements so that the writes are coalesced; each thread loops over its small window.
//
//   max_pool2d_forward    thread per output: max over the window, and where it was
//   max_pool2d_backward   thread per output: add its gradient to the input at the argmax,
//                         with atomicAdd (below, why)
//   avg_pool2d_forward    thread per output: window sum / divisor
//   avg_pool2d_backward   thread per *input*: gather g / divisor from every window that
//                         covers the pixel (no atomics)
//
// Window arithmetic, for one dimension (the other is the same): output y covers the input rows
//     y*s - p + i*d,  i = 0 .. k-1      (d = dilation; average pooling has d = 1)
// and rows outside [0, H) are padding.

// Large indices: every kernel runs a grid-stride loop whose body is a template on the index
// type, run with `int` (fast 32-bit divisions) when the array and the grid both have fewer than
// 2^30 elements / threads (so that idx + stride cannot overflow), else with `long long`.
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

struct PoolGeom {
    int H, W;         // input plane
    int Ho, Wo;       // output plane
    int KH, KW;       // window
    int sh, sw;       // stride
    int ph, pw;       // padding
    int dh, dw;       // dilation (max pooling only; 1 for average pooling)
};

// -infinity without <cmath>'s INFINITY macro (this file includes no headers): the IEEE bit pattern.
template <typename T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return __int_as_float((int)0xff800000); }
template <> __device__ __forceinline__ double neg_inf<double>() { return __longlong_as_double((long long)0xfff0000000000000ULL); }

// ---- max pooling, forward --------------------------------------------------------------------
// Semantics of torch (and of the reference): the first maximum wins ties, and every NaN replaces
// the running maximum, so the window's last NaN wins (NaN propagates).
// `v != v` is the NaN test that needs no header. Padding never wins: the running maximum starts
// from the first in-bounds value of the window, as in torch. (The NumPy reference pads with
// -inf, so it differs only when every in-bounds value is -inf: it may then point at padding.)
template <typename T>
struct MaxPoolForward {
    const T* __restrict__ x;
    T* __restrict__ out;
    long long* __restrict__ indices;  // flat index h * W + w within the input plane
    PoolGeom g;

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const int ox = (int)(idx % g.Wo);
        const I r = idx / g.Wo;
        const int oy = (int)(r % g.Ho);
        const I nc = r / g.Ho;
        const T* plane = x + (long long)nc * g.H * g.W;
        const int hs = oy * g.sh - g.ph, ws = ox * g.sw - g.pw;
        T best = neg_inf<T>();
        long long best_at = (long long)hs * g.W + ws;  // only kept if the window has no input at all
        bool found = false;
        for (int i = 0; i < g.KH; ++i) {
            const int h = hs + i * g.dh;
            if (h < 0 || h >= g.H) continue;
            for (int j = 0; j < g.KW; ++j) {
                const int w = ws + j * g.dw;
                if (w < 0 || w >= g.W) continue;
                const T v = plane[h * g.W + w];
                // take v if it is the first value, strictly larger, or the first NaN
                if (!found || v > best || v != v) {
                    best = v;
                    best_at = (long long)h * g.W + w;
                    found = true;
                }
            }
        }
        out[idx] = best;
        indices[idx] = best_at;
    }
};

// ---- max pooling, backward -------------------------------------------------------------------
// Each output's gradient goes to the one input its maximum came from. Two outputs can pick the
// same input (overlapping windows, stride < kernel), and their threads then add to the same
// address at the same time; a plain `+=` is a read-modify-write that would lose one of the two
// updates. atomicAdd makes each addition indivisible (float64 atomicAdd needs sm_60+). The
// order of the additions is unspecified, so float sums may differ in the last bit run to run.
// `gx` must be zeroed by the caller. Indices outside the plane are skipped, not written.
template <typename T>
struct MaxPoolBackward {
    const T* __restrict__ grad_out;
    const long long* __restrict__ indices;
    T* __restrict__ gx;
    long long plane_out;  // Ho * Wo
    long long plane_in;   // H * W

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const long long nc = (long long)idx / plane_out;
        const long long j = indices[idx];
        if (j >= 0 && j < plane_in) atomicAdd(gx + nc * plane_in + j, grad_out[idx]);
    }
};

// Integer min / max, spelled out so that nothing depends on which overloads NVRTC provides.
__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

// ---- average pooling: torch's divisor ------------------------------------------------------
// The window [hs, hs + KH) is first clipped to the padded input, [-ph, H + ph) (only the right
// edge can stick out, in ceil_mode); its area is the divisor with count_include_pad. Without
// it, the divisor is the area of the window clipped to the input itself, [0, H). A nonzero
// divisor_override replaces both.
struct AvgWindow {
    int h0, h1, w0, w1;  // the window clipped to the input: rows [h0, h1), columns [w0, w1)
    int divisor;
};

__device__ __forceinline__ AvgWindow avg_window(const PoolGeom& g, int oy, int ox, int count_include_pad,
                                                int divisor_override) {
    const int hs = oy * g.sh - g.ph, ws = ox * g.sw - g.pw;
    const int he = imin(hs + g.KH, g.H + g.ph), we = imin(ws + g.KW, g.W + g.pw);
    const int pool_size = (he - hs) * (we - ws);
    AvgWindow win;
    win.h0 = imax(hs, 0);
    win.w0 = imax(ws, 0);
    win.h1 = imin(he, g.H);
    win.w1 = imin(we, g.W);
    if (divisor_override != 0) {
        win.divisor = divisor_override;
    } else if (count_include_pad) {
        win.divisor = pool_size;
    } else {
        win.divisor = (win.h1 - win.h0) * (win.w1 - win.w0);
    }
    return win;
}

// ---- average pooling, forward ----------------------------------------------------------------
template <typename T>
struct AvgPoolForward {
    const T* __restrict__ x;
    T* __restrict__ out;
    PoolGeom g;
    int count_include_pad, divisor_override;

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const int ox = (int)(idx % g.Wo);
        const I r = idx / g.Wo;
        const int oy = (int)(r % g.Ho);
        const I nc = r / g.Ho;
        const T* plane = x + (long long)nc * g.H * g.W;
        const AvgWindow win = avg_window(g, oy, ox, count_include_pad, divisor_override);
        T sum = T(0);
        for (int h = win.h0; h < win.h1; ++h)
            for (int w = win.w0; w < win.w1; ++w) sum += plane[h * g.W + w];
        out[idx] = sum / T(win.divisor);
    }
};

// ---- average pooling, backward ---------------------------------------------------------------
// dx[h, w] = sum over the windows (oy, ox) that cover (h, w) of g[oy, ox] / divisor(oy, ox).
// Window oy covers padded row hp = h + ph when oy*sh <= hp < oy*sh + KH, that is for
//     oy in [ (hp - KH) / sh + 1  (or 0 if hp < KH),  hp / sh ]   intersected with [0, Ho).
// A gather: each thread writes only its own pixel, so no atomics are needed. (The coverage
// test uses the unclipped window, as the reference does: in ceil_mode a window that hangs
// over the padded edge still only reaches real pixels, which are all inside the input.)
template <typename T>
struct AvgPoolBackward {
    const T* __restrict__ grad_out;
    T* __restrict__ gx;
    PoolGeom g;
    int count_include_pad, divisor_override;

    template <typename I>
    __device__ __forceinline__ void at(I idx) const {
        const int w = (int)(idx % g.W);
        const I r = idx / g.W;
        const int h = (int)(r % g.H);
        const I nc = r / g.H;
        const T* gplane = grad_out + (long long)nc * g.Ho * g.Wo;
        const int hp = h + g.ph, wp = w + g.pw;
        const int oy0 = hp < g.KH ? 0 : (hp - g.KH) / g.sh + 1;
        const int ox0 = wp < g.KW ? 0 : (wp - g.KW) / g.sw + 1;
        const int oy1 = imin(hp / g.sh, g.Ho - 1);
        const int ox1 = imin(wp / g.sw, g.Wo - 1);
        T sum = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) {
                const AvgWindow win = avg_window(g, oy, ox, count_include_pad, divisor_override);
                sum += gplane[oy * g.Wo + ox] / T(win.divisor);
            }
        gx[idx] = sum;
    }
};

// ---- extern "C" entry points, one per dtype ---------------------------------------------------
#define MINIDL_POOL_ARGS                                                                                      \
    int H, int W, int Ho, int Wo, int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw
#define MINIDL_POOL_GEOM PoolGeom{H, W, Ho, Wo, KH, KW, sh, sw, ph, pw, dh, dw}

#define MINIDL_POOL(SUFFIX, T)                                                                                \
    extern "C" __global__ void max_pool2d_forward_##SUFFIX(const T* __restrict__ x, T* __restrict__ out,      \
                                                           long long* __restrict__ indices, MINIDL_POOL_ARGS, \
                                                           long long total) {                                \
        const MaxPoolForward<T> k{x, out, indices, MINIDL_POOL_GEOM};                                         \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }                                                                                                         \
    extern "C" __global__ void max_pool2d_backward_##SUFFIX(const T* __restrict__ grad_out,                   \
                                                            const long long* __restrict__ indices,            \
                                                            T* __restrict__ gx, long long plane_out,          \
                                                            long long plane_in, long long total) {            \
        const MaxPoolBackward<T> k{grad_out, indices, gx, plane_out, plane_in};                               \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }                                                                                                         \
    extern "C" __global__ void avg_pool2d_forward_##SUFFIX(const T* __restrict__ x, T* __restrict__ out,      \
                                                           MINIDL_POOL_ARGS, int count_include_pad,          \
                                                           int divisor_override, long long total) {           \
        const AvgPoolForward<T> k{x, out, MINIDL_POOL_GEOM, count_include_pad, divisor_override};             \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }                                                                                                         \
    extern "C" __global__ void avg_pool2d_backward_##SUFFIX(const T* __restrict__ grad_out,                   \
                                                            T* __restrict__ gx, MINIDL_POOL_ARGS,             \
                                                            int count_include_pad, int divisor_override,      \
                                                            long long total) {                               \
        const AvgPoolBackward<T> k{grad_out, gx, MINIDL_POOL_GEOM, count_include_pad, divisor_override};      \
        MINIDL_GRID_STRIDE(total, k.template at);                                                             \
    }

MINIDL_POOL(f32, float)
MINIDL_POOL(f64, double)
