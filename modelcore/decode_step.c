/* One GPT-2 decoding step at batch 1, in C: the same arithmetic as GPT.decode in model.py.
 *
 * Why it exists: at batch 1 a step reads every weight once and does little else, yet in torch it costs
 * ~100 operator calls whose overhead, and matrix-vector kernels well below a bare read of memory, take
 * most of the step. Here the step is one call and one OpenMP parallel region; each phase splits its rows
 * (or heads) between the threads, with a barrier between phases.
 *
 * Every output value is summed by one thread in a fixed order, so the result does not depend on the
 * number of threads. It rounds differently from torch's kernels (last bits of a logit).
 *
 * With int8 weights (modelcore/quantize.py) the step reads each matrix as int8 values and row scales, a
 * quarter of the bytes, and computes as before in fp32: the same logits as the fp32 step on the
 * dequantized weights, but for rounding.
 *
 * modelcore/fused.py compiles this file for the machine it runs on and checks every shape, dtype and
 * bound before calling it; the C side trusts the pointers it is given.
 */
#include <math.h>
#include <stddef.h>

/* Eight floats: one AVX2 register, half an AVX-512 one. (Sixteen-float vectors read the same arithmetic
 * but gcc compiles them for AVX2 through the stack, at half a bare read's speed: bench/README.md.) */
typedef float v8 __attribute__((vector_size(32), aligned(4)));

enum { LN_1_W, LN_1_B, ATTN_W, ATTN_B, ATTN_PROJ_W, ATTN_PROJ_B,
       LN_2_W, LN_2_B, FC_W, FC_B, MLP_PROJ_W, MLP_PROJ_B, PER_LAYER };

typedef struct {
    int n_layer, n_embd, n_head, n_ctx, n_vocab;
    const float *wte, *wpe, *ln_f_w, *ln_f_b;  /* wte [n_vocab, C] is also the output projection */
    const float *const *layers;               /* PER_LAYER pointers per layer, in the enum's order */
    float *const *kv;                         /* per layer [2, n_head, n_ctx, head_dim] */
    /* Int8 weights (modelcore/quantize.py), or all NULL for fp32: wte and, per layer in the enum's order,
     * the four matrices' values and row scales (NULL in the vectors' slots). They replace the fp32 matrices,
     * which are then not read. */
    const signed char *wte_q;
    const float *wte_scales;
    const signed char *const *q_layers;
    const float *const *q_scales;
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

/* w . x over n floats, one row at a time: measured at a bare read's speed, where four rows at a time
 * sharing each load of x ran at half of it (bench/README.md). Thirty-two partial sums, lane i of the
 * 32-float block in accumulator i / 8, folded as (a0 + b0, a1 + b1) in lane order: the same arithmetic on
 * every target, whatever its vector width. */
static float dot(const float *w, const float *x, int n) {
    v8 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        MADD(a0, AT(w, i), AT(x, i));
        MADD(a1, AT(w, i + 8), AT(x, i + 8));
        MADD(b0, AT(w, i + 16), AT(x, i + 16));
        MADD(b1, AT(w, i + 24), AT(x, i + 24));
    }
    for (; i + 16 <= n; i += 16) {
        MADD(a0, AT(w, i), AT(x, i));
        MADD(a1, AT(w, i + 8), AT(x, i + 8));
    }
    a0 += b0;
    a1 += b1;
    float s = 0;
    for (int k = 0; k < 8; k++) s += a0[k];
    for (int k = 0; k < 8; k++) s += a1[k];
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

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
#define AT_Q(p, i) widen8((p) + (i))

/* w . x for int8 w, in the same order of additions as dot; the row's scale is applied by the caller. */
static float dot_q8(const signed char *w, const float *x, int n) {
    v8 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        MADD(a0, AT_Q(w, i), AT(x, i));
        MADD(a1, AT_Q(w, i + 8), AT(x, i + 8));
        MADD(b0, AT_Q(w, i + 16), AT(x, i + 16));
        MADD(b1, AT_Q(w, i + 24), AT(x, i + 24));
    }
    for (; i + 16 <= n; i += 16) {
        MADD(a0, AT_Q(w, i), AT(x, i));
        MADD(a1, AT_Q(w, i + 8), AT(x, i + 8));
    }
    a0 += b0;
    a1 += b1;
    float s = 0;
    for (int k = 0; k < 8; k++) s += a0[k];
    for (int k = 0; k < 8; k++) s += a1[k];
    for (; i < n; i++) s += (float)w[i] * x[i];
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
    if (W.q) return dot_q8(W.q + (size_t)row * n, x, n) * W.scales[row];
    return dot(W.f + (size_t)row * n, x, n);
}

enum { SET, ADD, GELU };  /* what a product does with its output: y = Wx + b, y += Wx + b, y = gelu(Wx + b) */

static float gelu(float u) {  /* GPT-2's tanh approximation */
    return 0.5f * u * (1.0f + tanhf(0.7978845608028654f * (u + 0.044715f * u * u * u)));
}

static void store(float *y, int row, float value, int mode) {
    if (mode == ADD) y[row] += value;
    else if (mode == GELU) y[row] = gelu(value);
    else y[row] = value;
}

/* y (mode) W x + b for W [rows, n]; called by every thread of the region, which share the rows. */
static void linear(Matrix W, const float *b, const float *x, float *y, int rows, int n, int mode) {
    #pragma omp for schedule(static)
    for (int row = 0; row < rows; row++)
        store(y, row, row_dot(W, row, x, n) + (b ? b[row] : 0.0f), mode);
}

static void layer_norm(const float *x, const float *w, const float *b, float *y, int n) {
    float mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf(var / n + 1e-5f);  /* model.py's LN_EPS */
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

/* Head h of causal attention for the token at pos: its key and value join the cache, its query attends
 * to positions 0..pos. qkv [3C] holds this token's q, k, v; y [C] receives the heads' outputs. */
static void attend(const Model *m, float *kv, const float *qkv, float *y, float *scores, int h, int pos) {
    int C = m->n_embd, hd = C / m->n_head;
    float *keys = kv + (size_t)h * m->n_ctx * hd, *values = keys + (size_t)m->n_head * m->n_ctx * hd;
    const float *q = qkv + h * hd;
    for (int i = 0; i < hd; i++) {
        keys[(size_t)pos * hd + i] = qkv[C + h * hd + i];
        values[(size_t)pos * hd + i] = qkv[2 * C + h * hd + i];
    }
    float scale = 1.0f / sqrtf((float)hd), top = -INFINITY, total = 0;
    for (int t = 0; t <= pos; t++) {
        scores[t] = dot(q, keys + (size_t)t * hd, hd) * scale;
        if (scores[t] > top) top = scores[t];
    }
    for (int t = 0; t <= pos; t++) total += scores[t] = expf(scores[t] - top);
    float *out = y + h * hd;
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int t = 0; t <= pos; t++) {
        float p = scores[t] / total;
        for (int i = 0; i < hd; i++) out[i] += p * values[(size_t)t * hd + i];
    }
}

/* Feed token at pos; write next-token logits [n_vocab]. work holds 10C + n_ctx * n_head floats.
 * Returns 0, or -1 for a token or position out of range (nothing is written then). */
int decode_step(const Model *m, int token, int pos, int threads, float *work, float *logits) {
    if (token < 0 || token >= m->n_vocab || pos < 0 || pos >= m->n_ctx) return -1;
    int C = m->n_embd;
    float *x = work, *xn = x + C, *qkv = xn + C, *y = qkv + 3 * C, *hidden = y + C;  /* hidden: 4C */
    float *scores = hidden + 4 * C;  /* n_ctx per head */
    for (int i = 0; i < C; i++)
        x[i] = (m->wte_q ? (float)m->wte_q[(size_t)token * C + i] * m->wte_scales[token]
                         : m->wte[(size_t)token * C + i]) + m->wpe[(size_t)pos * C + i];
    #pragma omp parallel num_threads(threads)
    {
        for (int l = 0; l < m->n_layer; l++) {
            const float *const *w = m->layers + (size_t)l * PER_LAYER;
            #pragma omp single
            layer_norm(x, w[LN_1_W], w[LN_1_B], xn, C);
            linear(layer_matrix(m, l, ATTN_W), w[ATTN_B], xn, qkv, 3 * C, C, SET);
            #pragma omp for schedule(static)
            for (int h = 0; h < m->n_head; h++) attend(m, m->kv[l], qkv, y, scores + (size_t)h * m->n_ctx, h, pos);
            linear(layer_matrix(m, l, ATTN_PROJ_W), w[ATTN_PROJ_B], y, x, C, C, ADD);
            #pragma omp single
            layer_norm(x, w[LN_2_W], w[LN_2_B], xn, C);
            linear(layer_matrix(m, l, FC_W), w[FC_B], xn, hidden, 4 * C, C, GELU);
            linear(layer_matrix(m, l, MLP_PROJ_W), w[MLP_PROJ_B], hidden, x, C, 4 * C, ADD);
        }
        #pragma omp single
        layer_norm(x, m->ln_f_w, m->ln_f_b, xn, C);
        Matrix out = {m->wte, m->wte_q, m->wte_scales};
        linear(out, NULL, xn, logits, m->n_vocab, C, SET);
    }
    return 0;
}
