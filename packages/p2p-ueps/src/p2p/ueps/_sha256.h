/* SHA-256 and HMAC-SHA256 for the p2p.ueps hot path.
 *
 * Self-contained (no OpenSSL headers needed at build time): a portable compression
 * function, plus an x86 SHA-NI one compiled with a per-function target attribute and chosen
 * at run time through CPUID, so the module still runs on any x86-64 (and builds elsewhere).
 * HMAC keeps the inner and outer states after absorbing the key blocks, so a packet costs
 * only its own blocks plus one outer block.
 */
#ifndef P2P_SHA256_H
#define P2P_SHA256_H

#include <stdint.h>
#include <string.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__)
#  if defined(__GNUC__) || defined(__clang__)
#    define P2P_SHA_X86 1
#    include <immintrin.h>
#    include <cpuid.h>
#  endif
#endif

static const uint32_t p2p_sha256_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static const uint32_t p2p_sha256_IV[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

#define P2P_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void p2p_sha256_blocks_portable(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    uint32_t w[64];
    while (nblocks--) {
        int i;
        uint32_t a, b, c, d, e, f, g, h;
        for (i = 0; i < 16; i++) {
            w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
                   ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
        }
        for (i = 16; i < 64; i++) {
            uint32_t s0 = P2P_ROR(w[i - 15], 7) ^ P2P_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = P2P_ROR(w[i - 2], 17) ^ P2P_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        a = st[0]; b = st[1]; c = st[2]; d = st[3]; e = st[4]; f = st[5]; g = st[6]; h = st[7];
        for (i = 0; i < 64; i++) {
            uint32_t S1 = P2P_ROR(e, 6) ^ P2P_ROR(e, 11) ^ P2P_ROR(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = h + S1 + ch + p2p_sha256_K[i] + w[i];
            uint32_t S0 = P2P_ROR(a, 2) ^ P2P_ROR(a, 13) ^ P2P_ROR(a, 22);
            uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + mj;
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        st[0] += a; st[1] += b; st[2] += c; st[3] += d;
        st[4] += e; st[5] += f; st[6] += g; st[7] += h;
        p += 64;
    }
}

#ifdef P2P_SHA_X86
__attribute__((target("sha,sse4.1,ssse3")))
static void p2p_sha256_blocks_shani(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i s0, s1, tmp, msg, abef, cdgh;
    __m128i w0, w1, w2, w3;

    tmp = _mm_loadu_si128((const __m128i *)&st[0]);
    s1 = _mm_loadu_si128((const __m128i *)&st[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);      /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);        /* EFGH */
    s0 = _mm_alignr_epi8(tmp, s1, 8);        /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);     /* CDGH */

#define P2P_RND4(W, G)                                                                    \
    msg = _mm_add_epi32((W), _mm_loadu_si128((const __m128i *)&p2p_sha256_K[4 * (G)]));  \
    s1 = _mm_sha256rnds2_epu32(s1, s0, msg);                                              \
    msg = _mm_shuffle_epi32(msg, 0x0E);                                                   \
    s0 = _mm_sha256rnds2_epu32(s0, s1, msg);

/* W(g) = msg2(msg1(W(g-4), W(g-3)) + alignr(W(g-1), W(g-2), 4), W(g-1)) */
#define P2P_SCHED(Wm4, Wm3, Wm2, Wm1)                                                     \
    Wm4 = _mm_sha256msg2_epu32(                                                           \
        _mm_add_epi32(_mm_sha256msg1_epu32(Wm4, Wm3), _mm_alignr_epi8(Wm1, Wm2, 4)), Wm1);

    while (nblocks--) {
        abef = s0;
        cdgh = s1;
        w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), MASK);
        P2P_RND4(w0, 0)
        w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), MASK);
        P2P_RND4(w1, 1)
        w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), MASK);
        P2P_RND4(w2, 2)
        w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), MASK);
        P2P_RND4(w3, 3)
        P2P_SCHED(w0, w1, w2, w3) P2P_RND4(w0, 4)
        P2P_SCHED(w1, w2, w3, w0) P2P_RND4(w1, 5)
        P2P_SCHED(w2, w3, w0, w1) P2P_RND4(w2, 6)
        P2P_SCHED(w3, w0, w1, w2) P2P_RND4(w3, 7)
        P2P_SCHED(w0, w1, w2, w3) P2P_RND4(w0, 8)
        P2P_SCHED(w1, w2, w3, w0) P2P_RND4(w1, 9)
        P2P_SCHED(w2, w3, w0, w1) P2P_RND4(w2, 10)
        P2P_SCHED(w3, w0, w1, w2) P2P_RND4(w3, 11)
        P2P_SCHED(w0, w1, w2, w3) P2P_RND4(w0, 12)
        P2P_SCHED(w1, w2, w3, w0) P2P_RND4(w1, 13)
        P2P_SCHED(w2, w3, w0, w1) P2P_RND4(w2, 14)
        P2P_SCHED(w3, w0, w1, w2) P2P_RND4(w3, 15)
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
        p += 64;
    }
#undef P2P_RND4
#undef P2P_SCHED

    tmp = _mm_shuffle_epi32(s0, 0x1B);       /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);        /* DCHG */
    s0 = _mm_blend_epi16(tmp, s1, 0xF0);     /* DCBA */
    s1 = _mm_alignr_epi8(s1, tmp, 8);        /* HGFE */
    _mm_storeu_si128((__m128i *)&st[0], s0);
    _mm_storeu_si128((__m128i *)&st[4], s1);
}

/* Two independent one-block hashes from the IV, interleaved: sha256rnds2 is latency-bound,
 * so two streams run at nearly twice the rate of one (used by the keystream). */
__attribute__((target("sha,sse4.1,ssse3")))
static void p2p_sha256_iv2_shani(const uint8_t *pa, const uint8_t *pb, uint32_t ha[8], uint32_t hb[8])
{
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i a0, a1, b0, b1, tmp, ma, mb, k, abef, cdgh;
    __m128i x0, x1, x2, x3, y0, y1, y2, y3;

    tmp = _mm_loadu_si128((const __m128i *)&p2p_sha256_IV[0]);
    a1 = _mm_loadu_si128((const __m128i *)&p2p_sha256_IV[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);
    a1 = _mm_shuffle_epi32(a1, 0x1B);
    a0 = _mm_alignr_epi8(tmp, a1, 8);
    a1 = _mm_blend_epi16(a1, tmp, 0xF0);
    abef = a0; cdgh = a1;
    b0 = a0; b1 = a1;

#define P2P_RND4X2(WA, WB, G)                                                             \
    k = _mm_loadu_si128((const __m128i *)&p2p_sha256_K[4 * (G)]);                         \
    ma = _mm_add_epi32((WA), k);                                                          \
    mb = _mm_add_epi32((WB), k);                                                          \
    a1 = _mm_sha256rnds2_epu32(a1, a0, ma);                                               \
    b1 = _mm_sha256rnds2_epu32(b1, b0, mb);                                               \
    ma = _mm_shuffle_epi32(ma, 0x0E);                                                     \
    mb = _mm_shuffle_epi32(mb, 0x0E);                                                     \
    a0 = _mm_sha256rnds2_epu32(a0, a1, ma);                                               \
    b0 = _mm_sha256rnds2_epu32(b0, b1, mb);
#define P2P_SCHED1(Wm4, Wm3, Wm2, Wm1)                                                    \
    Wm4 = _mm_sha256msg2_epu32(                                                           \
        _mm_add_epi32(_mm_sha256msg1_epu32(Wm4, Wm3), _mm_alignr_epi8(Wm1, Wm2, 4)), Wm1);
#define P2P_STEP(G, XA, XB, XC, XD, YA, YB, YC, YD)                                       \
    P2P_SCHED1(XA, XB, XC, XD) P2P_SCHED1(YA, YB, YC, YD) P2P_RND4X2(XA, YA, G)

    x0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 0)), MASK);
    y0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 0)), MASK);
    P2P_RND4X2(x0, y0, 0)
    x1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 16)), MASK);
    y1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 16)), MASK);
    P2P_RND4X2(x1, y1, 1)
    x2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 32)), MASK);
    y2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 32)), MASK);
    P2P_RND4X2(x2, y2, 2)
    x3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 48)), MASK);
    y3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 48)), MASK);
    P2P_RND4X2(x3, y3, 3)
    P2P_STEP(4, x0, x1, x2, x3, y0, y1, y2, y3)
    P2P_STEP(5, x1, x2, x3, x0, y1, y2, y3, y0)
    P2P_STEP(6, x2, x3, x0, x1, y2, y3, y0, y1)
    P2P_STEP(7, x3, x0, x1, x2, y3, y0, y1, y2)
    P2P_STEP(8, x0, x1, x2, x3, y0, y1, y2, y3)
    P2P_STEP(9, x1, x2, x3, x0, y1, y2, y3, y0)
    P2P_STEP(10, x2, x3, x0, x1, y2, y3, y0, y1)
    P2P_STEP(11, x3, x0, x1, x2, y3, y0, y1, y2)
    P2P_STEP(12, x0, x1, x2, x3, y0, y1, y2, y3)
    P2P_STEP(13, x1, x2, x3, x0, y1, y2, y3, y0)
    P2P_STEP(14, x2, x3, x0, x1, y2, y3, y0, y1)
    P2P_STEP(15, x3, x0, x1, x2, y3, y0, y1, y2)
#undef P2P_RND4X2
#undef P2P_SCHED1
#undef P2P_STEP
    a0 = _mm_add_epi32(a0, abef); a1 = _mm_add_epi32(a1, cdgh);
    b0 = _mm_add_epi32(b0, abef); b1 = _mm_add_epi32(b1, cdgh);

    tmp = _mm_shuffle_epi32(a0, 0x1B);
    a1 = _mm_shuffle_epi32(a1, 0xB1);
    a0 = _mm_blend_epi16(tmp, a1, 0xF0);
    a1 = _mm_alignr_epi8(a1, tmp, 8);
    _mm_storeu_si128((__m128i *)&ha[0], a0);
    _mm_storeu_si128((__m128i *)&ha[4], a1);
    tmp = _mm_shuffle_epi32(b0, 0x1B);
    b1 = _mm_shuffle_epi32(b1, 0xB1);
    b0 = _mm_blend_epi16(tmp, b1, 0xF0);
    b1 = _mm_alignr_epi8(b1, tmp, 8);
    _mm_storeu_si128((__m128i *)&hb[0], b0);
    _mm_storeu_si128((__m128i *)&hb[4], b1);
}

static int p2p_cpu_has_shani(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0;   /* SSE4.1, SSSE3 */
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1u;                                  /* SHA */
}
#endif

typedef void (*p2p_sha256_blocks_fn)(uint32_t st[8], const uint8_t *p, size_t nblocks);
static p2p_sha256_blocks_fn p2p_sha256_blocks = p2p_sha256_blocks_portable;

static void p2p_sha256_iv2_portable(const uint8_t *pa, const uint8_t *pb, uint32_t ha[8], uint32_t hb[8])
{
    memcpy(ha, p2p_sha256_IV, 32);
    memcpy(hb, p2p_sha256_IV, 32);
    p2p_sha256_blocks_portable(ha, pa, 1);
    p2p_sha256_blocks_portable(hb, pb, 1);
}

typedef void (*p2p_sha256_iv2_fn)(const uint8_t *pa, const uint8_t *pb, uint32_t ha[8], uint32_t hb[8]);
static p2p_sha256_iv2_fn p2p_sha256_iv2 = p2p_sha256_iv2_portable;
static const char *p2p_sha256_backend = "portable";

/* Pick the fastest compression function this CPU supports; force_portable for tests. */
static void p2p_sha256_select(int force_portable)
{
    p2p_sha256_blocks = p2p_sha256_blocks_portable;
    p2p_sha256_iv2 = p2p_sha256_iv2_portable;
    p2p_sha256_backend = "portable";
#ifdef P2P_SHA_X86
    if (!force_portable && p2p_cpu_has_shani()) {
        p2p_sha256_blocks = p2p_sha256_blocks_shani;
        p2p_sha256_iv2 = p2p_sha256_iv2_shani;
        p2p_sha256_backend = "sha-ni";
    }
#else
    (void)force_portable;
#endif
}

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t buflen;
} p2p_sha256_ctx;

static inline void p2p_sha256_init(p2p_sha256_ctx *c)
{
    memcpy(c->h, p2p_sha256_IV, sizeof c->h);
    c->nbytes = 0;
    c->buflen = 0;
}

static inline void p2p_sha256_update(p2p_sha256_ctx *c, const uint8_t *p, size_t n)
{
    c->nbytes += n;
    if (c->buflen) {
        size_t take = 64 - c->buflen;
        if (take > n) take = n;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take;
        p += take;
        n -= take;
        if (c->buflen < 64) return;
        p2p_sha256_blocks(c->h, c->buf, 1);
        c->buflen = 0;
    }
    if (n >= 64) {
        size_t nb = n / 64;
        p2p_sha256_blocks(c->h, p, nb);
        p += nb * 64;
        n -= nb * 64;
    }
    if (n) {
        memcpy(c->buf, p, n);
        c->buflen = n;
    }
}

static inline void p2p_store_be32(uint8_t *o, uint32_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
    memcpy(o, &v, 4);
#else
    o[0] = (uint8_t)(v >> 24); o[1] = (uint8_t)(v >> 16); o[2] = (uint8_t)(v >> 8); o[3] = (uint8_t)v;
#endif
}

static inline void p2p_sha256_final(p2p_sha256_ctx *c, uint8_t out[32])
{
    uint64_t bits = c->nbytes * 8;
    size_t n = c->buflen;
    int i;
    c->buf[n++] = 0x80;
    if (n > 56) {
        memset(c->buf + n, 0, 64 - n);
        p2p_sha256_blocks(c->h, c->buf, 1);
        n = 0;
    }
    memset(c->buf + n, 0, 56 - n);
    for (i = 0; i < 8; i++) c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    p2p_sha256_blocks(c->h, c->buf, 1);
    for (i = 0; i < 8; i++) p2p_store_be32(out + 4 * i, c->h[i]);
}

/* HMAC-SHA256 with the key already absorbed: inner/outer states after one block each. */
typedef struct {
    uint32_t inner[8];
    uint32_t outer[8];
} p2p_hmac_key;

static void p2p_hmac_key_init(p2p_hmac_key *k, const uint8_t *key, size_t keylen)
{
    uint8_t kb[64], pad[64];
    int i;
    memset(kb, 0, sizeof kb);
    if (keylen > 64) {
        p2p_sha256_ctx c;
        p2p_sha256_init(&c);
        p2p_sha256_update(&c, key, keylen);
        p2p_sha256_final(&c, kb);
    } else if (keylen) {
        memcpy(kb, key, keylen);
    }
    for (i = 0; i < 64; i++) pad[i] = kb[i] ^ 0x36;
    memcpy(k->inner, p2p_sha256_IV, sizeof k->inner);
    p2p_sha256_blocks(k->inner, pad, 1);
    for (i = 0; i < 64; i++) pad[i] = kb[i] ^ 0x5c;
    memcpy(k->outer, p2p_sha256_IV, sizeof k->outer);
    p2p_sha256_blocks(k->outer, pad, 1);
}

static inline void p2p_hmac_begin(const p2p_hmac_key *k, p2p_sha256_ctx *c)
{
    memcpy(c->h, k->inner, sizeof c->h);
    c->nbytes = 64;
    c->buflen = 0;
}

static inline void p2p_hmac_end(const p2p_hmac_key *k, p2p_sha256_ctx *c, uint8_t out[32])
{
    uint8_t ih[32];
    p2p_sha256_final(c, ih);
    memcpy(c->h, k->outer, sizeof c->h);
    c->nbytes = 64;
    c->buflen = 0;
    p2p_sha256_update(c, ih, 32);
    p2p_sha256_final(c, out);
}

/* Constant-time comparison of equal-length buffers. */
static inline int p2p_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    size_t i;
    for (i = 0; i < n; i++) d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* out = data XOR (SHA-256(nonce || u64be(i)) for i = 0, 1, ...). nonce up to 55 - 8 bytes
 * makes each keystream block a single compression of a fixed padded block. */
static void p2p_keystream_xor(const uint8_t *nonce, size_t nlen, const uint8_t *in, uint8_t *out,
                              size_t n)
{
    uint64_t i = 0;
    size_t off = 0;
    uint8_t blk[32];
    int j;
    if (nlen + 8 <= 55) {
        uint8_t m[64];
        uint64_t bits = (uint64_t)(nlen + 8) * 8;
        memset(m, 0, sizeof m);
        memcpy(m, nonce, nlen);
        m[nlen + 8] = 0x80;
        for (j = 0; j < 8; j++) m[56 + j] = (uint8_t)(bits >> (56 - 8 * j));
        {
            uint8_t m2[64];
            memcpy(m2, m, 64);
            while (n - off >= 64) {
                uint32_t ha[8], hb[8];
                uint64_t x[8];
                uint8_t ks[64];
                for (j = 0; j < 8; j++) m[nlen + j] = (uint8_t)(i >> (56 - 8 * j));
                for (j = 0; j < 8; j++) m2[nlen + j] = (uint8_t)((i + 1) >> (56 - 8 * j));
                p2p_sha256_iv2(m, m2, ha, hb);
                for (j = 0; j < 8; j++) p2p_store_be32(ks + 4 * j, ha[j]);
                for (j = 0; j < 8; j++) p2p_store_be32(ks + 32 + 4 * j, hb[j]);
                memcpy(x, in + off, 64);
                {
                    uint64_t y[8];
                    memcpy(y, ks, 64);
                    for (j = 0; j < 8; j++) x[j] ^= y[j];
                }
                memcpy(out + off, x, 64);
                off += 64;
                i += 2;
            }
        }
        while (off < n) {
            uint32_t h[8];
            size_t take = n - off < 32 ? n - off : 32;
            size_t t;
            for (j = 0; j < 8; j++) m[nlen + j] = (uint8_t)(i >> (56 - 8 * j));
            memcpy(h, p2p_sha256_IV, sizeof h);
            p2p_sha256_blocks(h, m, 1);
            for (j = 0; j < 8; j++) p2p_store_be32(blk + 4 * j, h[j]);
            for (t = 0; t < take; t++) out[off + t] = in[off + t] ^ blk[t];
            off += take;
            i++;
        }
        return;
    }
    while (off < n) {
        p2p_sha256_ctx c;
        uint8_t ctr[8];
        size_t take = n - off < 32 ? n - off : 32;
        size_t t;
        for (j = 0; j < 8; j++) ctr[j] = (uint8_t)(i >> (56 - 8 * j));
        p2p_sha256_init(&c);
        p2p_sha256_update(&c, nonce, nlen);
        p2p_sha256_update(&c, ctr, 8);
        p2p_sha256_final(&c, blk);
        for (t = 0; t < take; t++) out[off + t] = in[off + t] ^ blk[t];
        off += take;
        i++;
    }
}

#endif /* P2P_SHA256_H */
