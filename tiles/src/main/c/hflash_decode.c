// hflash native decode kernel: exact online-softmax attention over a list of tiles of one KV head, for the
// g query heads that share it. Compiled once per ISA (build.sh): -DHF_AVX512 (AVX-512F/BW/VL, 16 float lanes)
// or without it (AVX2 + FMA + F16C, 8 float lanes); the two objects link into one library, libhflash.so, whose
// exported functions are hflash_decode_tiles_avx512 and hflash_decode_tiles_avx2 (hflash_dispatch.c says which
// ones this CPU can run). The Java side (hflash.tiles.NativeTileKernels) validates every argument against live
// MemorySegments before the call; this code trusts its inputs (asserts only, compiled in by the ASan build).
//
// Computation, per listed tile t (keys [t*T, min(t*T + T, keys))), the same as the Java engine's exact loop:
//   s_h,j  = q_h . k_j                       (q already multiplied by the softmax scale, rotated if the cache is)
//   m'_h   = max(m_h, max_j s_h,j);  alpha = exp(m_h - m'_h) when l_h != 0 (the accumulator holds mass), else 1
//   l_h    = l_h * alpha + sum_j exp(s_h,j - m'_h)
//   acc_h  = acc_h * alpha + tileAcc_h,   tileAcc_h = sum_j exp(s_h,j - m'_h) v_j   (summed per tile first: the
//            running sum then adds one partial per tile, which keeps its float rounding ~sqrt(T) smaller)
// State (m, l, acc) is the engine's, in the natural-log domain, read on entry and written on exit; the return
// value is how many (tile, head) steps rescaled a non-empty accumulator (the engine's "rescales" counter).
//
// Memory layout (hflash.memory.TileLayout, QuantBlocks; restated in hflash.tiles.TileFormat): a tile is
// T * rowBytes contiguous bytes in K and in V, at a byte offset the caller lists per tile (tiles of a paged
// sequence are not adjacent).
//   K, float dtypes: 32-key blocks, column-major: channel c of the block's 32 keys is one contiguous run of 32
//     elements, so 32 scores build up in lanes with no horizontal sum. f16/bf16 runs are paired: 32-bit word w
//     holds element w (low half) and w + 16 (high half).
//   K, q8_0/q4_0: 32-key groups; per block column (B channels): the 32 keys' f16 scales (64 bytes), then code
//     byte i of the 32 keys as one 32-byte run (q4_0: low nibble element i, high nibble element i + ceil(B/2)).
//   V, float dtypes: 32-channel blocks, row-major: row j of block cb is 32 contiguous elements (paired for
//     f16/bf16); a last block narrower than 32 channels keeps natural order.
//   V, q8_0/q4_0: ggml blocks, block b of key j at (b*T + j) * blockBytes: f16 scale, then the codes.
//
// Register budget (AVX-512, 32 zmm): scores keep 2 zmm (32 keys) per head for up to HMAX = 8 heads (16
// accumulators) plus 2 for the converted K run and 1 broadcast q; P.V keeps 2 zmm (32 channels) per head, the
// same 16 + 3. AVX2 (16 ymm): 4 ymm per head, HMAX = 2 heads (8 accumulators) + 4 + 1; larger groups run in
// chunks of HMAX heads, re-reading the block from L1. Every FMA chain is independent of the others, so 8 or
// more chains hide the 4-cycle FMA latency; fewer heads (g = 1) are latency-bound but still faster than memory.
//
// Software prefetch (the thing the JVM cannot emit): K and V are each swept front to back, one stream per
// tile; for every 64-byte line consumed, the line pfK (pfV) bytes further along the stream is prefetched,
// continuing into the NEXT LISTED tile when the distance runs past the end of this one (so a tile list of
// non-adjacent tiles, as certified/budgeted open them, prefetches the right bytes). 0 turns prefetch off.
//
// Bits: deterministic (fixed loop order, no threads); they differ from the Java kernels' by float32 rounding
// (different FMA order and a Cody-Waite/polynomial exp instead of Math.exp, <= 2 ulp per weight).
#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef HF_AVX512
#define VW 16
#define HMAX 8
#define HF_NAME(x) x##_avx512
#else
#define VW 8
#define HMAX 2
#define HF_NAME(x) x##_avx2
#endif
#define NV (32 / VW) /* vectors per run of 32 floats */
#define AI static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

enum { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_Q8_0 = 3, DT_Q4_0 = 4 };

/* ---------------- per-ISA primitives (the kernels below are written once over vf) ---------------- */

AI vf vzero(void) { return (vf){0}; }
AI vf vset1(float x) {
#ifdef HF_AVX512
    return _mm512_set1_ps(x);
#else
    return _mm256_set1_ps(x);
#endif
}
AI vf vload(const void *p) { vf v; memcpy(&v, p, sizeof v); return v; }
AI void vstore(void *p, vf v) { memcpy(p, &v, sizeof v); }
AI vi viload(const void *p) { vi v; memcpy(&v, p, sizeof v); return v; }
AI vf vfma(vf a, vf b, vf c) {
#ifdef HF_AVX512
    return _mm512_fmadd_ps(a, b, c);
#else
    return _mm256_fmadd_ps(a, b, c);
#endif
}
AI vf vmax(vf a, vf b) {
#ifdef HF_AVX512
    return _mm512_max_ps(a, b);
#else
    return _mm256_max_ps(a, b);
#endif
}
/* VW f16 values at p -> floats (F16C / AVX-512F vcvtph2ps) */
AI vf vcvt_f16(const void *p) {
#ifdef HF_AVX512
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#else
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
#endif
}
/* VW int8 codes at p -> floats */
AI vf vcvt_i8(const void *p) {
#ifdef HF_AVX512
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
#else
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
#endif
}
/* VW bytes at p -> their zero-extended values as int lanes */
AI vi vu8(const void *p) {
#ifdef HF_AVX512
    return (vi)_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
#else
    return (vi)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
#endif
}
AI vf vcvt_i32(vi x) { return __builtin_convertvector(x, vf); }
AI float hmax(vf x) {
    float r = x[0];
    for (int i = 1; i < VW; i++) r = r > x[i] ? r : x[i];
    return r;
}
AI float hsum(vf x) {
    float r = 0.0f;
    for (int i = 0; i < VW; i++) r += x[i];
    return r;
}
AI void pf(const void *p) { __builtin_prefetch(p, 0, 3); }

/* exp(x) for x <= 0 (x = -inf allowed): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor
   polynomial of e^r (truncation < 2e-9 relative), scaled by 2^n in the exponent bits. x < -87.3 gives 0
   (the true value is below the smallest normal float: invisible next to a sum l >= 1). */
AI vf vexp(vf x) {
    const vf lo = vset1(-87.3f);
    vi keep = x >= lo;
    x = vmax(x, lo);
    vf t = x * vset1(1.44269504088896341f);
    vf n = (t + vset1(12582912.0f)) - vset1(12582912.0f); /* round to nearest (|t| < 2^22) */
    vf r = vfma(n, vset1(-0.693359375f), x);               /* ln2 = 0.693359375 - 2.12194440e-4 */
    r = vfma(n, vset1(2.12194440e-4f), r);
    vf p = vset1(1.0f / 5040);
    p = vfma(p, r, vset1(1.0f / 720));
    p = vfma(p, r, vset1(1.0f / 120));
    p = vfma(p, r, vset1(1.0f / 24));
    p = vfma(p, r, vset1(1.0f / 6));
    p = vfma(p, r, vset1(0.5f));
    p = vfma(p, r, vset1(1.0f));
    p = vfma(p, r, vset1(1.0f));
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return (vf)((vi)(p * (vf)e) & keep);
}

/* ---------------- prefetch along a stream that continues in the next listed tile ---------------- */

typedef struct {
    const char *tile; /* this tile's K (or V) */
    const char *next; /* the next listed tile's, NULL if none */
    size_t bytes;     /* T * rowBytes */
    size_t dist;      /* prefetch distance in bytes, 0 = off */
} stream;

AI void pf_at(const stream *st, size_t off) {
    if (st->dist == 0) return;
    size_t a = off + st->dist;
    if (a < st->bytes) pf(st->tile + a);
    else if (st->next && a - st->bytes < st->bytes) pf(st->next + (a - st->bytes));
}

/* ---------------- scores ---------------- */

/* The NV vectors of a K run of 32 elements (dtype es-byte), in storage-lane order. */
AI void krun(const char *p, const int dt, vf k[NV]) {
    for (int v = 0; v < NV; v++) {
        if (dt == DT_F32) k[v] = vload(p + v * VW * 4);
        else if (dt == DT_F16) k[v] = vcvt_f16(p + v * VW * 2);
        else { /* bf16: 16 words; low halves are elements 0..15, high halves 16..31 */
            const int half = v / (NV / 2) ? 1 : 0, w = v % (NV / 2);
            vi x = viload(p + w * VW * 4);
            k[v] = half ? (vf)(x & (int32_t)-65536) : (vf)(x << 16);
        }
    }
}

/* Scores of one 32-key block of a float-dtype K tile for NH heads: s[h*T + lane] (storage-lane order). */
AI void score_block_float(const char *kb, const int dt, const int es, const int d, const float *q, const int NH,
                          float *s, const int T, const stream *pk, size_t koff) {
    vf acc[HMAX][NV];
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) acc[h][v] = vzero();
    const size_t run = 32 * (size_t)es;
    for (int c = 0; c < d; c++) {
        const char *p = kb + c * run;
        if (pk) for (size_t o = 0; o < run; o += 64) pf_at(pk, koff + c * run + o);
        vf k[NV];
        krun(p, dt, k);
        for (int h = 0; h < NH; h++) {
            vf qb = vset1(q[h * d + c]);
            for (int v = 0; v < NV; v++) acc[h][v] = vfma(qb, k[v], acc[h][v]);
        }
    }
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) vstore(s + h * T + v * VW, acc[h][v]);
}

/* Scores of one 32-key group of a q8_0/q4_0 K tile: per block column, blk = sum_e q_e code_e in registers,
   then s = fma(blk, scale, s) (the Java twins' order: ScalarQuantKernels). */
AI void score_block_quant(const char *kb, const int dt, const int d, const float *q, const int NH, float *s,
                          const int T, const stream *pk, size_t koff) {
    const int B = d % 32 == 0 ? 32 : d, nb = d / B;
    const int cb = dt == DT_Q8_0 ? B : (B + 1) / 2, bb = 2 + cb;
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) vstore(s + h * T + v * VW, vzero());
    for (int b = 0; b < nb; b++) {
        const char *col = kb + (size_t)b * 32 * bb;
        const size_t coff = koff + (size_t)b * 32 * bb;
        vf blk[HMAX][NV];
        for (int h = 0; h < NH; h++)
            for (int v = 0; v < NV; v++) blk[h][v] = vzero();
        if (pk) pf_at(pk, coff);
        for (int i = 0; i < cb; i++) {
            const char *r = col + 64 + i * 32;
            if (pk && (i & 1)) pf_at(pk, coff + 64 + i * 32);
            if (dt == DT_Q8_0) {
                vf k[NV];
                for (int v = 0; v < NV; v++) k[v] = vcvt_i8(r + v * VW);
                for (int h = 0; h < NH; h++) {
                    vf qb = vset1(q[h * d + b * B + i]);
                    for (int v = 0; v < NV; v++) blk[h][v] = vfma(qb, k[v], blk[h][v]);
                }
            } else {
                vf klo[NV], khi[NV];
                for (int v = 0; v < NV; v++) {
                    vi x = vu8(r + v * VW);
                    klo[v] = vcvt_i32((x & 15) - 8);
                    khi[v] = vcvt_i32((x >> 4) - 8);
                }
                const int ehi = i + cb; /* element of the high nibble; past the block for odd B's last byte */
                for (int h = 0; h < NH; h++) {
                    vf qb = vset1(q[h * d + b * B + i]);
                    for (int v = 0; v < NV; v++) blk[h][v] = vfma(qb, klo[v], blk[h][v]);
                }
                if (ehi < B)
                    for (int h = 0; h < NH; h++) {
                        vf qb = vset1(q[h * d + b * B + ehi]);
                        for (int v = 0; v < NV; v++) blk[h][v] = vfma(qb, khi[v], blk[h][v]);
                    }
            }
        }
        vf sc[NV];
        for (int v = 0; v < NV; v++) sc[v] = vcvt_f16(col + v * VW * 2);
        for (int h = 0; h < NH; h++)
            for (int v = 0; v < NV; v++)
                vstore(s + h * T + v * VW, vfma(blk[h][v], sc[v], vload(s + h * T + v * VW)));
    }
}

/* ---------------- p.V ---------------- */

/* tacc[h*d + cb*32 + lane] += sum_j p[h*T + j] * V[j][cb*32 + lane] over the cnt keys of one full 32-channel
   block of a float-dtype V tile (lane: storage order, fixed up by the caller for f16). */
AI void pv_block_float(const char *vb, const int dt, const int es, const int d, const float *p, const int NH,
                       const int T, const int cnt, float *tacc, const stream *pv, size_t voff) {
    vf acc[HMAX][NV];
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) acc[h][v] = vzero();
    const size_t row = 32 * (size_t)es;
    for (int j = 0; j < cnt; j++) {
        const char *r = vb + j * row;
        if (pv) for (size_t o = 0; o < row; o += 64) pf_at(pv, voff + j * row + o);
        vf x[NV];
        krun(r, dt, x);
        for (int h = 0; h < NH; h++) {
            vf pb = vset1(p[h * T + j]);
            for (int v = 0; v < NV; v++) acc[h][v] = vfma(pb, x[v], acc[h][v]);
        }
    }
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) vstore(tacc + h * d + v * VW, acc[h][v]);
}

/* The same for block column b (32 channels) of a q8_0/q4_0 V tile: acc += (p * scale) * code. */
AI void pv_block_quant(const char *vt, const int dt, const int d, const float *p, const int NH, const int T,
                       const int cnt, const int b, float *tacc, const stream *pv) {
    const int bb = dt == DT_Q8_0 ? 34 : 18;
    vf acc[HMAX][NV];
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) acc[h][v] = vzero();
    const size_t base = (size_t)b * T * bb;
    for (int j = 0; j < cnt; j++) {
        const char *r = vt + base + (size_t)j * bb;
        if (pv && (j & 1) == 0) pf_at(pv, base + (size_t)j * bb);
        const float scale = _cvtsh_ss(*(const uint16_t *)r);
        vf x[NV];
        if (dt == DT_Q8_0) {
            for (int v = 0; v < NV; v++) x[v] = vcvt_i8(r + 2 + v * VW);
        } else {
            for (int v = 0; v < NV / 2; v++) {
                vi c = vu8(r + 2 + v * VW);
                x[v] = vcvt_i32((c & 15) - 8);
                x[v + NV / 2] = vcvt_i32((c >> 4) - 8);
            }
        }
        for (int h = 0; h < NH; h++) {
            vf w = vset1(p[h * T + j] * scale);
            for (int v = 0; v < NV; v++) acc[h][v] = vfma(w, x[v], acc[h][v]);
        }
    }
    for (int h = 0; h < NH; h++)
        for (int v = 0; v < NV; v++) vstore(tacc + h * d + v * VW, acc[h][v]);
}

/* Scalar p.V for what the vector blocks do not cover: a last float V block narrower than 32 channels (natural
   order), and quant rows whose one block is the whole row (d not a multiple of 32). */
static void pv_scalar_tail(const char *vt, const int dt, const int d, const float *p, const int g, const int T,
                           const int cnt, float *tacc) {
    if (dt == DT_Q8_0 || dt == DT_Q4_0) {
        const int B = d, cb = dt == DT_Q8_0 ? B : (B + 1) / 2, bb = 2 + cb;
        for (int j = 0; j < cnt; j++) {
            const unsigned char *r = (const unsigned char *)vt + (size_t)j * bb;
            const float scale = _cvtsh_ss(*(const uint16_t *)r);
            for (int h = 0; h < g; h++) {
                const float w = p[h * T + j] * scale;
                for (int e = 0; e < B; e++) {
                    float code;
                    if (dt == DT_Q8_0) code = (float)(int8_t)r[2 + e];
                    else code = (float)((e < cb ? r[2 + e] & 15 : r[2 + e % cb] >> 4) - 8);
                    tacc[h * d + e] = fmaf(w, code, tacc[h * d + e]);
                }
            }
        }
        return;
    }
    const int es = dt == DT_F32 ? 4 : 2, c0 = d / 32 * 32, w = d - c0;
    const char *vb = vt + (size_t)c0 * T * es;
    for (int j = 0; j < cnt; j++)
        for (int h = 0; h < g; h++) {
            const float pj = p[h * T + j];
            for (int e = 0; e < w; e++) {
                const char *x = vb + ((size_t)j * w + e) * es;
                float val = dt == DT_F32 ? *(const float *)x
                          : dt == DT_F16 ? _cvtsh_ss(*(const uint16_t *)x)
                          : ({ uint32_t u = (uint32_t)(*(const uint16_t *)x) << 16; float f; memcpy(&f, &u, 4); f; });
                tacc[h * d + c0 + e] = fmaf(pj, val, tacc[h * d + c0 + e]);
            }
        }
}

/* ---------------- one tile ---------------- */

/* storage lane of element i of a paired run of 32 (f16/bf16): word i % 16, half i / 16 */
AI int lane(int i) { return 2 * (i % 16) + i / 16; }

AI void score_heads(const char *kb, const int dt, const int es, const int d, const float *q, const int nh,
                    float *s, const int T, const stream *pk, size_t koff) {
    const int quant = dt == DT_Q8_0 || dt == DT_Q4_0;
#define HF_SCORE_CASE(N)                                                              \
    case N:                                                                           \
        if (quant) score_block_quant(kb, dt, d, q, N, s, T, pk, koff);                \
        else score_block_float(kb, dt, es, d, q, N, s, T, pk, koff);                  \
        break;
    switch (nh) {
        HF_SCORE_CASE(1)
        HF_SCORE_CASE(2)
#if HMAX > 2
        HF_SCORE_CASE(3)
        HF_SCORE_CASE(4)
        HF_SCORE_CASE(5)
        HF_SCORE_CASE(6)
        HF_SCORE_CASE(7)
        HF_SCORE_CASE(8)
#endif
    }
#undef HF_SCORE_CASE
}

AI void pv_heads(const char *vt, const int dt, const int es, const int d, const float *p, const int nh,
                 const int T, const int cnt, const int b, float *tacc, const stream *pv) {
    const int quant = dt == DT_Q8_0 || dt == DT_Q4_0;
    const size_t voff = quant ? 0 : (size_t)b * 32 * T * es;
#define HF_PV_CASE(N)                                                                                  \
    case N:                                                                                            \
        if (quant) pv_block_quant(vt, dt, d, p, N, T, cnt, b, tacc, pv);                               \
        else pv_block_float(vt + voff, dt, es, d, p, N, T, cnt, tacc, pv, voff);                       \
        break;
    switch (nh) {
        HF_PV_CASE(1)
        HF_PV_CASE(2)
#if HMAX > 2
        HF_PV_CASE(3)
        HF_PV_CASE(4)
        HF_PV_CASE(5)
        HF_PV_CASE(6)
        HF_PV_CASE(7)
        HF_PV_CASE(8)
#endif
    }
#undef HF_PV_CASE
}

AI int tile(const int dt, const int d, const int g, const int T, const float *q, const char *kt,
            const char *vt, const char *knext, const char *vnext, const int cnt, float *m, float *l,
            float *acc, float *s, float *tacc, const size_t pfk, const size_t pfv) {
    const int es = dt == DT_F32 ? 4 : 2; /* unused for the quant dtypes */
    const int quant = dt == DT_Q8_0 || dt == DT_Q4_0;
    const size_t rowBytes = quant ? (size_t)(d / (d % 32 == 0 ? 32 : d))
                                        * (2 + (dt == DT_Q8_0 ? (d % 32 == 0 ? 32 : d) : ((d % 32 == 0 ? 32 : d) + 1) / 2))
                                  : (size_t)d * es;
    const size_t tileBytes = (size_t)T * rowBytes;
    const stream sk = {kt, knext, tileBytes, pfk}, sv = {vt, vnext, tileBytes, pfv};
    const int blocks = (cnt + 31) / 32;

    /* 1. scores, 32 keys at a time, HMAX heads at a time */
    for (int kb = 0; kb < blocks; kb++) {
        const size_t koff = (size_t)kb * 32 * rowBytes;
        for (int h0 = 0; h0 < g; h0 += HMAX) {
            const int nh = g - h0 < HMAX ? g - h0 : HMAX;
            score_heads(kt + koff, dt, es, d, q + (size_t)h0 * d, nh, s + (size_t)h0 * T + kb * 32, T,
                        h0 == 0 ? &sk : NULL, koff);
        }
    }
    if (dt == DT_F16) { /* the runs were converted in storage-lane order: back to key order */
        float tmp[32];
        for (int h = 0; h < g; h++)
            for (int kb = 0; kb < blocks; kb++) {
                float *x = s + (size_t)h * T + kb * 32;
                memcpy(tmp, x, sizeof tmp);
                for (int i = 0; i < 32; i++) x[i] = tmp[lane(i)];
            }
    }

    /* 2. online softmax: raise m, rescale l and acc when they hold mass, weights in place */
    int rescales = 0;
    const int padded = blocks * 32;
    for (int h = 0; h < g; h++) {
        float *x = s + (size_t)h * T;
        for (int j = cnt; j < padded; j++) x[j] = -INFINITY; /* keys past the call */
        vf mx = vset1(-INFINITY);
        for (int j = 0; j < padded; j += VW) mx = vmax(mx, vload(x + j));
        const float tmax = hmax(mx);
        if (tmax > m[h]) {
            if (l[h] != 0.0f) {
                const float alpha = expf(m[h] - tmax);
                l[h] *= alpha;
                float *a = acc + (size_t)h * d;
                for (int c = 0; c < d; c++) a[c] *= alpha;
                rescales++;
            }
            m[h] = tmax;
        }
        const vf mh = vset1(m[h]);
        vf sum = vzero();
        for (int j = 0; j < padded; j += VW) {
            vf p = vexp(vload(x + j) - mh);
            vstore(x + j, p);
            sum += p;
        }
        l[h] += hsum(sum);
    }

    /* 3. tileAcc = p.V, then acc += tileAcc */
    memset(tacc, 0, sizeof(float) * (size_t)g * d);
    const int fullBlocks = quant ? (d % 32 == 0 ? d / 32 : 0) : d / 32;
    for (int b = 0; b < fullBlocks; b++)
        for (int h0 = 0; h0 < g; h0 += HMAX) {
            const int nh = g - h0 < HMAX ? g - h0 : HMAX;
            pv_heads(vt, dt, es, d, s + (size_t)h0 * T, nh, T, cnt, b, tacc + (size_t)h0 * d + b * 32,
                     h0 == 0 ? &sv : NULL);
        }
    if (fullBlocks * 32 < d) pv_scalar_tail(vt, dt, d, s, g, T, cnt, tacc);
    for (int h = 0; h < g; h++) {
        float *a = acc + (size_t)h * d;
        const float *t = tacc + (size_t)h * d;
        if (dt == DT_F16 || dt == DT_BF16) {
            if (dt == DT_F16) /* full blocks: storage-lane order back to channels */
                for (int b = 0; b < d / 32; b++)
                    for (int i = 0; i < 32; i++) a[b * 32 + i] += t[b * 32 + lane(i)];
            else
                for (int c = 0; c < d / 32 * 32; c++) a[c] += t[c];
            for (int c = d / 32 * 32; c < d; c++) a[c] += t[c];
        } else {
            for (int c = 0; c < d; c++) a[c] += t[c];
        }
    }
    return rescales;
}

/* One tile function per dtype: the dtype is a constant inside each, so no inner loop tests it (GCC does not
   unswitch those loops by itself: it kept the f16 conversion out of line behind a branch per channel). */
#define TILE_ARGS const int d, const int g, const int T, const float *q, const char *kt, const char *vt, \
                  const char *knext, const char *vnext, const int cnt, float *m, float *l, float *acc, float *s, \
                  float *tacc, const size_t pfk, const size_t pfv
#define TILE_PASS d, g, T, q, kt, vt, knext, vnext, cnt, m, l, acc, s, tacc, pfk, pfv
__attribute__((noinline)) static int tile_f32(TILE_ARGS) { return tile(DT_F32, TILE_PASS); }
__attribute__((noinline)) static int tile_bf16(TILE_ARGS) { return tile(DT_BF16, TILE_PASS); }
__attribute__((noinline)) static int tile_f16(TILE_ARGS) { return tile(DT_F16, TILE_PASS); }
__attribute__((noinline)) static int tile_q8_0(TILE_ARGS) { return tile(DT_Q8_0, TILE_PASS); }
__attribute__((noinline)) static int tile_q4_0(TILE_ARGS) { return tile(DT_Q4_0, TILE_PASS); }

static int tile_of(const int dt, TILE_ARGS) {
    switch (dt) {
    case DT_F32: return tile_f32(TILE_PASS);
    case DT_BF16: return tile_bf16(TILE_PASS);
    case DT_F16: return tile_f16(TILE_PASS);
    case DT_Q8_0: return tile_q8_0(TILE_PASS);
    default: return tile_q4_0(TILE_PASS);
    }
}
#undef TILE_ARGS
#undef TILE_PASS

/* ---------------- entry point ---------------- */

/* Exact online softmax over a list of tiles of one KV head for its g query heads.
   q + qOff: g x d floats; k, v: the cache's K and V segments; offs: ntiles byte offsets, listed tile i starts at
   k + offs[i] in K and at v + offs[i] in V (a sequence's tiles lie wherever its page table put them, so every
   tile has its own offset); counts: keys in listed tile i (1..T); m + mOff, l + mOff: g floats; acc + accOff:
   g x d; scratch: g*T + g*d floats; pfk, pfv: prefetch distances in bytes (0 = off).
   Returns the number of rescales. */
int32_t HF_NAME(hflash_decode_tiles)(int32_t dtype, int32_t d, int32_t g, int32_t T, const float *q, int32_t qOff,
                                     const char *k, const char *v, const int64_t *offs, const int32_t *counts,
                                     int32_t ntiles, float *m, float *l, int32_t mOff, float *acc, int32_t accOff,
                                     float *scratch, int64_t pfk, int64_t pfv) {
    assert(dtype >= 0 && dtype <= 4 && d > 0 && g > 0 && T > 0 && T % 32 == 0 && ntiles >= 0);
    /* offsets rather than pointers into the middle of the Java arrays: the caller passes whole arrays, so no
       slice object is allocated per call */
    q += qOff;
    m += mOff;
    l += mOff;
    acc += accOff;
    float *s = scratch, *tacc = scratch + (size_t)g * T;
    int32_t rescales = 0;
    for (int32_t i = 0; i < ntiles; i++) {
        const int cnt = counts[i];
        assert(cnt > 0 && cnt <= T && offs[i] >= 0);
        const char *knext = NULL, *vnext = NULL;
        if (i + 1 < ntiles) {
            knext = k + offs[i + 1];
            vnext = v + offs[i + 1];
        }
        rescales += tile_of(dtype, d, g, T, q, k + offs[i], v + offs[i], knext, vnext, cnt, m, l, acc, s, tacc,
                            (size_t)pfk, (size_t)pfv);
    }
    return rescales;
}
