/* Tests for SHA-1, base64 and the Sec-WebSocket-Accept key (CLive/src/sha1.c): FIPS 180
 * vectors, every padding boundary, RFC 4648 and RFC 6455 examples, round trips and the
 * inputs the decoder must refuse. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "sha1.h"

static void to_hex(const uint8_t d[20], char out[41]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[40] = '\0';
}

static void check_sha1(const void *data, size_t n, const char *want, const char *row) {
    uint8_t d[20];
    char hex[41];
    lv_sha1(data, n, d);
    to_hex(d, hex);
    CHECK_ROW(strcmp(hex, want) == 0, row);
    if (strcmp(hex, want) != 0)
        fprintf(stderr, "  got %s\n  want %s\n", hex, want);
}

static void test_sha1_fips(void) {
    static const struct {
        const char *msg, *digest;
    } rows[] = {
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
         "klmnopqrlmnopqrsmnopqrstnopqrstu",
         "a49b2446a02c645bf419f995b67091253a04a259"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_sha1(rows[i].msg, strlen(rows[i].msg), rows[i].digest, rows[i].msg);
    check_sha1(NULL, 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "NULL, 0");

    size_t n = 1000000;
    char *a = malloc(n);
    CHECK(a != NULL);
    if (a) {
        memset(a, 'a', n);
        check_sha1(a, n, "34aa973cd4c4daa4f61eeb2bdbad27316534016f", "one million a");
        free(a);
    }
}

/* Lengths around the 55/56 and 64-byte padding edges; message byte i is i * 7 mod 256. */
static void test_sha1_padding(void) {
    static const struct {
        size_t len;
        const char *digest;
    } rows[] = {
        {1, "5ba93c9db0cff93f52b521d7420e43f6eda2784f"},
        {55, "aecd1643c9903b9bae8cb94f53c50f8a4e18605b"},
        {56, "f5d65c621c02cc8e785159feff8088e3072da1bc"},
        {57, "a69640f450b01dd44b096a2a697b52e3f2aeb117"},
        {63, "4952f0fe097e4d6410ae9eab4855aa836caf3bff"},
        {64, "1e17ae1fc093e5daca033553c97a5192ca164486"},
        {65, "ac44f5dbe3e9b5d2733fc9537fcad715c3c20bc3"},
        {119, "b4a4e69060d0b1e7e8ebbf7041a4211c63438b57"},
        {120, "b651390c2996406336a3f6647e4b590c18cdd6f8"},
        {127, "374f47c1c8d4700fc2588e71f6d1e861b431b5c3"},
        {128, "516846cd40bd1fe431119c3b0a0f362957992ee8"},
        {129, "a6e7c0b71257b5d5c4f15a05f915368ac52580b3"},
        {1000, "38f3aa587f4aa04965a359f9151092759b3a4c2a"},
    };
    static uint8_t msg[1000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char row[32];
        snprintf(row, sizeof row, "len %zu", rows[i].len);
        check_sha1(msg, rows[i].len, rows[i].digest, row);
    }
}

static void test_websocket_accept(void) {
    static const struct {
        const char *key, *accept;
    } rows[] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, /* RFC 6455 1.3 */
        {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[29];
        memset(out, 'x', sizeof out);
        lv_websocket_accept(rows[i].key, strlen(rows[i].key), out);
        CHECK_ROW(out[28] == '\0', rows[i].key);
        CHECK_ROW(strcmp(out, rows[i].accept) == 0, rows[i].key);
    }

    /* The key and the GUID are hashed as one stream: agree with hashing the concatenation,
     * for keys that put the seam at every offset within a block. */
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    int agree = 1;
    for (size_t len = 0; len <= 130; len++) {
        char key[131], joined[131 + sizeof guid], want[29], got[29];
        uint8_t d[20];
        for (size_t j = 0; j < len; j++)
            key[j] = (char)('A' + (j * 5 + len) % 26);
        memcpy(joined, key, len);
        memcpy(joined + len, guid, sizeof guid - 1);
        lv_sha1(joined, len + sizeof guid - 1, d);
        lv_base64_encode(d, sizeof d, want);
        lv_websocket_accept(key, len, got);
        if (strcmp(want, got) != 0) {
            agree = 0;
            fprintf(stderr, "accept mismatch at key length %zu\n", len);
        }
    }
    CHECK(agree);
}

static void test_base64_rfc4648(void) {
    static const struct {
        const char *raw, *enc;
    } rows[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},      {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char enc[16];
        uint8_t dec[16];
        size_t rn = strlen(rows[i].raw), en = strlen(rows[i].enc);
        CHECK_ROW(lv_base64_encode((const uint8_t *)rows[i].raw, rn, enc) == en, rows[i].enc);
        CHECK_ROW(strcmp(enc, rows[i].enc) == 0, rows[i].enc);
        CHECK_ROW(lv_base64_decode(rows[i].enc, en, dec, sizeof dec) == (long)rn, rows[i].enc);
        CHECK_ROW(memcmp(dec, rows[i].raw, rn) == 0, rows[i].enc);
    }
    /* Every alphabet character, both ends of each range. */
    const uint8_t all[] = {0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8B, 0x30, 0xD3,
                           0x8F, 0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9B, 0x71,
                           0xD7, 0x9F, 0x82, 0x18, 0xA3, 0x92, 0x59, 0xA7, 0xA2, 0x9A, 0xAB,
                           0xB2, 0xDB, 0xAF, 0xC3, 0x1C, 0xB3, 0xD3, 0x5D, 0xB7, 0xE3, 0x9E,
                           0xBB, 0xF3, 0xDF, 0xBF};
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char enc[80];
    CHECK_INT(lv_base64_encode(all, sizeof all, enc), 64);
    CHECK(strcmp(enc, alphabet) == 0);
}

static void test_base64_round_trip(void) {
    uint32_t x = 2463534242u; /* xorshift32, fixed seed */
    int ok = 1;
    for (size_t n = 0; n <= 40; n++) {
        uint8_t raw[40], dec[40];
        char enc[4 * 14 + 1 + 8];
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            raw[i] = (uint8_t)(i % 5 == 0 ? 0xFF : i % 5 == 1 ? 0x00 : x >> 24);
        }
        size_t want_len = 4 * ((n + 2) / 3);
        memset(enc, '#', sizeof enc);
        size_t elen = lv_base64_encode(raw, n, enc);
        ok &= elen == want_len && enc[elen] == '\0' && enc[elen + 1] == '#';
        ok &= lv_base64_decode(enc, elen, dec, n) == (long)n; /* cap exactly n fits */
        ok &= memcmp(dec, raw, n) == 0;
        if (n > 0)
            ok &= lv_base64_decode(enc, elen, dec, n - 1) == -1; /* one short does not */
        if (!ok) {
            fprintf(stderr, "round trip failed at length %zu\n", n);
            break;
        }
    }
    CHECK(ok);
}

static void test_base64_decode_table(void) {
    static const struct {
        const char *in;
        long want; /* decoded length, or -1 */
    } rows[] = {
        {"", 0},
        {"Zm9v", 3},
        {"Zg==", 1},
        {"Zm8=", 2},
        {"Zh==", 1}, /* non-zero leftover bits: accepted, the bits are dropped */
        {"Zm9=", 2},
        {"abc", -1},       /* not a multiple of 4 */
        {"Zm9", -1},
        {"Zm", -1},
        {"Zm9vYg", -1},
        {"Zm9vYg=", -1},
        {"Zm9vY", -1},
        {"ab=c", -1},      /* '=' before data */
        {"a===", -1},      /* at most two '=' */
        {"====", -1},
        {"=Zm9", -1},
        {"Zg==Zg==", -1},  /* padding in a middle quad */
        {"Zm9v====", -1},
        {"Zm9v!", -1},
        {"Zm9!", -1},
        {"Zm 9", -1},      /* whitespace */
        {"Zm9v\n", -1},
        {"Zm9\t", -1},
        {"Zm-v", -1},      /* URL-safe alphabet is not standard base64 */
        {"Zm_v", -1},
        {"Zm9\x80", -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint8_t out[16];
        long got = lv_base64_decode(rows[i].in, strlen(rows[i].in), out, sizeof out);
        CHECK_ROW(got == rows[i].want, rows[i].in);
    }
    /* A NUL inside the counted length is an invalid character, not an end. */
    uint8_t out[4];
    CHECK_INT(lv_base64_decode("Zm9\0", 4, out, sizeof out), -1);
    CHECK_INT(lv_base64_decode("Zg=\0", 4, out, sizeof out), -1);
    CHECK_INT(lv_base64_decode(NULL, 0, out, 0), 0);
    /* Only n characters count, even when valid base64 follows them. */
    CHECK_INT(lv_base64_decode("ZmZm", 2, out, sizeof out), -1);
    CHECK_INT(lv_base64_decode("Zm9vZm9v", 6, out, sizeof out), -1);
    CHECK_INT(lv_base64_decode("Zm9vZm9v", 4, out, sizeof out), 3);
}

/* A Sec-WebSocket-Key must be 24 characters decoding to 16 bytes (RFC 6455 4.2.1). */
static void test_key_decodes_to_16(void) {
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    uint8_t out[16];
    CHECK_INT(strlen(key), 24);
    CHECK_INT(lv_base64_decode(key, 24, out, sizeof out), 16);
    CHECK(memcmp(out, "the sample nonce", 16) == 0);
    CHECK_INT(lv_base64_decode(key, 24, out, 15), -1);
}

int main(void) {
    RUN(test_sha1_fips);
    RUN(test_sha1_padding);
    RUN(test_websocket_accept);
    RUN(test_base64_rfc4648);
    RUN(test_base64_round_trip);
    RUN(test_base64_decode_table);
    RUN(test_key_decodes_to_16);
    return check_finish("sha1");
}
