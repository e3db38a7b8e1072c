/* Incremental UTF-8 validation (RFC 3629 sections 3 and 4).
 *
 * State encoding. Besides LV_UTF8_ACCEPT (0) and LV_UTF8_REJECT (1), a state packs what
 * the rest of the current character must look like:
 *
 *     bits  0..7   continuation bytes still expected (1..3)
 *     bits  8..15  lowest allowed value of the NEXT byte
 *     bits 16..23  highest allowed value of the NEXT byte
 *
 * Only the second byte of a character ever has a range narrower than 80..BF (that is
 * where RFC 3629 rules out overlongs, surrogates and values above U+10FFFF), so every
 * later byte gets the full continuation range. The range bytes are never 0, so these
 * states cannot collide with ACCEPT or REJECT. Checking each byte against its exact range
 * is what rejects at the first impossible byte instead of at the end of the character. */
#include "utf8.h"

#include <string.h>

#define CONT_LO 0x80u
#define CONT_HI 0xBFu
#define HIGH_BITS 0x8080808080808080ull

#define EXPECT(need, lo, hi) (((uint32_t)(hi) << 16) | ((uint32_t)(lo) << 8) | (need))

#define S2 EXPECT(1, CONT_LO, CONT_HI)    /* C2..DF */
#define S3 EXPECT(2, CONT_LO, CONT_HI)    /* E1..EC, EE, EF */
#define S3_E0 EXPECT(2, 0xA0, CONT_HI)    /* E0 80..9F would be below U+0800 */
#define S3_ED EXPECT(2, CONT_LO, 0x9F)    /* ED A0..BF would be surrogates */
#define S4 EXPECT(3, CONT_LO, CONT_HI)    /* F1..F3 */
#define S4_F0 EXPECT(3, 0x90, CONT_HI)    /* F0 80..8F would be below U+10000 */
#define S4_F4 EXPECT(3, CONT_LO, 0x8F)    /* F4 90..BF would be above U+10FFFF */
#define RJ LV_UTF8_REJECT
#define X2(v) v, v
#define X4(v) X2(v), X2(v)
#define X8(v) X4(v), X4(v)
#define X16(v) X8(v), X8(v)

/* The state after each byte read at a character boundary. 80..BF continue nothing; C0
 * and C1 could only start overlongs; F5..FF could only start values above U+10FFFF. */
static const uint32_t lead_state[] = {
    X16(0), X16(0), X16(0), X16(0), X16(0), X16(0), X16(0), X16(0), /* 00..7F */
    X16(RJ), X16(RJ), X16(RJ), X16(RJ),                             /* 80..BF */
    X2(RJ), X2(S2), X4(S2), X8(S2), X16(S2),                        /* C0..DF */
    S3_E0, X8(S3), X4(S3), S3_ED, X2(S3),                           /* E0..EF */
    S4_F0, X2(S4), S4, S4_F4, X8(RJ), X2(RJ), RJ,                   /* F0..FF */
};
_Static_assert(sizeof lead_state == 256 * sizeof lead_state[0], "one entry per byte");

/* The state after byte b inside a character, in state s. */
static uint32_t cont_state(uint32_t s, uint8_t b) {
    uint32_t need = s & 0xFFu, lo = (s >> 8) & 0xFFu, hi = s >> 16;
    if (b < lo || b > hi)
        return LV_UTF8_REJECT;
    return need == 1 ? LV_UTF8_ACCEPT : EXPECT(need - 1, CONT_LO, CONT_HI);
}

/* Steps byte by byte through a character left open by an earlier call, or cut off by
 * the end of this one. */
static uint32_t step_open(uint32_t state, const uint8_t *bytes, size_t n, size_t *i) {
    while (*i < n && state != LV_UTF8_ACCEPT && state != LV_UTF8_REJECT)
        state = cont_state(state, bytes[(*i)++]);
    return state;
}

uint32_t lv_utf8_feed(uint32_t state, const uint8_t *bytes, size_t n) {
    size_t i = 0;
    if (state != LV_UTF8_ACCEPT) {
        state = step_open(state, bytes, n, &i);
        if (state != LV_UTF8_ACCEPT)
            return state; /* REJECT (sticky), or still open because the bytes ran out */
    }
    while (i < n) {
        /* At a boundary. Only try the word loads when this byte is ASCII: in non-Latin
         * text leads follow leads and the loads would fail every time. */
        if (bytes[i] < 0x80) {
            /* 16, then 8 bytes at a time; memcpy makes any alignment legal and compiles
             * to plain loads. */
            while (n - i >= 16) {
                uint64_t a, b;
                memcpy(&a, bytes + i, 8);
                memcpy(&b, bytes + i + 8, 8);
                if ((a | b) & HIGH_BITS)
                    break;
                i += 16;
            }
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, bytes + i, 8);
                if (w & HIGH_BITS)
                    break;
                i += 8;
            }
            /* The failed word test means a non-ASCII byte within 16, or we hit the end. */
            while (i < n && bytes[i] < 0x80)
                i++;
            if (i == n)
                break;
        }
        uint32_t s = lead_state[bytes[i++]];
        if (s == LV_UTF8_REJECT)
            return LV_UTF8_REJECT;
        uint32_t need = s & 0xFFu;
        if (n - i < need)
            return step_open(s, bytes, n, &i);
        /* The whole character is here: check it without going through the states. The
         * call's result is REJECT whichever of its bytes is found bad first. */
        uint32_t lo = (s >> 8) & 0xFFu, hi = s >> 16;
        if ((uint32_t)bytes[i] - lo > hi - lo) /* unsigned: below lo wraps to huge */
            return LV_UTF8_REJECT;
        for (uint32_t j = 1; j < need; j++)
            if ((bytes[i + j] & 0xC0u) != CONT_LO)
                return LV_UTF8_REJECT;
        i += need;
    }
    return LV_UTF8_ACCEPT;
}

int lv_utf8_valid(const uint8_t *bytes, size_t n) {
    return lv_utf8_feed(LV_UTF8_ACCEPT, bytes, n) == LV_UTF8_ACCEPT;
}
