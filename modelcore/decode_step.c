/* modelcore's native code. One GPT-2 decoding step at batch 1 (decode_step) and at any batch (decode_batch), in
 * C: the same arithmetic as GPT.decode in model.py; the attention of such a step at any batch size
 * (decode_attention), which GPT.decode itself calls on CPU; sampling's top-k (top_k); and, for training in
 * bf16, the output layer's loss and gradient (cross_entropy_bf16), the causal softmax between the attention's
 * products (causal_softmax_bf16; causal_attention_probs_bf16 with the product before it fused in, and the
 * backward's transposed products, causal_attention_column_products_bf16), the GELU (gelu_bf16) and the
 * residual stream's layer norm (layer_norm_bf16), each with its backward pass.
 *
 * Why it exists: at batch 1 a step reads every weight once and does little else, yet in torch it costs
 * ~100 operator calls whose overhead, and matrix-vector kernels well below a bare read of memory, take
 * most of the step. Here the step is one call and one OpenMP parallel region; each phase splits its rows
 * (or heads) between the threads, with a barrier between phases. Above batch 1 the matrices are read in
 * packed panels, each multiplied by every row of the batch (linear_panels).
 *
 * Every output value is summed by one thread in a fixed order, so the result does not depend on the
 * number of threads. It rounds differently from torch's kernels (last bits of a logit).
 *
 * With int8 weights (modelcore/quantize.py) the step reads each matrix as int8 values and row scales, a
 * quarter of the bytes, and computes as before in fp32: the same logits as the fp32 step on the
 * dequantized weights, but for rounding.
 *
 * modelcore/native.py compiles this file for the machine it runs on; it and modelcore/fused.py check every
 * shape, dtype and bound before calling it; the C side trusts the pointers it is given.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* Eight floats: one AVX2 register, half an AVX-512 one. (Sixteen-float vectors read the same arithmetic
 * but gcc compiles them for AVX2 through the stack, at half a bare read's speed: bench/README.md.) */
typedef float v8 __attribute__((vector_size(32), aligned(4)));

enum { LN_1_W, LN_1_B, ATTN_W, ATTN_B, ATTN_PROJ_W, ATTN_PROJ_B,
       LN_2_W, LN_2_B, FC_W, FC_B, MLP_PROJ_W, MLP_PROJ_B, PER_LAYER };

typedef struct {
    int n_layer, n_embd, n_head, n_ctx, n_vocab;
    const float *wte, *wpe, *ln_f_w, *ln_f_b;  /* wte [n_vocab, C] is also the output projection */
    const float *const *layers;               /* PER_LAYER pointers per layer, in the enum's order */
    float *const *kv;                         /* per layer [2, kv_batch, n_head, n_ctx, head_dim] */
    /* Int8 weights (modelcore/quantize.py), or all NULL for fp32: wte and, per layer in the enum's order,
     * the four matrices' values and row scales (NULL in the vectors' slots). They replace the fp32 matrices,
     * which are then not read. */
    const signed char *wte_q;
    const float *wte_scales;
    const signed char *const *q_layers;
    const float *const *q_scales;
    int kv_batch;                             /* rows the caches hold: 1 for decode_step */
    /* For decode_batch: the matrices packed by pack_panels, wte and per layer in the enum's order (NULL in
     * the vectors' slots). */
    const float *wte_packed;
    const float *const *packed_layers;
    /* With int8 weights, the same packed as int8 (their scales are wte_scales and q_scales); the fp32
     * ones are then NULL. */
    const signed char *wte_packed_q;
    const signed char *const *packed_q_layers;
} Model;

#define AT(p, i) (*(const v8 *)((p) + (i)))

#if defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif
/* acc += a * b, fused where the CPU has FMA: one instruction in place of two leaves the core more room to
 * keep loads of the weights in flight (8% faster products at GPT-2 124M's shape, bench/README.md). CPUs
 * without FMA round the product first, so their logits differ in the last bits. */
#ifdef __FMA__
#define MADD(acc, a, b) ((acc) = (v8)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(acc)))
#else
#define MADD(acc, a, b) ((acc) += (a) * (b))
#endif

/* Eight int8 weights, widened to floats exactly before they are multiplied: one sign extension and one
 * conversion with AVX2 (gcc's generic vectors widen int8 a lane at a time, slower than the fp32 step). */
#ifdef __AVX2__
static inline v8 widen8(const signed char *p) {
    return (v8)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
#else
static inline v8 widen8(const signed char *p) {
    v8 r;
    for (int k = 0; k < 8; k++) r[k] = (float)p[k];
    return r;
}
#endif

#ifdef __AVX512F__
typedef float v16 __attribute__((vector_size(64), aligned(4)));
/* Sixteen weights at i, fp32 or int8 widened exactly. */
static inline __m512 weights16(const float *wf, const signed char *wq, size_t i, int quantized) {
    if (quantized) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(wq + i))));
    return _mm512_loadu_ps(wf + i);
}
#endif

/* w . x over n weights (fp32, or int8 whose row scale the caller applies), one row at a time: measured at a
 * bare read's speed, where four rows at a time sharing each load of x ran at half of it (bench/README.md).
 * Thirty-two partial sums, lane i of the 32-weight block in accumulator i / 8, folded as (a0 + b0, a1 + b1)
 * in lane order: the same arithmetic on every target. With AVX-512 one register holds a0 and a1 (b0 and b1)
 * side by side, the same chains in half the instructions: int8 weights are widened sixteen at a time, where
 * the AVX2 code held the int8 step at a third of what its memory allows. quantized is a constant where this
 * is inlined. */
static inline __attribute__((always_inline)) float dot_weights(const float *wf, const signed char *wq,
                                                               const float *x, int n, int quantized) {
    int i = 0;
    float s = 0;
#ifdef __AVX512F__
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a = _mm512_fmadd_ps(weights16(wf, wq, i, quantized), _mm512_loadu_ps(x + i), a);
        b = _mm512_fmadd_ps(weights16(wf, wq, i + 16, quantized), _mm512_loadu_ps(x + i + 16), b);
    }
    for (; i + 16 <= n; i += 16) a = _mm512_fmadd_ps(weights16(wf, wq, i, quantized), _mm512_loadu_ps(x + i), a);
    v16 sums = (v16)_mm512_add_ps(a, b);
    for (int k = 0; k < 16; k++) s += sums[k];
#else
#define W8(i) (quantized ? widen8(wq + (i)) : AT(wf, i))
    v8 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    for (; i + 32 <= n; i += 32) {
        MADD(a0, W8(i), AT(x, i));
        MADD(a1, W8(i + 8), AT(x, i + 8));
        MADD(b0, W8(i + 16), AT(x, i + 16));
        MADD(b1, W8(i + 24), AT(x, i + 24));
    }
    for (; i + 16 <= n; i += 16) {
        MADD(a0, W8(i), AT(x, i));
        MADD(a1, W8(i + 8), AT(x, i + 8));
    }
#undef W8
    a0 += b0;
    a1 += b1;
    for (int k = 0; k < 8; k++) s += a0[k];
    for (int k = 0; k < 8; k++) s += a1[k];
#endif
    for (; i < n; i++) s += (quantized ? (float)wq[i] : wf[i]) * x[i];
    return s;
}

/* A weight matrix [rows, n] as the step reads it: fp32, or int8 values with one scale per row. */
typedef struct {
    const float *f;
    const signed char *q;
    const float *scales;
} Matrix;

static Matrix layer_matrix(const Model *m, int l, int which) {
    size_t i = (size_t)l * PER_LAYER + which;
    Matrix w = {m->layers[i], m->q_layers ? m->q_layers[i] : NULL, m->q_layers ? m->q_scales[i] : NULL};
    return w;
}

static float row_dot(Matrix W, int row, const float *x, int n) {
    if (W.q) return dot_weights(NULL, W.q + (size_t)row * n, x, n, 1) * W.scales[row];
    return dot_weights(W.f + (size_t)row * n, NULL, x, n, 0);
}

enum { SET, ADD, GELU };  /* what a product does with its output: y = Wx + b, y += Wx + b, y = gelu(Wx + b) */

static inline v8 splat(float s) {
    v8 v = {s, s, s, s, s, s, s, s};
    return v;
}

typedef int v8i __attribute__((vector_size(32)));

/* e^x for eight floats in [-87, 87], to about a unit in the last place: x rounded to n ln 2 + r,
 * |r| <= ln 2 / 2, and e^r by its Taylor series to r^6 (error under 2e-7 there), scaled by 2^n. */
static inline v8 exp8_within(v8 x) {
    const v8 shifter = splat(12582912.0f);  /* 1.5 * 2^23: adding it rounds to an integer */
    v8 shifted = x * splat(1.44269504f) + shifter;
    v8 n = shifted - shifter;
    v8 r = (x - n * splat(0.693145752f)) - n * splat(1.42860677e-6f);  /* ln 2 in two parts */
    v8 e = splat(1.0f / 720);
    e = e * r + splat(1.0f / 120);
    e = e * r + splat(1.0f / 24);
    e = e * r + splat(1.0f / 6);
    e = e * r + splat(0.5f);
    e = e * r + splat(1.0f);
    e = e * r + splat(1.0f);
    v8i scale = ((v8i)shifted - (v8i)shifter + 127) << 23;  /* 2^n: n in the exponent's bits */
    return e * (v8)scale;
}

/* max(a, b) lane by lane: a where a > b, else b (also where either is NaN), as vmaxps computes it; min8
 * likewise. */
static inline v8 max8(v8 a, v8 b) {
#ifdef __AVX2__
    return (v8)_mm256_max_ps((__m256)a, (__m256)b);
#else
    v8i greater = a > b;
    return (v8)(((v8i)a & greater) | ((v8i)b & ~greater));
#endif
}

static inline v8 min8(v8 a, v8 b) {
#ifdef __AVX2__
    return (v8)_mm256_min_ps((__m256)a, (__m256)b);
#else
    v8i less = a < b;
    return (v8)(((v8i)a & less) | ((v8i)b & ~less));
#endif
}

/* e^x for eight floats, inputs clamped to [-87, 87] (NaN to -87: its callers, the GELU and its gradient, keep
 * a NaN in their factor u). */
static inline v8 exp8(v8 x) {
    return exp8_within(min8(max8(x, splat(-87.0f)), splat(87.0f)));
}

/* GPT-2's tanh GELU for eight floats, u (1 + tanh z) / 2 with z = b (u + k u^3), as u / (1 + e^-2z): the same
 * function, without the cancellation of 1 + tanh z where tanh z nears -1 (GELU's long negative tail). */
#define GELU_B 0.7978845608028654f
#define GELU_K 0.044715f
static inline v8 gelu8(v8 u) {
    v8 z = splat(GELU_B) * (u + splat(GELU_K) * u * u * u);
    return u / (splat(1.0f) + exp8(-(z + z)));
}

/* y (mode) W x + b for W [rows, n]; called by every thread of the region, which share the rows. The
 * GELU goes over eight outputs at a time once they are all there (tanhf a value at a time took 0.24 ms
 * of a 15 ms step at GPT-2 124M's shape). */
static void linear(Matrix W, const float *b, const float *x, float *y, int rows, int n, int mode) {
    #pragma omp for schedule(static)
    for (int row = 0; row < rows; row++) {
        float value = row_dot(W, row, x, n) + (b ? b[row] : 0.0f);
        if (mode == ADD) y[row] += value;
        else y[row] = value;
    }
    if (mode != GELU) return;
    #pragma omp for schedule(static)
    for (int i = 0; i < rows; i += 8) {
        float u[8] = {0};
        int count = rows - i < 8 ? rows - i : 8;
        for (int j = 0; j < count; j++) u[j] = y[i + j];
        v8 g = gelu8(AT(u, 0));
        for (int j = 0; j < count; j++) y[i + j] = g[j];
    }
}

/* A vector's eight lanes added as a tree: three additions deep where a running sum is eight. */
static inline float lanes_sum(v8 a) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* The products of a step with several rows (decode_batch): Y (mode) X W^T + b for X [batch, n], with
 * W [rows, n] packed by pack_panels into panels of 16 of its rows, each stored k-major (the 16 weights
 * of column k side by side), the last panel padded with zeros. A panel is read from memory once and
 * multiplied by every row of X, a tile of rows at a time: with AVX2 up to six rows, twelve accumulators,
 * two loads of W and a broadcast of X filling the core's sixteen registers (the layout of BLIS's and
 * oneDNN's own kernels); with AVX-512 up to fourteen rows times two panels, two registers a row, which
 * more than doubles the products' speed on such CPUs (bench/README.md). Each output is one chain of fused
 * multiply-adds over k in order, in any tile, at either width, whatever the thread count: the same bits on
 * every host of a fleet whose CPUs have FMA (all with AVX2 since 2013 do; without it MADD rounds the product
 * first). */
enum { PANEL = 16 };

/* Asks Linux to back the whole 2 MB pages within [p, p + bytes), not yet touched, with huge pages:
 * decode_batch streams the packed matrices every step (modelcore/fused.py allocates them in one piece), and
 * with 4 KB pages 124M's products ran 10% slower (30 vs 27 ms in a harness). Only a hint: where it fails,
 * or elsewhere than Linux, nothing changes. */
void want_huge_pages(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

/* W [rows, n] into packed [ceil(rows / 16) * 16 * n]; called once per matrix by modelcore/fused.py. The same
 * for int8 values (pack_panels_q8), whose row scales stay as they are. */
#define PACK_PANELS(W, packed, rows, n)                                                                    \
    do {                                                                                                   \
        int panels_ = ((rows) + PANEL - 1) / PANEL;                                                        \
        _Pragma("omp parallel for schedule(static)")                                                       \
        for (int p = 0; p < panels_; p++)                                                                  \
            for (int k = 0; k < (n); k++)                                                                  \
                for (int j = 0; j < PANEL; j++) {                                                          \
                    int row = p * PANEL + j;                                                               \
                    (packed)[((size_t)p * (n) + k) * PANEL + j] = row < (rows) ? (W)[(size_t)row * (n) + k] : 0; \
                }                                                                                          \
    } while (0)

void pack_panels(const float *W, float *packed, int rows, int n) { PACK_PANELS(W, packed, rows, n); }
void pack_panels_q8(const signed char *W, signed char *packed, int rows, int n) { PACK_PANELS(W, packed, rows, n); }

/* A packed matrix: fp32 panels, or int8 panels with one scale per row of W (applied to the finished sums,
 * as row_dot does). */
typedef struct {
    const float *f;
    const signed char *q;
    const float *scales;
} Packed;

/* A row's 16 sums of a panel: scaled (int8), plus the bias of those columns, then (mode) into y; columns
 * past `rows` are padding. Vector loads and stores where the panel is whole (all but a matrix's last): a
 * value at a time it took 2 ms of a 40 ms step at GPT-2 124M's shape and a shard's batch. */
static void store_panel(float *y, const float *sums, const float *scales, const float *b, int col0, int rows,
                        int mode) {
    int count = rows - col0 < PANEL ? rows - col0 : PANEL;
    const float *scale = scales ? scales + col0 : NULL, *bias = b ? b + col0 : NULL;
    float *to = y + col0, part_scale[PANEL] = {0}, part_bias[PANEL] = {0}, part[PANEL] = {0};
    if (count < PANEL) {  /* the last panel: through buffers of a whole one */
        for (int j = 0; j < count; j++) {
            if (scale) part_scale[j] = scale[j];
            if (bias) part_bias[j] = bias[j];
            part[j] = to[j];
        }
        scale = scale ? part_scale : NULL;
        bias = bias ? part_bias : NULL;
        to = part;
    }
    v8 lo = AT(sums, 0), hi = AT(sums, 8);
    if (scale) {
        lo *= AT(scale, 0);
        hi *= AT(scale, 8);
    }
    if (bias) {
        lo += AT(bias, 0);
        hi += AT(bias, 8);
    }
    if (mode == GELU) {
        lo = gelu8(lo);
        hi = gelu8(hi);
    }
    if (mode == ADD) {
        lo = AT(to, 0) + lo;
        hi = AT(to, 8) + hi;
    }
    *(v8 *)to = lo;
    *(v8 *)(to + 8) = hi;
    if (to == part)
        for (int j = 0; j < count; j++) y[col0 + j] = part[j];
}

/* Column k's 16 weights of the panel, as floats (int8 ones widened exactly). */
#define PANEL_WEIGHTS(k)                                                                                 \
    v8 w0 = quantized ? widen8(qpanel + (size_t)(k) * PANEL) : AT(fpanel, (size_t)(k) * PANEL);          \
    v8 w1 = quantized ? widen8(qpanel + (size_t)(k) * PANEL + 8) : AT(fpanel, (size_t)(k) * PANEL + 8)

#define ROW_MADD(c0, c1, xrow)                 \
    do {                                       \
        v8 s_ = splat((xrow)[k]);              \
        MADD(c0, w0, s_);                      \
        MADD(c1, w1, s_);                      \
    } while (0)

/* A tile multiplies up to MAX_TILE rows of X by TILE_PANELS adjacent panels, with one accumulator per eight
 * outputs (AVX2: 6 rows x one panel, 12 registers) or sixteen (AVX-512: 14 rows x two panels, 28 of its 32
 * registers), so that the accumulators, the panels' columns and a broadcast of X fit the registers. Two panels
 * per broadcast keep AVX-512's two FMA units busy where one waited on loads (124M's products at a shard's
 * batch: 39 -> 28 ms; 2 x 14 beat 3 x 9, 4 x 6 and 1 x 12 in a harness). */
#ifdef __AVX512F__
#define MAX_TILE 14
#define TILE_PANELS 2
#else
#define MAX_TILE 6
#define TILE_PANELS 1
#endif

/* Column k of each of the next group's panels (`next`, `next_size` bytes apart), fetched into cache while the
 * first tile of this group computes: a panel streamed from memory otherwise waits on each line (a 154 MB
 * output layer at a shard's batch: 115 -> 150 GFLOP/s). */
#define PREFETCH_NEXT(k)                                                                                  \
    do {                                                                                                  \
        size_t at_ = (size_t)(k) * PANEL * (quantized ? 1 : sizeof(float));                               \
        __builtin_prefetch(next + at_, 0, 3);                                                             \
        if (next_two) __builtin_prefetch(next + next_size + at_, 0, 3);                                   \
    } while (0)

/* `count` rows of X (a constant where this is inlined) times a group of `width` panels (TILE_PANELS, or 1 for
 * a matrix's odd last panel: the tile then multiplies that panel twice and stores it once): each output one
 * chain of multiply-adds over k in order, the same chain whatever the tile and the vector width, so the same
 * bits. A panel is `size` elements (n * PANEL) after the one before it. */
static inline __attribute__((always_inline)) void panel_tile(Packed W, const float *fpanel, const signed char *qpanel,
                                                             const float *b, const float *X, float *Y, int count,
                                                             int rows, int n, int col0, int mode, int quantized,
                                                             int width, const char *next, int next_two) {
    _Alignas(64) float sums[MAX_TILE * TILE_PANELS * PANEL];
    size_t size = (size_t)n * PANEL, next_size = size * (quantized ? 1 : sizeof(float));
#ifdef __AVX512F__
    size_t second = width > 1 ? size : 0;
    v16 acc0[MAX_TILE], acc1[MAX_TILE];
    #pragma GCC unroll 14
    for (int i = 0; i < count; i++) acc0[i] = acc1[i] = (v16){0};
    for (int k = 0; k < n; k++) {
        if (next) PREFETCH_NEXT(k);
        __m512 w0 = weights16(fpanel, qpanel, (size_t)k * PANEL, quantized);
        __m512 w1 = weights16(quantized ? NULL : fpanel + second, quantized ? qpanel + second : NULL,
                              (size_t)k * PANEL, quantized);
        #pragma GCC unroll 14
        for (int i = 0; i < count; i++) {
            __m512 x = _mm512_set1_ps(X[(size_t)i * n + k]);
            acc0[i] = (v16)_mm512_fmadd_ps(w0, x, (__m512)acc0[i]);
            acc1[i] = (v16)_mm512_fmadd_ps(w1, x, (__m512)acc1[i]);
        }
    }
    #pragma GCC unroll 14
    for (int i = 0; i < count; i++) {
        *(v16 *)(sums + (size_t)i * 2 * PANEL) = acc0[i];
        *(v16 *)(sums + (size_t)i * 2 * PANEL + PANEL) = acc1[i];
    }
#else
    v8 lo[MAX_TILE], hi[MAX_TILE];
    #pragma GCC unroll 6
    for (int i = 0; i < count; i++) lo[i] = hi[i] = (v8){0};
    for (int k = 0; k < n; k++) {
        if (next) PREFETCH_NEXT(k);
        PANEL_WEIGHTS(k);
        #pragma GCC unroll 6
        for (int i = 0; i < count; i++) ROW_MADD(lo[i], hi[i], X + (size_t)i * n);
    }
    #pragma GCC unroll 6
    for (int i = 0; i < count; i++) {
        *(v8 *)(sums + i * PANEL) = lo[i];
        *(v8 *)(sums + i * PANEL + 8) = hi[i];
    }
#endif
    #pragma GCC unroll 1  /* store_panel once per variant, not once per row: the build takes seconds, not tens */
    for (int i = 0; i < count; i++)
        for (int j = 0; j < width; j++)
            store_panel(Y + (size_t)i * rows, sums + ((size_t)i * TILE_PANELS + j) * PANEL, W.scales, b,
                        col0 + j * PANEL, rows, mode);
}

#define TILE_CASE(c)                                                                                      \
    case c:                                                                                               \
        panel_tile(W, fpanel, qpanel, b, X + (size_t)r * n, Y + (size_t)r * rows, c, rows, n, col0, mode, \
                   quantized, width, t == 0 ? next : NULL, next_two);                                     \
        break;

/* Inlined twice, quantized a constant 0 or 1, so that each copy's inner loop has one kind of load. The batch
 * is cut into tiles of as even sizes as fit (25 rows: 12 and 13 with AVX-512, 5 x 5 with AVX2), since a lone
 * row's chain waits on each multiply-add where a full tile keeps the core's two FMA units busy. */
static inline __attribute__((always_inline)) void linear_panels(Packed W, const float *b, const float *X, float *Y,
                                                                int batch, int rows, int n, int mode, int quantized) {
    int tiles = (batch + MAX_TILE - 1) / MAX_TILE, panels = (rows + PANEL - 1) / PANEL;
    size_t size = (size_t)n * PANEL;
    #pragma omp for schedule(static)
    for (int g = 0; g < (panels + TILE_PANELS - 1) / TILE_PANELS; g++) {
        int p = g * TILE_PANELS, width = panels - p < TILE_PANELS ? panels - p : TILE_PANELS;
        const float *fpanel = quantized ? NULL : W.f + p * size;
        const signed char *qpanel = quantized ? W.q + p * size : NULL;
        int col0 = p * PANEL, following = panels - p - width;  /* panels after this group */
        const char *next = following <= 0 ? NULL
            : quantized ? (const char *)(qpanel + width * size) : (const char *)(fpanel + width * size);
        int next_two = following > 1 && TILE_PANELS > 1;
        for (int t = 0, r = 0; t < tiles; t++) {
            int count = (batch - r) / (tiles - t);
            switch (count) {
                TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
#if MAX_TILE > 6
                TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12) TILE_CASE(13)
                TILE_CASE(14)
#endif
            }
            r += count;
        }
    }
}

static void linear_batch(Packed W, const float *b, const float *X, float *Y, int batch, int rows, int n, int mode) {
    if (W.q) linear_panels(W, b, X, Y, batch, rows, n, mode, 1);
    else linear_panels(W, b, X, Y, batch, rows, n, mode, 0);
}

static void layer_norm(const float *x, const float *w, const float *b, float *y, int n) {
    float mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf(var / n + 1e-5f);  /* model.py's LN_EPS */
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

/* q . key / sqrt(hd) for the n keys [n, hd]. With hd a multiple of 8 (GPT-2's 64) each score is one
 * eight-lane accumulation, four keys at a time for the core's sake; every key gets the same arithmetic,
 * in a block of four or not. */
static void head_scores(const float *q, const float *keys, float *scores, int hd, int n) {
    float scale = 1.0f / sqrtf((float)hd);
    int t = 0;
    if (hd % 8) {
        for (; t < n; t++) {
            float s = 0;
            for (int i = 0; i < hd; i++) s += q[i] * keys[(size_t)t * hd + i];
            scores[t] = s * scale;
        }
        return;
    }
    for (; t + 4 <= n; t += 4) {
        const float *k0 = keys + (size_t)t * hd, *k1 = k0 + hd, *k2 = k1 + hd, *k3 = k2 + hd;
        v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        for (int i = 0; i < hd; i += 8) {
            v8 x = AT(q, i);
            MADD(s0, AT(k0, i), x);
            MADD(s1, AT(k1, i), x);
            MADD(s2, AT(k2, i), x);
            MADD(s3, AT(k3, i), x);
        }
        scores[t] = lanes_sum(s0) * scale;
        scores[t + 1] = lanes_sum(s1) * scale;
        scores[t + 2] = lanes_sum(s2) * scale;
        scores[t + 3] = lanes_sum(s3) * scale;
    }
    for (; t < n; t++) {
        v8 s0 = {0};
        for (int i = 0; i < hd; i += 8) MADD(s0, AT(keys + (size_t)t * hd, i), AT(q, i));
        scores[t] = lanes_sum(s0) * scale;
    }
}

/* out [hd] = sum over t of p[t] * values[t], each output summed over t in order; 32 outputs at a time
 * where hd allows, so that their accumulators stay in registers. */
static void weighted_values(const float *p, const float *values, float *out, int hd, int n) {
    int i = 0;
    if (hd % 8 == 0) {
        for (; i + 32 <= hd; i += 32) {
            v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int t = 0; t < n; t++) {
                const float *v = values + (size_t)t * hd + i;
                v8 w = splat(p[t]);
                MADD(a0, w, AT(v, 0));
                MADD(a1, w, AT(v, 8));
                MADD(a2, w, AT(v, 16));
                MADD(a3, w, AT(v, 24));
            }
            *(v8 *)(out + i) = a0;
            *(v8 *)(out + i + 8) = a1;
            *(v8 *)(out + i + 16) = a2;
            *(v8 *)(out + i + 24) = a3;
        }
        for (; i < hd; i += 8) {
            v8 a0 = {0};
            for (int t = 0; t < n; t++) MADD(a0, splat(p[t]), AT(values + (size_t)t * hd, i));
            *(v8 *)(out + i) = a0;
        }
        return;
    }
    for (; i < hd; i++) {
        float a = 0;
        for (int t = 0; t < n; t++) a += p[t] * values[(size_t)t * hd + i];
        out[i] = a;
    }
}

/* One head of causal attention for the token at pos: its key k and value v (hd floats each) join the
 * head's cache (keys, values: [n_ctx, hd]), and its query q attends to positions 0..pos into out [hd].
 * scores holds pos + 1 floats. */
static void attend_head(const float *q, const float *k, const float *v, float *keys, float *values,
                        float *out, float *scores, int hd, int pos) {
    for (int i = 0; i < hd; i++) {
        keys[(size_t)pos * hd + i] = k[i];
        values[(size_t)pos * hd + i] = v[i];
    }
    head_scores(q, keys, scores, hd, pos + 1);
    float top = -INFINITY, total = 0;
    for (int t = 0; t <= pos; t++)
        if (scores[t] > top) top = scores[t];
    for (int t = 0; t <= pos; t++) total += scores[t] = expf(scores[t] - top);
    for (int t = 0; t <= pos; t++) scores[t] /= total;
    weighted_values(scores, values, out, hd, pos + 1);
}

/* Causal attention for one new token in each of `batch` rows: qkv [batch, 3C] holds the rows' q, k, v; the
 * keys of row r, head h are kv[(r * n_head + h) * n_ctx * hd ...] ([n_ctx, hd]) and its values values_offset
 * floats further (a batch slice of a [2, B, n_head, n_ctx, hd] cache); y [batch, C] receives the heads'
 * outputs; scores holds batch * n_head * (pos + 1) floats. Called by every thread of a region: each (row,
 * head) is one thread's, summed in a fixed order. */
static void attend_rows(const float *qkv, float *kv, size_t values_offset, int batch, int n_head, int n_ctx,
                        int hd, int pos, float *scores, float *y) {
    int C = n_head * hd;
    #pragma omp for schedule(static)
    for (int i = 0; i < batch * n_head; i++) {
        int r = i / n_head, h = i % n_head;
        const float *row = qkv + (size_t)r * 3 * C + (size_t)h * hd;
        float *keys = kv + (size_t)i * n_ctx * hd;
        attend_head(row, row + C, row + 2 * C, keys, keys + values_offset, y + (size_t)r * C + (size_t)h * hd,
                    scores + (size_t)i * (pos + 1), hd, pos);
    }
}

/* attend_rows on its own, as GPT.decode's layers run it at any batch size (modelcore/native.py). */
void decode_attention(const float *qkv, float *kv, ptrdiff_t values_offset, int batch, int n_head, int n_ctx,
                      int hd, int pos, int threads, float *scores, float *y) {
    #pragma omp parallel num_threads(threads)
    attend_rows(qkv, kv, (size_t)values_offset, batch, n_head, n_ctx, hd, pos, scores, y);
}

/* Row r of x [batch, C]: token's embedding (int8 values times their row scale, if int8) plus position pos's. */
static void embed(const Model *m, int token, int pos, float *x) {
    int C = m->n_embd;
    for (int i = 0; i < C; i++)
        x[i] = (m->wte_q ? (float)m->wte_q[(size_t)token * C + i] * m->wte_scales[token]
                         : m->wte[(size_t)token * C + i]) + m->wpe[(size_t)pos * C + i];
}

/* layer_norm of each of x's `batch` rows into y; called by every thread of a region, which share the rows. */
static void layer_norm_rows(const float *x, const float *w, const float *b, float *y, int batch, int n) {
    #pragma omp for schedule(static)
    for (int r = 0; r < batch; r++) layer_norm(x + (size_t)r * n, w, b, y + (size_t)r * n, n);
}

/* Feed token at pos; write next-token logits [n_vocab]. work holds 10C + n_ctx * n_head floats.
 * Returns 0, or -1 for a token or position out of range (nothing is written then). */
int decode_step(const Model *m, int token, int pos, int threads, float *work, float *logits) {
    if (token < 0 || token >= m->n_vocab || pos < 0 || pos >= m->n_ctx) return -1;
    int C = m->n_embd, H = m->n_head, hd = C / H;
    float *x = work, *xn = x + C, *qkv = xn + C, *y = qkv + 3 * C, *hidden = y + C;  /* hidden: 4C */
    float *scores = hidden + 4 * C;  /* n_ctx per head */
    embed(m, token, pos, x);
    #pragma omp parallel num_threads(threads)
    {
        for (int l = 0; l < m->n_layer; l++) {
            const float *const *w = m->layers + (size_t)l * PER_LAYER;
            layer_norm_rows(x, w[LN_1_W], w[LN_1_B], xn, 1, C);
            linear(layer_matrix(m, l, ATTN_W), w[ATTN_B], xn, qkv, 3 * C, C, SET);
            attend_rows(qkv, m->kv[l], (size_t)H * m->n_ctx * hd, 1, H, m->n_ctx, hd, pos, scores, y);
            linear(layer_matrix(m, l, ATTN_PROJ_W), w[ATTN_PROJ_B], y, x, C, C, ADD);
            layer_norm_rows(x, w[LN_2_W], w[LN_2_B], xn, 1, C);
            linear(layer_matrix(m, l, FC_W), w[FC_B], xn, hidden, 4 * C, C, GELU);
            linear(layer_matrix(m, l, MLP_PROJ_W), w[MLP_PROJ_B], hidden, x, C, 4 * C, ADD);
        }
        layer_norm_rows(x, m->ln_f_w, m->ln_f_b, xn, 1, C);
        Matrix out = {m->wte, m->wte_q, m->wte_scales};
        linear(out, NULL, xn, logits, m->n_vocab, C, SET);
    }
    return 0;
}

static Packed packed_matrix(const Model *m, int l, int which) {
    size_t i = (size_t)l * PER_LAYER + which;
    Packed w = {m->packed_layers ? m->packed_layers[i] : NULL, m->packed_q_layers ? m->packed_q_layers[i] : NULL,
                m->packed_q_layers ? m->q_scales[i] : NULL};
    return w;
}

/* Feed tokens[r] to row r (r < batch <= m->kv_batch) at pos, all rows at the same position, as sampling's
 * rows are; write next-token logits [batch, n_vocab]. The matrices are read packed (fp32, or int8 where the
 * model has int8 weights). work holds batch * (10C + n_ctx * n_head) floats. Returns 0, or -1 for a token,
 * position or batch out of range, or packed matrices missing (nothing is written then). */
int decode_batch(const Model *m, const int *tokens, int batch, int pos, int threads, float *work, float *logits) {
    if (batch < 1 || batch > m->kv_batch || pos < 0 || pos >= m->n_ctx) return -1;
    if (m->q_layers ? !m->packed_q_layers || !m->wte_packed_q : !m->packed_layers || !m->wte_packed) return -1;
    for (int r = 0; r < batch; r++)
        if (tokens[r] < 0 || tokens[r] >= m->n_vocab) return -1;
    int C = m->n_embd, H = m->n_head, hd = C / H;
    size_t BC = (size_t)batch * C, values_offset = (size_t)m->kv_batch * H * m->n_ctx * hd;
    float *x = work, *xn = x + BC, *qkv = xn + BC, *y = qkv + 3 * BC, *hidden = y + BC, *scores = hidden + 4 * BC;
    for (int r = 0; r < batch; r++) embed(m, tokens[r], pos, x + (size_t)r * C);
    #pragma omp parallel num_threads(threads)
    {
        for (int l = 0; l < m->n_layer; l++) {
            const float *const *w = m->layers + (size_t)l * PER_LAYER;
            layer_norm_rows(x, w[LN_1_W], w[LN_1_B], xn, batch, C);
            linear_batch(packed_matrix(m, l, ATTN_W), w[ATTN_B], xn, qkv, batch, 3 * C, C, SET);
            attend_rows(qkv, m->kv[l], values_offset, batch, H, m->n_ctx, hd, pos, scores, y);
            linear_batch(packed_matrix(m, l, ATTN_PROJ_W), w[ATTN_PROJ_B], y, x, batch, C, C, ADD);
            layer_norm_rows(x, w[LN_2_W], w[LN_2_B], xn, batch, C);
            linear_batch(packed_matrix(m, l, FC_W), w[FC_B], xn, hidden, batch, 4 * C, C, GELU);
            linear_batch(packed_matrix(m, l, MLP_PROJ_W), w[MLP_PROJ_B], hidden, x, batch, C, 4 * C, ADD);
        }
        layer_norm_rows(x, m->ln_f_w, m->ln_f_b, xn, batch, C);
        Packed out = {m->wte_packed, m->wte_packed_q, m->wte_scales};
        linear_batch(out, NULL, xn, logits, batch, m->n_vocab, C, SET);
    }
    return 0;
}

/* The k largest of x [n] (k <= n), sorted largest first, with their indices: one pass, each value tested
 * against the k-th largest so far and inserted only if above it (rare after the first few hundred).
 * Sampling's top-k (modelcore/native.py): torch.topk over GPT-2's 50,257 logits took 0.1 ms a token, and
 * 4 ms for a shard's 25 rows with its check for ties. Returns 0, or -1 for a NaN (torch orders those itself). */
static int top_k_row(const float *x, int n, int k, float *values, long long *indices) {
    int count = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (v != v) return -1;
        if (count == k && !(v > values[k - 1])) continue;
        int j = count < k ? count++ : k - 1;
        for (; j > 0 && values[j - 1] < v; j--) {
            values[j] = values[j - 1];
            indices[j] = indices[j - 1];
        }
        values[j] = v;
        indices[j] = i;
    }
    return 0;
}

/* top_k_row for each of `rows` rows of x [rows, n] into values, indices [rows, k]; -1 if any row holds a NaN. */
int top_k(const float *x, int rows, int n, int k, float *values, long long *indices, int threads) {
    int failed = 0;
    #pragma omp parallel for schedule(static) num_threads(threads) reduction(|:failed) if(rows > 1)
    for (int r = 0; r < rows; r++)
        failed |= top_k_row(x + (size_t)r * n, n, k, values + (size_t)r * k, indices + (size_t)r * k);
    return failed ? -1 : 0;
}

/* Training's output layer in bf16 (modelcore/training_ops.py's LinearCrossEntropy under CPU autocast): for each row
 * of bf16 logits [rows, V], its cross-entropy against targets[row] (-1: ignored, loss 0) into losses[row], and
 * in place of the logits the gradient softmax - one-hot, rounded to bf16. Computed in fp32 from the exactly
 * widened logits, as torch computes it after casting them up; one read and one write of the [rows, V] buffer
 * where the casts, the log-softmax, the exp and the cast back swept it five times (a tenth of a GPT-2 124M
 * step in bf16, bench/README.md). Each row is one thread's, summed in a fixed order. */
typedef unsigned int v8u __attribute__((vector_size(32)));
typedef unsigned short v8h __attribute__((vector_size(16), aligned(2)));

/* (The intrinsics: one widening load and one narrowing instruction, where gcc's generic conversions took five
 * or six each and held the GELU's passes back.) */
static inline v8 widen_bf16(const unsigned short *p) {
#ifdef __AVX2__
    return (v8)_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16);
#else
    return (v8)(__builtin_convertvector(*(const v8h *)p, v8u) << 16);
#endif
}

/* Eight floats to bf16, rounded to the nearest even as torch rounds (NaN stays a quiet NaN). */
static inline v8h round_bf16(v8 v) {
    v8u bits = (v8u)v;
    v8u rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    v8u nan = (v8u)(v != v);
    v8u halves = (rounded & ~nan) | (0x7FC0u & nan);  /* each below 2^16 */
#if defined(__AVX512VL__)
    return (v8h)_mm256_cvtepi32_epi16((__m256i)halves);
#elif defined(__AVX2__)
    return (v8h)_mm_packus_epi32(_mm256_castsi256_si128((__m256i)halves), _mm256_extracti128_si256((__m256i)halves, 1));
#else
    return __builtin_convertvector(halves, v8h);
#endif
}

static inline float bf16_value(unsigned short h) {
    union { unsigned int u; float f; } v = {(unsigned int)h << 16};
    return v.f;
}

/* e^d for d <= 0, 0 below -87 (and for NaN), so that -inf and far smaller logits weigh nothing. */
static inline v8 exp_below(v8 d) {
    return (v8)((v8i)exp8_within(max8(d, splat(-87.0f))) & (v8i)(d >= splat(-87.0f)));
}

/* Eight of a row's values from x + j: bf16 widened exactly, or fp32 where f32 (a constant where inlined). */
static inline v8 row8(const void *x, int j, int f32) {
    return f32 ? AT((const float *)x, j) : widen_bf16((const unsigned short *)x + j);
}

static inline float row_value(const void *x, int j, int f32) {
    return f32 ? ((const float *)x)[j] : bf16_value(((const unsigned short *)x)[j]);
}

/* A softmax row's first pass: e[j] = e^(scale x[j] - top) for its first n values (bf16, or fp32 where f32; e
 * may be x's own memory then), top (*top) the largest scaled value (scale > 0); returns the sum of the e[j].
 * Two vectors at a time, each with its own running maximum and sum: one chain of dependent additions a
 * vector ran at half the speed. */
static inline __attribute__((always_inline)) float exp_row(const void *x, int f32, int n, float scale, float *e,
                                                           float *top) {
    int whole = n / 8 * 8, pairs = n / 16 * 16;
    v8 tops = splat(-INFINITY), tops2 = tops;
    for (int j = 0; j < pairs; j += 16) {
        tops = max8(tops, row8(x, j, f32));
        tops2 = max8(tops2, row8(x, j + 8, f32));
    }
    if (whole > pairs) tops = max8(tops, row8(x, pairs, f32));
    tops = max8(tops, tops2);
    float largest = fmaxf(fmaxf(fmaxf(tops[0], tops[1]), fmaxf(tops[2], tops[3])),
                          fmaxf(fmaxf(tops[4], tops[5]), fmaxf(tops[6], tops[7])));
    for (int j = whole; j < n; j++) largest = fmaxf(largest, row_value(x, j, f32));
    *top = largest *= scale;
    v8 sums = {0}, sums2 = {0};
    for (int j = 0; j < pairs; j += 16) {
        v8 ej = exp_below(row8(x, j, f32) * splat(scale) - splat(largest));
        v8 ej2 = exp_below(row8(x, j + 8, f32) * splat(scale) - splat(largest));
        *(v8 *)(e + j) = ej;
        *(v8 *)(e + j + 8) = ej2;
        sums += ej;
        sums2 += ej2;
    }
    if (whole > pairs) {
        v8 ej = exp_below(row8(x, pairs, f32) * splat(scale) - splat(largest));
        *(v8 *)(e + pairs) = ej;
        sums += ej;
    }
    float total = lanes_sum(sums + sums2);
    for (int j = whole; j < n; j++) total += e[j] = exp_below(splat(row_value(x, j, f32) * scale - largest))[0];
    return total;
}

/* Its second: x[j] = e[j] / total, rounded to bf16, for j < n. */
static inline __attribute__((always_inline)) void store_row(unsigned short *x, const float *e, int n, float total) {
    int whole = n / 8 * 8;
    v8 inverse = splat(1.0f / total);
    for (int j = 0; j < whole; j += 8) *(v8h *)(x + j) = round_bf16(*(v8 *)(e + j) * inverse);
    for (int j = whole; j < n; j++) x[j] = round_bf16(splat(e[j]) * inverse)[0];
}

/* Returns 0; or, with nothing written, -1 where its scratch (V floats per thread) cannot be allocated and -2
 * for a target past the vocabulary. Logits more than 87 below their row's largest get probability 0 (torch:
 * 0 or a denormal). */
int cross_entropy_bf16(unsigned short *logits, const long long *targets, int rows, int V, float *losses,
                       int threads) {
    if (V < 1) return -2;
    for (int r = 0; r < rows; r++)
        if (targets[r] >= V) return -2;
    size_t stride = ((size_t)V + 15) / 16 * 16;  /* floats per thread's e^(x - max), padded to a cache line */
    float *scratch = malloc(stride * sizeof(float) * (size_t)threads + 64);
    if (!scratch) return -1;
    float *aligned = (float *)(((size_t)scratch + 63) & ~(size_t)63);
    #pragma omp parallel num_threads(threads)
    {
        float *e = aligned + stride * (size_t)omp_get_thread_num();
        #pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            unsigned short *x = logits + (size_t)r * V;
            float top, total = exp_row(x, 0, V, 1.0f, e, &top);  /* x times 1: exactly x */
            long long t = targets[r];
            losses[r] = t >= 0 ? top + logf(total) - bf16_value(x[t]) : 0.0f;
            store_row(x, e, V, total);
            if (t >= 0)  /* minus the one-hot, from the probability before it was rounded */
                x[t] = round_bf16(splat(e[t]) * splat(1.0f / total) - splat(1.0f))[0];
        }
    }
    free(scratch);
    return 0;
}

/* Training's passes below may fuse multiplies and adds (the file is built with -ffp-contract=off, so that
 * sampling rounds the same way on every CPU): a training step need not repeat bit for bit across hosts, and
 * the GELU runs 1.5x faster so. */
#define TRAINING_PASS __attribute__((optimize("fp-contract=fast")))

/* Training's causal attention in bf16 (training_ops.py's CausalAttention) runs its products as torch's bf16
 * matrix products over blocks of the score matrix and these two passes between them: each one read and one write
 * of the scores, where torch's softmax, mask, casts and their backward swept them a dozen times, and torch's flash
 * attention, made for long rows, ran its small products at a sixth of the CPU's bf16 speed (bench/README.md).
 * Each of the `matrices` [rows, cols] blocks holds the scores of queries offset.. against keys 0..cols - 1:
 * its row r attends to columns 0..offset + r, and the rest of the row is written 0. Computed in fp32 from the
 * exactly widened bf16 scores, each row by one thread in a fixed order, rounded to bf16 as torch rounds. */

/* Scores S to probabilities softmax(scale S) in place. Returns 0, or -1 (nothing written) where its scratch
 * (cols floats per thread) cannot be allocated. */
TRAINING_PASS int causal_softmax_bf16(unsigned short *s, int matrices, int rows, int cols, int offset,
                                      float scale, int threads) {
    size_t stride = ((size_t)cols + 15) / 16 * 16;
    float *scratch = malloc(stride * sizeof(float) * (size_t)threads + 64);
    if (!scratch) return -1;
    float *aligned = (float *)(((size_t)scratch + 63) & ~(size_t)63);
    long all_rows = (long)matrices * rows;
    #pragma omp parallel num_threads(threads)
    {
        float *e = aligned + stride * (size_t)omp_get_thread_num();
        #pragma omp for schedule(static)
        for (long r = 0; r < all_rows; r++) {
            unsigned short *x = s + (size_t)r * cols;
            int n = offset + (int)(r % rows) + 1;
            float top;
            store_row(x, e, n, exp_row(x, 0, n, scale, e, &top));
            for (int j = n; j < cols; j++) x[j] = 0;
        }
    }
    free(scratch);
    return 0;
}

/* A row of the scores' gradient from the probabilities' (dp: bf16, or fp32 where f32): out[j] = scale p[j]
 * (dp[j] - the row's sum of p dp) for j < n, 0 on to cols. out may be dp's own memory. */
static inline __attribute__((always_inline)) void softmax_grad_row(const unsigned short *p, const void *dp, int f32,
                                                                   unsigned short *out, int n, int cols,
                                                                   float scale) {
    int whole = n / 8 * 8, pairs = n / 16 * 16;
    v8 dots = {0}, dots2 = {0};  /* two chains of additions, as in exp_row */
    for (int j = 0; j < pairs; j += 16) {
        dots += widen_bf16(p + j) * row8(dp, j, f32);
        dots2 += widen_bf16(p + j + 8) * row8(dp, j + 8, f32);
    }
    if (whole > pairs) dots += widen_bf16(p + pairs) * row8(dp, pairs, f32);
    float dot = lanes_sum(dots + dots2);
    for (int j = whole; j < n; j++) dot += bf16_value(p[j]) * row_value(dp, j, f32);
    for (int j = 0; j < whole; j += 8)
        *(v8h *)(out + j) = round_bf16(widen_bf16(p + j) * (row8(dp, j, f32) - splat(dot)) * splat(scale));
    for (int j = whole; j < n; j++)
        out[j] = round_bf16(splat(bf16_value(p[j]) * (row_value(dp, j, f32) - dot) * scale))[0];
    for (int j = n; j < cols; j++) out[j] = 0;
}

/* The gradient of the scores from that of the probabilities, in place of the latter: dS = scale P (dP - the
 * row's sum of P dP), 0 past column offset + r. */
TRAINING_PASS void causal_softmax_backward_bf16(const unsigned short *p, unsigned short *dp, int matrices, int rows,
                                                int cols, int offset, float scale, int threads) {
    long all_rows = (long)matrices * rows;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < all_rows; r++)
        softmax_grad_row(p + (size_t)r * cols, dp + (size_t)r * cols, 0, dp + (size_t)r * cols,
                         offset + (int)(r % rows) + 1, cols, scale);
}

/* The same two passes with the product before each fused in (training_ops.py's CausalAttention takes them
 * where they return 0): the scores q k^T, or the probabilities' gradient dy v^T, computed tile by tile into an
 * fp32 row buffer that stays in the cache, then the row's pass as above from those fp32 values. torch's
 * products of these two, only hd deep, ran at 190-315 GFLOP/s on a Zen 4 core pair where its deeper ones ran
 * at 400, and the passes read back what they had written; here the tiles stop at the causal diagonal (16
 * keys wide) where a block's product computed every column up to its last row. For CPUs with AVX512-BF16
 * units and without AMX (whose tiles run torch's products many times faster than these units can): elsewhere
 * -3, nothing written, and the caller keeps torch's products and the passes above.
 *
 * x, y: [matrices, T, hd] bf16 (hd even); rows offset..offset + rows - 1 of x against rows 0..cols - 1 of y,
 * cols = offset + rows, into out [matrices, rows, cols]. Each output row is one thread's, in a fixed order. */
#if defined(__AVX512BF16__) && defined(__AVX512F__) && !defined(__AMX_BF16__)
#define TILE_ROWS 8    /* a tile: 8 rows of x times 3 groups of 16 rows of y, 24 of the 32 registers summing */
#define TILE_GROUPS 3

/* Each thread's scratch, kept from call to call: on the VMs of bench/README.md, memory freshly mapped for
 * every call costs more in page faults than the pass itself. Bounded by the largest call's T. */
static __thread char *tile_scratch;
static __thread size_t tile_scratch_size;

static char *thread_scratch(size_t bytes) {
    if (bytes > tile_scratch_size) {
        free(tile_scratch);
        tile_scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
        tile_scratch_size = tile_scratch ? bytes : 0;
    }
    return tile_scratch;
}

/* Called by every thread of a parallel region: the thread's kept scratch of `bytes`, or NULL on every thread
 * where any thread's could not be allocated (so that none writes anything); *failed, shared, says so after. */
static char *scratch_on_every_thread(size_t bytes, int *failed) {
    char *scratch = thread_scratch(bytes);
    if (!scratch) {
        #pragma omp atomic write
        *failed = 1;
    }
    #pragma omp barrier
    int any;
    #pragma omp atomic read
    any = *failed;
    return any ? NULL : scratch;
}

/* y's first n rows in groups of 16, as the bf16 dot-product instruction reads them: packed[(g pairs + p) 16 + l]
 * holds elements 2p and 2p + 1 of row 16 g + l, zeros past row n, for `groups` groups. */
static void pack_rows(const unsigned short *y, int n, int hd, uint32_t *packed, int groups) {
    int pairs = hd / 2;
    __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                       _mm512_set1_epi32(pairs));
    for (int g = 0; g < n / 16; g++) {
        const int *rows = (const int *)(y + (size_t)g * 16 * hd);
        for (int p = 0; p < pairs; p++)
            _mm512_store_si512(packed + ((size_t)g * pairs + p) * 16, _mm512_i32gather_epi32(lanes, rows + p, 4));
    }
    for (int g = n / 16; g < groups; g++)
        for (int p = 0; p < pairs; p++)
            for (int l = 0; l < 16; l++) {
                int row = 16 * g + l;
                uint32_t pair = 0;
                if (row < n) memcpy(&pair, y + (size_t)row * hd + 2 * p, sizeof pair);
                packed[((size_t)g * pairs + p) * 16 + l] = pair;
            }
}

/* out[r][16 j + l] = x_r . y_(16 j + l), fp32, for the tile's rows x_r and TILE_GROUPS groups from packed. */
static inline __attribute__((always_inline)) void dot_tile(const unsigned short *const *x, const uint32_t *packed,
                                                           size_t group, int pairs, float *out, size_t stride) {
    __m512 sums[TILE_ROWS][TILE_GROUPS];
    for (int r = 0; r < TILE_ROWS; r++)
        for (int j = 0; j < TILE_GROUPS; j++) sums[r][j] = _mm512_setzero_ps();
    for (int p = 0; p < pairs; p++) {
        __m512bh y[TILE_GROUPS];
        for (int j = 0; j < TILE_GROUPS; j++) y[j] = (__m512bh)_mm512_load_si512(packed + j * group + p * 16);
        for (int r = 0; r < TILE_ROWS; r++) {
            int pair;
            memcpy(&pair, x[r] + 2 * p, sizeof pair);
            __m512bh xs = (__m512bh)_mm512_set1_epi32(pair);
            for (int j = 0; j < TILE_GROUPS; j++) sums[r][j] = _mm512_dpbf16_ps(sums[r][j], xs, y[j]);
        }
    }
    for (int r = 0; r < TILE_ROWS; r++)
        for (int j = 0; j < TILE_GROUPS; j++) _mm512_store_ps(out + r * stride + j * 16, sums[r][j]);
}

/* Both passes: for each output row r, the dots of x's row offset + r with y's rows 0..offset + r into an fp32
 * buffer, then (p == NULL) its probabilities, or its gradient from p's row. */
static int dot_rows_causal(const unsigned short *x, const unsigned short *y, const unsigned short *p,
                           unsigned short *out, int matrices, int T, int hd, int offset, int rows, float scale,
                           int threads) {
    int cols = offset + rows, groups = (cols + 15) / 16 + TILE_GROUPS, pairs = hd / 2;
    int tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    size_t group = (size_t)pairs * 16, width = (size_t)groups * 16;
    size_t packed_bytes = (groups * group * sizeof(uint32_t) + 63) / 64 * 64;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        char *scratch = scratch_on_every_thread(packed_bytes + TILE_ROWS * width * sizeof(float), &failed);
        if (scratch) {
            uint32_t *packed = (uint32_t *)scratch;
            float *buffer = (float *)(scratch + packed_bytes);
            long packed_matrix = -1;
            #pragma omp for schedule(static)
            for (long item = 0; item < (long)matrices * tiles; item++) {
                long m = item / tiles;
                int r0 = (int)(item % tiles) * TILE_ROWS, last = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;
                if (m != packed_matrix) {
                    pack_rows(y + (size_t)m * T * hd, cols, hd, packed, groups);
                    packed_matrix = m;
                }
                const unsigned short *xr[TILE_ROWS];
                for (int r = 0; r < TILE_ROWS; r++)
                    xr[r] = x + ((size_t)m * T + offset + (r0 + r < last ? r0 + r : last - 1)) * hd;
                int used = (offset + last - 1) / 16 + 1;  /* groups up to the tile's last row's diagonal */
                for (int g = 0; g < used; g += TILE_GROUPS)
                    dot_tile(xr, packed + g * group, group, pairs, buffer + g * 16, width);
                for (int r = r0; r < last; r++) {
                    float *dots = buffer + (r - r0) * width;
                    size_t at = ((size_t)m * rows + r) * cols;
                    int n = offset + r + 1;
                    if (p == NULL) {
                        float top;
                        store_row(out + at, dots, n, exp_row(dots, 1, n, scale, dots, &top));
                        for (int j = n; j < cols; j++) out[at + j] = 0;
                    } else {
                        softmax_grad_row(p + at, dots, 1, out + at, n, cols, scale);
                    }
                }
            }
        }
    }
    return failed ? -1 : 0;
}

/* The backward's other two products over the same blocks, each in one call: the values' gradient P^T dy from the
 * probabilities P, and the keys' dS^T q from the scores' gradient dS. a: CausalAttention's blocks of `block`
 * query rows (block k: the [rows_k, end_k] matrices of all `matrices`, one after another; zero past each row's
 * diagonal), b: [matrices, T, hd]; out[m, j] = the sum over rows i >= j of a[m][i][j] b[m, i], in bf16.
 * torch's products of a transposed block ran at 250 GFLOP/s where its others ran at 400, each block's sum
 * rounded to bf16 before the next was added; here one fp32 sum over all rows, rounded once.
 *
 * A matrix is one thread's. Its sums stay in fp32, [hd][T] (lanes over 16 keys j), in the thread's cache while
 * a's rows stream past in bands of 32: each band's rows interleaved in pairs (pairs_of_rows: rows i and i + 1
 * side by side, 16 keys a vector), each pair's two rows summed by one dot-product instruction against b's
 * elements d of the same two rows (packed once per matrix). Reading a by columns instead waited on memory. */
#define BAND_PAIRS 16

static inline __m512i pairs_of_rows(const unsigned short *first, __mmask32 first_valid, const unsigned short *second,
                                    __mmask32 second_valid, __m512i interleave) {
    __m512i x = _mm512_maskz_loadu_epi16(first_valid, first);
    __m512i y = second ? _mm512_maskz_loadu_epi16(second_valid, second) : _mm512_setzero_si512();
    return _mm512_permutex2var_epi16(x, interleave, y);
}

static int column_products_causal(const unsigned short *a, const unsigned short *b, unsigned short *out,
                                  int matrices, int T, int hd, int block, int threads) {
    int blocks = (T + block - 1) / block, widths = (hd + 15) / 16, row_pairs = (T + 1) / 2, tiles = (T + 15) / 16;
    size_t *offsets = malloc(sizeof(size_t) * (size_t)blocks);
    if (!offsets) return -1;
    size_t at = 0;
    for (int k = 0; k < blocks; k++) {
        int start = k * block, end = start + block < T ? start + block : T;
        offsets[k] = at;
        at += (size_t)matrices * (end - start) * end;
    }
    /* sums' rows one vector longer than the keys: at 4 KB apart (T = 1024) the 16 rows a tile reads would share
     * one set of the L1 cache */
    size_t width = (size_t)(tiles + 1) * 16 + 16;  /* an even number of key tiles */
    size_t packed_bytes = (size_t)row_pairs * widths * 64, sums_bytes = (size_t)widths * 16 * width * sizeof(float);
    size_t band_bytes = (size_t)(tiles + 1) * BAND_PAIRS * 64;
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        char *scratch = scratch_on_every_thread(packed_bytes + sums_bytes + band_bytes, &failed);
        if (scratch) {
            uint32_t *packed = (uint32_t *)scratch;        /* [pair][w][16]: b's elements 16 w + l, rows 2 pair, +1 */
            float *sums = (float *)(scratch + packed_bytes);  /* [d][key] */
            __m512i *band = (__m512i *)(scratch + packed_bytes + sums_bytes);  /* [key tile][pair in the band] */
            __m512i interleave = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                                  39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
            __m512i upper = _mm512_add_epi16(interleave, _mm512_set1_epi16(16));  /* the same, keys 16..31 */
            #pragma omp for schedule(static)
            for (long m = 0; m < matrices; m++) {
                const unsigned short *bm = b + (size_t)m * T * hd;
                for (int pair = 0; pair < row_pairs; pair++)
                    for (int w = 0; w < widths; w++) {
                        int d = 16 * w;
                        __mmask32 valid = hd - d >= 16 ? 0xFFFF : (1u << (hd - d)) - 1;
                        const unsigned short *row = bm + (size_t)2 * pair * hd + d;
                        _mm512_store_si512(packed + ((size_t)pair * widths + w) * 16,
                                           pairs_of_rows(row, valid, 2 * pair + 1 < T ? row + hd : NULL, valid,
                                                         interleave));
                    }
                memset(sums, 0, sums_bytes);
                for (int first = 0; first < row_pairs; first += BAND_PAIRS) {
                    int pairs = row_pairs - first < BAND_PAIRS ? row_pairs - first : BAND_PAIRS;
                    int last_row = 2 * (first + pairs) - 1 < T - 1 ? 2 * (first + pairs) - 1 : T - 1;
                    int used = (last_row / 32 + 1) * 2;  /* key tiles up to the band's last row's diagonal, even */
                    for (int p = 0; p < pairs; p++) {
                        const unsigned short *rows[2] = {NULL, NULL};
                        int ends[2] = {0, 0};
                        for (int h = 0; h < 2 && 2 * (first + p) + h < T; h++) {
                            int i = 2 * (first + p) + h, k = i / block, start = k * block;
                            ends[h] = start + block < T ? start + block : T;
                            rows[h] = a + offsets[k] + ((size_t)m * (ends[h] - start) + (i - start)) * ends[h];
                        }
                        for (int t = 0; t < used; t += 2) {  /* 32 keys, a cache line of each row, a turn */
                            int j0 = 16 * t;
                            __m512i x[2];
                            for (int h = 0; h < 2; h++) {  /* none past the row's end */
                                int n = ends[h] - j0 < 0 ? 0 : ends[h] - j0 > 32 ? 32 : ends[h] - j0;
                                __mmask32 valid = n == 32 ? 0xFFFFFFFFu : (1u << n) - 1;
                                x[h] = n ? _mm512_maskz_loadu_epi16(valid, rows[h] + j0) : _mm512_setzero_si512();
                            }
                            band[(size_t)t * BAND_PAIRS + p] = _mm512_permutex2var_epi16(x[0], interleave, x[1]);
                            band[(size_t)(t + 1) * BAND_PAIRS + p] = _mm512_permutex2var_epi16(x[0], upper, x[1]);
                        }
                    }
                    for (int t = 0; t < used; t++)
                        for (int w = 0; w < widths; w++) {
                            float *s = sums + (size_t)16 * w * width + 16 * t;
                            __m512 acc[16];
                            for (int d = 0; d < 16; d++) acc[d] = _mm512_load_ps(s + d * width);
                            for (int p = 0; p < pairs; p++) {
                                __m512bh x = (__m512bh)_mm512_load_si512(band + (size_t)t * BAND_PAIRS + p);
                                const uint32_t *y = packed + ((size_t)(first + p) * widths + w) * 16;
                                for (int d = 0; d < 16; d++)
                                    acc[d] = _mm512_dpbf16_ps(acc[d], (__m512bh)_mm512_set1_epi32((int)y[d]), x);
                            }
                            for (int d = 0; d < 16; d++) _mm512_store_ps(s + d * width, acc[d]);
                        }
                }
                for (int t = 0; t < tiles; t++) {  /* [d][key] in fp32 to out's [key][d] in bf16 */
                    int keys = T - 16 * t < 16 ? T - 16 * t : 16;
                    for (int w = 0; w < widths; w++) {
                        unsigned short lanes[16][16];
                        for (int d = 0; d < 16; d++) {
                            const float *s = sums + (size_t)(16 * w + d) * width + 16 * t;
                            *(v8h *)lanes[d] = round_bf16(AT(s, 0));
                            *(v8h *)(lanes[d] + 8) = round_bf16(AT(s, 8));
                        }
                        int elements = hd - 16 * w < 16 ? hd - 16 * w : 16;
                        for (int l = 0; l < keys; l++) {
                            unsigned short *o = out + ((size_t)m * T + 16 * t + l) * hd + 16 * w;
                            for (int d = 0; d < elements; d++) o[d] = lanes[d][l];
                        }
                    }
                }
            }
        }
    }
    free(offsets);
    return failed ? -1 : 0;
}
#endif

/* probs = causal softmax(scale q k^T) as causal_softmax_bf16 computes it from the scores, the scores in fp32.
 * Returns 0; -1 (nothing written) where a thread's scratch cannot be allocated; -3 on other CPUs. */
TRAINING_PASS int causal_attention_probs_bf16(const unsigned short *q, const unsigned short *k,
                                              unsigned short *probs, int matrices, int T, int hd, int offset,
                                              int rows, float scale, int threads) {
#ifdef TILE_ROWS
    return dot_rows_causal(q, k, NULL, probs, matrices, T, hd, offset, rows, scale, threads);
#else
    (void)q, (void)k, (void)probs, (void)matrices, (void)T, (void)hd, (void)offset, (void)rows, (void)scale;
    (void)threads;
    return -3;
#endif
}

/* grad_scores = the scores' gradient, as causal_softmax_backward_bf16 computes it from the probabilities' dy v^T,
 * that product in fp32. Returns as causal_attention_probs_bf16. */
TRAINING_PASS int causal_attention_scores_grad_bf16(const unsigned short *dy, const unsigned short *v,
                                                    const unsigned short *probs, unsigned short *grad_scores,
                                                    int matrices, int T, int hd, int offset, int rows, float scale,
                                                    int threads) {
#ifdef TILE_ROWS
    return dot_rows_causal(dy, v, probs, grad_scores, matrices, T, hd, offset, rows, scale, threads);
#else
    (void)dy, (void)v, (void)probs, (void)grad_scores, (void)matrices, (void)T, (void)hd, (void)offset, (void)rows;
    (void)scale, (void)threads;
    return -3;
#endif
}

/* out = the column products above (the values' gradient from the probabilities, the keys' from the scores'),
 * a in CausalAttention's blocks of `block` rows. Returns 0; -1 (nothing written) where scratch cannot be
 * allocated; -3 on CPUs the tiles are not built for. */
TRAINING_PASS int causal_attention_column_products_bf16(const unsigned short *a, const unsigned short *b,
                                                        unsigned short *out, int matrices, int T, int hd, int block,
                                                        int threads) {
#ifdef TILE_ROWS
    return column_products_causal(a, b, out, matrices, T, hd, block, threads);
#else
    (void)a, (void)b, (void)out, (void)matrices, (void)T, (void)hd, (void)block, (void)threads;
    return -3;
#endif
}

/* GPT-2's tanh GELU of training's activations (training_ops.py's Gelu), and its backward: in fp32, from bf16
 * values widened (and rounded back to bf16 as torch rounds) or from fp32 ones, one pass each. torch's own pair
 * took 7% of the mini-13m bf16 step and ran at a quarter of these passes' speed in fp32 (bench/README.md); fp32
 * values differ from torch's in the last bits (another e^x). Four vectors a turn: each one's e^x and division
 * make a long chain of dependent steps, which one vector a turn left waiting (10% slower both ways). */
/* d/du of u s with s = 1 / (1 + e), e = e^-2z: s + 2 u s (1 - s) dz/du, where 1 - s = e s (no cancellation). */
static inline v8 gelu_grad8(v8 u, v8 grad) {
    v8 u2 = u * u;
    v8 z = splat(GELU_B) * (u + splat(GELU_K) * u2 * u);
    v8 e = exp8(-(z + z));
    v8 s = splat(1.0f) / (splat(1.0f) + e);
    v8 dz = splat(GELU_B) * (splat(1.0f) + splat(3.0f * GELU_K) * u2);
    return grad * (s + splat(2.0f) * u * s * (e * s) * dz);
}

static inline v8 load8(const void *p, long i, int low) {
    return low ? widen_bf16((const unsigned short *)p + i) : AT((const float *)p, i);
}

static inline float load1(const void *p, long i, int low) {
    return low ? bf16_value(((const unsigned short *)p)[i]) : ((const float *)p)[i];
}

static inline void store8(void *p, long i, v8 v, int low) {
    if (low) *(v8h *)((unsigned short *)p + i) = round_bf16(v);
    else *(v8 *)((float *)p + i) = v;
}

/* out = gelu(u), or given grad its gradient there; low: bf16 tensors, else fp32. */
TRAINING_PASS static void gelu_pass(const void *u, const void *grad, void *out, long n, int low, int threads) {
    long whole = n / 32 * 32;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < whole; i += 32) {
        v8 r[4];
        for (int q = 0; q < 4; q++) {
            v8 x = load8(u, i + 8 * q, low);
            r[q] = grad ? gelu_grad8(x, load8(grad, i + 8 * q, low)) : gelu8(x);
        }
        for (int q = 0; q < 4; q++) store8(out, i + 8 * q, r[q], low);
    }
    for (long i = whole; i < n; i++) {  /* the tail a value at a time, in lane 0 */
        v8 x = splat(load1(u, i, low));
        v8 r = grad ? gelu_grad8(x, splat(load1(grad, i, low))) : gelu8(x);
        if (low) ((unsigned short *)out)[i] = round_bf16(r)[0];
        else ((float *)out)[i] = r[0];
    }
}

TRAINING_PASS void gelu_bf16(const unsigned short *u, unsigned short *out, long n, int threads) {
    gelu_pass(u, NULL, out, n, 1, threads);
}

TRAINING_PASS void gelu_backward_bf16(const unsigned short *u, const unsigned short *grad, unsigned short *out,
                                      long n, int threads) {
    gelu_pass(u, grad, out, n, 1, threads);
}

TRAINING_PASS void gelu_f32(const float *u, float *out, long n, int threads) {
    gelu_pass(u, NULL, out, n, 0, threads);
}

TRAINING_PASS void gelu_backward_f32(const float *u, const float *grad, float *out, long n, int threads) {
    gelu_pass(u, grad, out, n, 0, threads);
}

/* Training's LayerNorm of the residual stream under bf16 autocast (training_ops.py's ResidualNorm): rows of C
 * fp32 values (the stream x, plus a branch's bf16 output where given, the sum written to `sum`) normalised as
 * torch computes it in fp32 (y = (x rstd - mean rstd) w + b), and rounded to bf16 for the linear layer that
 * reads them: one pass where torch's add, cast, LayerNorm and the linear's cast made four. mean and rstd per
 * row are kept for the backward pass. */
TRAINING_PASS void layer_norm_bf16(const float *x, const unsigned short *branch, const float *w, const float *b,
                                   float *sum, unsigned short *out, float *mean_out, float *rstd_out, long rows,
                                   int C, float eps, int threads) {
    int whole = C / 8 * 8;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * C;
        if (branch) {
            const unsigned short *br = branch + (size_t)r * C;
            float *sr = sum + (size_t)r * C;
            for (int j = 0; j < whole; j += 8) *(v8 *)(sr + j) = AT(xr, j) + widen_bf16(br + j);
            for (int j = whole; j < C; j++) sr[j] = xr[j] + bf16_value(br[j]);
            xr = sr;
        }
        v8 sums = {0};
        for (int j = 0; j < whole; j += 8) sums += AT(xr, j);
        float total = lanes_sum(sums);
        for (int j = whole; j < C; j++) total += xr[j];
        float mean = total / C;
        v8 squares = {0};
        for (int j = 0; j < whole; j += 8) {
            v8 d = AT(xr, j) - splat(mean);
            squares += d * d;
        }
        float var = lanes_sum(squares);
        for (int j = whole; j < C; j++) var += (xr[j] - mean) * (xr[j] - mean);
        float rstd = 1.0f / sqrtf(var / C + eps), shift = -mean * rstd;
        unsigned short *o = out + (size_t)r * C;
        for (int j = 0; j < whole; j += 8)
            *(v8h *)(o + j) = round_bf16((AT(xr, j) * splat(rstd) + splat(shift)) * AT(w, j) + AT(b, j));
        for (int j = whole; j < C; j++) o[j] = round_bf16(splat((xr[j] * rstd + shift) * w[j] + b[j]))[0];
        mean_out[r] = mean;
        rstd_out[r] = rstd;
    }
}

/* Its backward: from the gradient of the bf16 output (grad) and, where given, the fp32 gradient that reaches
 * the stream past the norm (through), the stream's gradient dx = rstd (g w - mean(g w) - xhat mean(g w xhat))
 * + through, also rounded to bf16 into dx_low where given (the branch's, as autocast's add casts it); the
 * weight's and bias's, sums over the rows of g xhat and g, per thread and then in thread order. Returns 0, or
 * -1 (nothing written) where the per-thread sums cannot be allocated. */
TRAINING_PASS int layer_norm_backward_bf16(const float *x, const float *mean, const float *rstd, const float *w,
                                           const unsigned short *grad, const float *through, float *dx,
                                           unsigned short *dx_low, float *dw, float *db, long rows, int C,
                                           int threads) {
    size_t stride = ((size_t)C + 15) / 16 * 16;
    float *partial = calloc(2 * stride * (size_t)threads, sizeof(float));
    if (!partial) return -1;
    int whole = C / 8 * 8;
    #pragma omp parallel num_threads(threads)
    {
        float *pw = partial + 2 * stride * (size_t)omp_get_thread_num(), *pb = pw + stride;
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * C;
            const unsigned short *gr = grad + (size_t)r * C;
            float m = mean[r], s = rstd[r];
            v8 a8 = {0}, c8 = {0};
            for (int j = 0; j < whole; j += 8) {
                v8 g = widen_bf16(gr + j), xh = (AT(xr, j) - splat(m)) * splat(s), gw = g * AT(w, j);
                a8 += gw;
                c8 += gw * xh;
                *(v8 *)(pw + j) += g * xh;
                *(v8 *)(pb + j) += g;
            }
            float a = lanes_sum(a8), c = lanes_sum(c8);
            for (int j = whole; j < C; j++) {
                float g = bf16_value(gr[j]), xh = (xr[j] - m) * s, gw = g * w[j];
                a += gw;
                c += gw * xh;
                pw[j] += g * xh;
                pb[j] += g;
            }
            a /= C;
            c /= C;
            float *d = dx + (size_t)r * C;
            const float *t = through ? through + (size_t)r * C : NULL;
            for (int j = 0; j < whole; j += 8) {
                v8 g = widen_bf16(gr + j), xh = (AT(xr, j) - splat(m)) * splat(s);
                v8 v = splat(s) * (g * AT(w, j) - splat(a) - xh * splat(c));
                if (t) v += AT(t, j);
                *(v8 *)(d + j) = v;
                if (dx_low) *(v8h *)(dx_low + (size_t)r * C + j) = round_bf16(v);
            }
            for (int j = whole; j < C; j++) {
                float g = bf16_value(gr[j]), xh = (xr[j] - m) * s;
                float v = s * (g * w[j] - a - xh * c) + (t ? t[j] : 0.0f);
                d[j] = v;
                if (dx_low) dx_low[(size_t)r * C + j] = round_bf16(splat(v))[0];
            }
        }
    }
    for (int j = 0; j < C; j++) {
        float sw = 0, sb = 0;
        for (int k = 0; k < threads; k++) {
            sw += partial[2 * stride * (size_t)k + j];
            sb += partial[2 * stride * (size_t)k + stride + j];
        }
        dw[j] = sw;
        db[j] = sb;
    }
    free(partial);
    return 0;
}

/* Training's optimizer step (modelcore/clipped_adamw.py): the gradients' global norm for clipping, then AdamW
 * with the clipping factor applied as each gradient is read. torch clips with a norm per tensor and then a
 * pass that scales every gradient in place, before its fused AdamW reads them once more (at GPT-2 124M on a
 * 2-core Xeon: 60 ms of clipping, then AdamW; bench/README.md); these two passes read each gradient once each.
 * The tensors go in chunks of STEP_CHUNK values, each chunk one thread's, so that the sums (one per chunk,
 * added in order) do not depend on the thread count. */
#define STEP_CHUNK 65536L

static long step_chunks(const long *sizes, int n, long *first) {
    long chunks = 0;
    for (int i = 0; i < n; i++) {
        first[i] = chunks;
        chunks += (sizes[i] + STEP_CHUNK - 1) / STEP_CHUNK;
    }
    return chunks;
}

/* Chunk c's tensor (the last whose first chunk is at most c: empty tensors own none) and its first value there. */
static int step_chunk_at(const long *first, int n, long c, long *offset) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (first[mid] <= c) lo = mid; else hi = mid - 1;
    }
    *offset = (c - first[lo]) * STEP_CHUNK;
    return lo;
}

/* The sum of the squares of n fp32 tensors, in double; -1 where there is no memory for the chunks' sums. */
double sum_of_squares(float *const *x, const long *sizes, int n, int threads) {
    long *first = malloc(sizeof(long) * (size_t)(n > 0 ? n : 1));
    if (!first) return -1;
    long chunks = step_chunks(sizes, n, first);
    double *partial = malloc(sizeof(double) * (size_t)(chunks > 0 ? chunks : 1));
    if (!partial) {
        free(first);
        return -1;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long c = 0; c < chunks; c++) {
        long offset;
        int i = step_chunk_at(first, n, c, &offset);
        long len = sizes[i] - offset < STEP_CHUNK ? sizes[i] - offset : STEP_CHUNK;
        const float *p = x[i] + offset;
        double acc[8] = {0};
        long j = 0;
        for (; j + 8 <= len; j += 8)
            for (int l = 0; l < 8; l++) acc[l] += (double)p[j + l] * p[j + l];
        for (; j < len; j++) acc[0] += (double)p[j] * p[j];
        partial[c] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    double total = 0;
    for (long c = 0; c < chunks; c++) total += partial[c];
    free(partial);
    free(first);
    return total;
}

/* One AdamW step (decoupled weight decay) of n fp32 tensors of one parameter group at one step count, each
 * gradient times grad_scale as it is read (the gradient's memory is left as it was), in the order of torch's
 * fused CPU kernel: p *= shrink; m += keep1 (g - m) (one fused multiply-add); v = beta2 v + (keep2 g) g;
 * p += -step_size m / (sqrt(v) / bc2_sqrt + eps). The caller computes the constants in double as torch does
 * (shrink = 1 - lr decay, keep = 1 - beta, step_size = lr / (1 - beta1^step), bc2_sqrt = sqrt(1 - beta2^step)).
 * Returns -1 (nothing written) where there is no memory for the chunk table. */
int adamw_step(float *const *params, float *const *grads, float *const *exp_avgs, float *const *exp_avg_sqs,
               const long *sizes, int n, float shrink, float keep1, float beta2, float keep2, float eps,
               float step_size, float bc2_sqrt, float grad_scale, int threads) {
    long *first = malloc(sizeof(long) * (size_t)(n > 0 ? n : 1));
    if (!first) return -1;
    long chunks = step_chunks(sizes, n, first);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long c = 0; c < chunks; c++) {
        long offset;
        int i = step_chunk_at(first, n, c, &offset);
        long len = sizes[i] - offset < STEP_CHUNK ? sizes[i] - offset : STEP_CHUNK;
        float *p = params[i] + offset, *m = exp_avgs[i] + offset, *v = exp_avg_sqs[i] + offset;
        const float *g = grads[i] + offset;
        for (long j = 0; j < len; j++) {
            float gj = g[j] * grad_scale;
            float mj = fmaf(keep1, gj - m[j], m[j]);  /* torch's lerp, as its vector code computes it */
            float vj = fmaf(keep2 * gj, gj, v[j] * beta2);
            m[j] = mj;
            v[j] = vj;
            p[j] = p[j] * shrink + -step_size * mj / (sqrtf(vj) / bc2_sqrt + eps);
        }
    }
    free(first);
    return 0;
}
