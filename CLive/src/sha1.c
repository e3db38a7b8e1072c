/* SHA-1 (FIPS 180-4 section 6.1) and base64 (RFC 4648 section 4). */
#include "sha1.h"

#include <limits.h>
#include <string.h>

/* The GUID RFC 6455 section 1.3 appends to the client's key. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

typedef struct sha1_ctx {
    uint32_t h[5];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes waiting in block */
} sha1_ctx;

static uint32_t rol(uint32_t x, unsigned k) {
    return (x << k) | (x >> (32 - k));
}

static void sha1_compress(uint32_t h[5], const uint8_t p[64]) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) /* big-endian words, whatever the host order */
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1_init(sha1_ctx *c) {
    c->h[0] = 0x67452301u;
    c->h[1] = 0xEFCDAB89u;
    c->h[2] = 0x98BADCFEu;
    c->h[3] = 0x10325476u;
    c->h[4] = 0xC3D2E1F0u;
    c->total = 0;
    c->used = 0;
}

static void sha1_update(sha1_ctx *c, const uint8_t *p, size_t n) {
    c->total += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->block + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used < 64)
            return;
        sha1_compress(c->h, c->block);
        c->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64) /* whole blocks straight from the input */
        sha1_compress(c->h, p);
    if (n) {
        memcpy(c->block, p, n);
        c->used = n;
    }
}

static void sha1_final(sha1_ctx *c, uint8_t out[20]) {
    uint64_t bits = c->total * 8;
    /* Padding: 0x80, zeros up to 56 mod 64, then the bit length big-endian. */
    c->block[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->block + c->used, 0, 64 - c->used);
        sha1_compress(c->h, c->block);
        c->used = 0;
    }
    memset(c->block + c->used, 0, 56 - c->used);
    for (int i = 0; i < 8; i++)
        c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_compress(c->h, c->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void lv_sha1(const void *data, size_t n, uint8_t out[20]) {
    sha1_ctx c;
    sha1_init(&c);
    sha1_update(&c, data, n);
    sha1_final(&c, out);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t lv_base64_encode(const uint8_t *src, size_t n, char *dst) {
    size_t o = 0, i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        dst[o++] = B64[v >> 18];
        dst[o++] = B64[(v >> 12) & 63];
        dst[o++] = B64[(v >> 6) & 63];
        dst[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = B64[v >> 18];
        dst[o++] = B64[(v >> 12) & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        dst[o++] = B64[v >> 18];
        dst[o++] = B64[(v >> 12) & 63];
        dst[o++] = B64[(v >> 6) & 63];
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
}

/* The 6-bit value of a base64 character, or -1 (this includes '=', handled apart). */
static int b64_value(char ch) {
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

long lv_base64_decode(const char *src, size_t n, uint8_t *dst, size_t cap) {
    if (n % 4 != 0)
        return -1;
    if (n == 0)
        return 0;
    /* '=' may only end the last quad: "xx==" or "xxx=". */
    size_t pad = src[n - 1] == '=' ? (src[n - 2] == '=' ? 2 : 1) : 0;
    size_t out_len = n / 4 * 3 - pad;
    if (out_len > cap || out_len > (unsigned long)LONG_MAX)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t chars = i + 4 == n ? 4 - pad : 4; /* data characters in this quad */
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = j < chars ? b64_value(src[i + j]) : 0;
            if (d < 0)
                return -1; /* includes a '=' anywhere but the final padding */
            v = v << 6 | (uint32_t)d;
        }
        dst[o++] = (uint8_t)(v >> 16);
        if (chars > 2)
            dst[o++] = (uint8_t)(v >> 8);
        if (chars > 3)
            dst[o++] = (uint8_t)v;
    }
    return (long)o;
}

void lv_websocket_accept(const char *key, size_t key_len, char out[29]) {
    sha1_ctx c;
    uint8_t digest[20];
    sha1_init(&c);
    sha1_update(&c, (const uint8_t *)key, key_len);
    sha1_update(&c, (const uint8_t *)WS_GUID, sizeof WS_GUID - 1);
    sha1_final(&c, digest);
    lv_base64_encode(digest, sizeof digest, out);
}
