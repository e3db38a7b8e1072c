/* Tests for the incremental UTF-8 validator (CLive/src/utf8.c): a table of hand-made
 * cases, each also fed split at every boundary and byte by byte; exhaustive 1- and 2-byte
 * inputs and 200k random short strings against a reference decoder written here; and long
 * mixed strings at every alignment, for the 8-byte ASCII fast path. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "utf8.h"

/* ---- reference: decode code points the slow, obvious way -------------------------- */

/* Sequence length by the lead byte's high bits alone (RFC 3629 section 3); 0 when the
 * byte cannot start one. Minimality and range are checked after decoding. */
static int ref_seq_len(uint8_t b) {
    if (b < 0x80)
        return 1;
    if (b < 0xC0)
        return 0;
    if (b < 0xE0)
        return 2;
    if (b < 0xF0)
        return 3;
    if (b < 0xF8)
        return 4;
    return 0;
}

static int ref_scalar_ok(uint32_t cp, int len) {
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len]) /* overlong */
        return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) /* surrogate */
        return 0;
    return cp <= 0x10FFFF;
}

/* Whether s[0..n) is a complete, valid UTF-8 text. */
static int ref_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int len = ref_seq_len(s[i]);
        if (len == 0 || n - i < (size_t)len)
            return 0;
        uint32_t cp = len == 1 ? s[i] : (uint32_t)(s[i] & (0x7F >> len));
        for (int j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3Fu);
        }
        if (!ref_scalar_ok(cp, len))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

static int ref_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every proper prefix (1 to 3 bytes) of the encoding of some scalar value, found by
 * encoding all of them: "can this tail still become valid" without any cleverness. */
static uint8_t prefix1[256];
static uint8_t prefix2[1 << 16];
static uint8_t prefix3[1 << 21]; /* bitmap over 24-bit keys */

static void ref_build_prefixes(void) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        uint8_t e[4];
        int len = ref_encode(cp, e);
        if (len > 1)
            prefix1[e[0]] = 1;
        if (len > 2)
            prefix2[e[0] << 8 | e[1]] = 1;
        if (len > 3) {
            uint32_t k = (uint32_t)e[0] << 16 | (uint32_t)e[1] << 8 | e[2];
            prefix3[k >> 3] |= (uint8_t)(1u << (k & 7));
        }
    }
}

static int ref_is_proper_prefix(const uint8_t *t, size_t k) {
    if (k == 1)
        return prefix1[t[0]];
    if (k == 2)
        return prefix2[t[0] << 8 | t[1]];
    uint32_t key = (uint32_t)t[0] << 16 | (uint32_t)t[1] << 8 | t[2];
    return (prefix3[key >> 3] >> (key & 7)) & 1;
}

/* Whether s[0..n) can be extended into a valid text: whole characters, then at most one
 * incomplete tail that is a proper prefix of some encoding. */
static int ref_possible(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int len = ref_seq_len(s[i]);
        if (len == 0)
            return 0;
        if (n - i < (size_t)len)
            return ref_is_proper_prefix(s + i, n - i);
        if (!ref_valid(s + i, (size_t)len))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

/* Index of the first byte after which s cannot become valid, or -1. Quadratic: for
 * short strings only. */
static long ref_first_bad(const uint8_t *s, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (!ref_possible(s, k + 1))
            return (long)k;
    return -1;
}

/* ---- helpers ------------------------------------------------------------------------ */

static uint32_t feed_bytewise(const uint8_t *s, size_t n, long *reject_at) {
    uint32_t st = LV_UTF8_ACCEPT;
    *reject_at = -1;
    for (size_t i = 0; i < n; i++) {
        st = lv_utf8_feed(st, s + i, 1);
        if (st == LV_UTF8_REJECT && *reject_at < 0)
            *reject_at = (long)i;
    }
    return st;
}

/* Bulk sections count their own mismatches, print the first few, then CHECK the total. */
static int mismatches;

static void mismatch(const char *what, const uint8_t *s, size_t n, long detail) {
    if (++mismatches > 10)
        return;
    fprintf(stderr, "mismatch (%s, %ld):", what, detail);
    for (size_t i = 0; i < n && i < 24; i++)
        fprintf(stderr, " %02X", s[i]);
    fprintf(stderr, "%s\n", n > 24 ? " ..." : "");
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t xorshift(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* ---- table ---------------------------------------------------------------------------- */

enum { OK, TRUNC, BAD }; /* valid; valid prefix cut mid-character; invalid */

typedef struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    int expect;
    long reject_at; /* BAD: index of the first impossible byte; else -1 */
} utf8_case;

#define ROW(name, lit, expect, at) {name, lit, sizeof(lit) - 1, expect, at}

static const utf8_case cases[] = {
    ROW("empty", "", OK, -1),
    ROW("ascii", "Hello, world! 0123456789 ~", OK, -1),
    ROW("nul and del", "a\0b\x7F", OK, -1),
    ROW("2-byte U+0080", "\xC2\x80", OK, -1),
    ROW("2-byte U+00A9", "\xC2\xA9", OK, -1),
    ROW("2-byte U+07FF", "\xDF\xBF", OK, -1),
    ROW("3-byte U+0800", "\xE0\xA0\x80", OK, -1),
    ROW("3-byte U+20AC", "\xE2\x82\xAC", OK, -1),
    ROW("3-byte U+D7FF", "\xED\x9F\xBF", OK, -1),
    ROW("3-byte U+E000", "\xEE\x80\x80", OK, -1),
    ROW("U+FFFE", "\xEF\xBF\xBE", OK, -1),
    ROW("U+FFFF", "\xEF\xBF\xBF", OK, -1),
    ROW("4-byte U+10000", "\xF0\x90\x80\x80", OK, -1),
    ROW("4-byte U+1F600", "\xF0\x9F\x98\x80", OK, -1),
    ROW("4-byte U+FFFFF", "\xF3\xBF\xBF\xBF", OK, -1),
    ROW("4-byte U+100000", "\xF4\x80\x80\x80", OK, -1),
    ROW("U+10FFFF max", "\xF4\x8F\xBF\xBF", OK, -1),
    ROW("kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", OK, -1),
    ROW("mixed", "a\xC2\xA9" "b\xE2\x82\xAC" "c\xF0\x9F\x98\x80" "d", OK, -1),
    ROW("hello kosme", "Hello-\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5@\xC3\xA4\xC3\xB6"
        "\xC3\xBC\xC3\xA4\xC3\xB6\xC3\xBC-UTF-8!!", OK, -1),

    ROW("trunc 2 of 2", "\xC2", TRUNC, -1),
    ROW("trunc 3 after 1", "\xE2", TRUNC, -1),
    ROW("trunc 3 after 2", "\xE2\x82", TRUNC, -1),
    ROW("trunc 4 after 1", "\xF0", TRUNC, -1),
    ROW("trunc 4 after 3", "\xF0\x9F\x98", TRUNC, -1),
    ROW("trunc max after 3", "\xF4\x8F\xBF", TRUNC, -1),
    ROW("trunc ED 9F", "\xED\x9F", TRUNC, -1),
    ROW("trunc after ascii", "abc\xE2\x82", TRUNC, -1),
    ROW("trunc kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE", TRUNC, -1),

    ROW("overlong / 2", "\xC0\xAF", BAD, 0),
    ROW("overlong / 3", "\xE0\x80\xAF", BAD, 1),
    ROW("overlong / 4", "\xF0\x80\x80\xAF", BAD, 1),
    ROW("overlong NUL 2", "\xC0\x80", BAD, 0),
    ROW("overlong NUL 3", "\xE0\x80\x80", BAD, 1),
    ROW("overlong NUL 4", "\xF0\x80\x80\x80", BAD, 1),
    ROW("overlong max 2", "\xC1\xBF", BAD, 0),
    ROW("overlong max 3", "\xE0\x9F\xBF", BAD, 1),
    ROW("overlong max 4", "\xF0\x8F\xBF\xBF", BAD, 1),
    ROW("surrogate U+D800", "\xED\xA0\x80", BAD, 1),
    ROW("surrogate U+DFFF", "\xED\xBF\xBF", BAD, 1),
    ROW("surrogate pair", "\xED\xA0\x80\xED\xB0\x80", BAD, 1),
    ROW("above max F4 90", "\xF4\x90\x80\x80", BAD, 1),
    ROW("above max F4 BF", "\xF4\xBF\xBF\xBF", BAD, 1),
    ROW("F5 lead", "\xF5\x80\x80\x80", BAD, 0),
    ROW("F7 lead", "\xF7\xBF\xBF\xBF", BAD, 0),
    ROW("5-byte F8", "\xF8\x88\x80\x80\x80", BAD, 0),
    ROW("6-byte FC", "\xFC\x84\x80\x80\x80\x80", BAD, 0),
    ROW("FE", "\xFE", BAD, 0),
    ROW("FF", "\xFF", BAD, 0),
    ROW("C0 alone", "\xC0", BAD, 0),
    ROW("C1 alone", "\xC1", BAD, 0),
    ROW("lone 80", "\x80", BAD, 0),
    ROW("lone BF", "\xBF", BAD, 0),
    ROW("continuation in ascii", "ab\x80" "cd", BAD, 2),
    ROW("extra continuation", "\xC2\xA9\xA9", BAD, 2),
    ROW("2-byte then ascii", "\xC2" "A", BAD, 1),
    ROW("3-byte then ascii", "\xE2\x82" "A", BAD, 2),
    ROW("4-byte then ascii", "\xF0\x9F\x98" "A", BAD, 3),
    ROW("lead then lead", "\xC2\xC2\xA9", BAD, 1),
    ROW("kosme-edited surrogate (6.3)", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"
        "\xED\xA0\x80" "edited", BAD, 12),
    ROW("kosme-edited above max (6.4)", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"
        "\xF4\x90\x80\x80" "edited", BAD, 12),
    ROW("bad after 16 ascii", "0123456789abcdef\xC0\xAF", BAD, 16),
};

static void test_table(void) {
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const utf8_case *tc = &cases[c];
        const uint8_t *s = (const uint8_t *)tc->bytes;
        size_t n = tc->len;
        uint32_t whole = lv_utf8_feed(LV_UTF8_ACCEPT, s, n);

        if (tc->expect == OK)
            CHECK_ROW(whole == LV_UTF8_ACCEPT, tc->name);
        else if (tc->expect == BAD)
            CHECK_ROW(whole == LV_UTF8_REJECT, tc->name);
        else
            CHECK_ROW(whole != LV_UTF8_ACCEPT && whole != LV_UTF8_REJECT, tc->name);
        CHECK_ROW(lv_utf8_valid(s, n) == (tc->expect == OK), tc->name);
        /* The table's own expectations agree with the reference. */
        CHECK_ROW(ref_valid(s, n) == (tc->expect == OK), tc->name);
        CHECK_ROW(ref_first_bad(s, n) == tc->reject_at, tc->name);

        /* Any split into two calls ends in the very same state. */
        int splits_ok = 1;
        for (size_t k = 0; k <= n; k++) {
            uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, s, k);
            if (lv_utf8_feed(st, s + k, n - k) != whole)
                splits_ok = 0;
        }
        CHECK_ROW(splits_ok, tc->name);

        long at;
        CHECK_ROW(feed_bytewise(s, n, &at) == whole, tc->name);
        CHECK_ROW(at == tc->reject_at, tc->name);

        /* Fail fast: the prefix before the bad byte is still possible, with it it is not. */
        if (tc->expect == BAD) {
            size_t k = (size_t)tc->reject_at;
            CHECK_ROW(lv_utf8_feed(LV_UTF8_ACCEPT, s, k) != LV_UTF8_REJECT, tc->name);
            CHECK_ROW(lv_utf8_feed(LV_UTF8_ACCEPT, s, k + 1) == LV_UTF8_REJECT, tc->name);
        }
    }
}

static void test_sticky(void) {
    const uint8_t ok[] = "fine text";
    CHECK_INT(lv_utf8_feed(LV_UTF8_REJECT, NULL, 0), LV_UTF8_REJECT);
    CHECK_INT(lv_utf8_feed(LV_UTF8_REJECT, ok, sizeof ok - 1), LV_UTF8_REJECT);
    CHECK_INT(lv_utf8_feed(LV_UTF8_ACCEPT, NULL, 0), LV_UTF8_ACCEPT);
    CHECK(lv_utf8_valid(NULL, 0));
    uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, (const uint8_t *)"\xE2", 1);
    CHECK_INT(lv_utf8_feed(st, NULL, 0), st); /* an empty call keeps a partial state */
}

/* Every 1-byte and 2-byte input against the reference. */
static void test_exhaustive_short(void) {
    mismatches = 0;
    for (int b = 0; b < 256; b++) {
        uint8_t s[1] = {(uint8_t)b};
        uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, s, 1);
        int want = b < 0x80 ? OK : ref_possible(s, 1) ? TRUNC : BAD;
        int got = st == LV_UTF8_ACCEPT ? OK : st == LV_UTF8_REJECT ? BAD : TRUNC;
        if (got != want)
            mismatch("1 byte", s, 1, got);
        /* F5..FF, C0, C1 and continuations can never start a character. */
        int never = (b >= 0x80 && b <= 0xC1) || b >= 0xF5;
        if (never != (st == LV_UTF8_REJECT))
            mismatch("1 byte never", s, 1, never);
    }
    for (int v = 0; v < 1 << 16; v++) {
        uint8_t s[2] = {(uint8_t)(v >> 8), (uint8_t)v};
        long at;
        uint32_t st = feed_bytewise(s, 2, &at);
        if ((st == LV_UTF8_ACCEPT) != ref_valid(s, 2))
            mismatch("2 bytes valid", s, 2, (long)st);
        if (at != ref_first_bad(s, 2))
            mismatch("2 bytes reject index", s, 2, at);
        if (lv_utf8_feed(LV_UTF8_ACCEPT, s, 2) != st)
            mismatch("2 bytes one call", s, 2, (long)st);
    }
    CHECK_INT(mismatches, 0);
}

/* A byte biased toward the values where the rules change. */
static uint8_t random_byte(void) {
    static const uint8_t edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF};
    uint32_t r = xorshift() % 10;
    if (r < 4)
        return edges[xorshift() % sizeof edges];
    if (r < 7)
        return (uint8_t)(0x80 | (xorshift() & 0x3F));
    return (uint8_t)xorshift();
}

/* A scalar value, with each encoded length about equally likely. */
static uint32_t random_scalar(void) {
    for (;;) {
        uint32_t cp;
        switch (xorshift() % 4) {
        case 0: cp = xorshift() % 0x80; break;
        case 1: cp = 0x80 + xorshift() % (0x800 - 0x80); break;
        case 2: cp = 0x800 + xorshift() % (0x10000 - 0x800); break;
        default: cp = 0x10000 + xorshift() % (0x110000 - 0x10000); break;
        }
        if (cp < 0xD800 || cp > 0xDFFF)
            return cp;
    }
}

static void test_random(void) {
    enum { ROUNDS = 200000, MAXLEN = 14 };
    long seen[3] = {0, 0, 0};
    mismatches = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint8_t s[MAXLEN + 4];
        size_t n = 0, want_len = xorshift() % (MAXLEN + 1);
        if (r & 1) {
            /* Random bytes. */
            for (; n < want_len; n++)
                s[n] = random_byte();
        } else {
            /* Valid characters, then sometimes one byte changed or the tail cut. */
            while (n < want_len)
                n += (size_t)ref_encode(random_scalar(), s + n);
            uint32_t m = xorshift() % 4;
            if (m == 0 && n > 0)
                s[xorshift() % n] = random_byte();
            else if (m == 1 && n > 0)
                n -= 1 + xorshift() % (n < 3 ? n : 3);
        }

        int valid = ref_valid(s, n);
        long bad = ref_first_bad(s, n);
        uint32_t whole = lv_utf8_feed(LV_UTF8_ACCEPT, s, n);
        seen[valid ? OK : bad >= 0 ? BAD : TRUNC]++;

        if ((whole == LV_UTF8_ACCEPT) != valid)
            mismatch("random valid", s, n, (long)whole);
        if ((whole == LV_UTF8_REJECT) != (bad >= 0))
            mismatch("random reject", s, n, bad);
        if (lv_utf8_valid(s, n) != valid)
            mismatch("random lv_utf8_valid", s, n, valid);
        long at;
        if (feed_bytewise(s, n, &at) != whole || at != bad)
            mismatch("random bytewise", s, n, at);
        for (size_t k = 0; k <= n; k++) {
            uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, s, k);
            if (lv_utf8_feed(st, s + k, n - k) != whole)
                mismatch("random split", s, n, (long)k);
        }
    }
    CHECK_INT(mismatches, 0);
    /* The generator must really produce all three outcomes in bulk. */
    CHECK(seen[OK] > ROUNDS / 10);
    CHECK(seen[TRUNC] > ROUNDS / 50);
    CHECK(seen[BAD] > ROUNDS / 10);
}

/* Long texts: ASCII runs of every length between multi-byte characters, at every
 * alignment of the buffer, so each character lands at each position of an 8-byte word. */
static const char *const multi[] = {"\xC2\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                    "\xF4\x8F\xBF\xBF", "\xCE\xBA", "\xEF\xBF\xBF"};

static size_t build_long(uint8_t *out, size_t cap) {
    size_t n = 0;
    for (size_t run = 0;; run++) {
        const char *m = multi[run % (sizeof multi / sizeof multi[0])];
        size_t mlen = strlen(m), alen = run % 37;
        if (n + alen + mlen > cap)
            return n;
        for (size_t j = 0; j < alen; j++, n++)
            out[n] = (uint8_t)(' ' + n % 95);
        memcpy(out + n, m, mlen);
        n += mlen;
    }
}

static void test_long(void) {
    enum { CAP = 3000 };
    static uint8_t text[CAP], buf[CAP + 64];
    size_t n = build_long(text, CAP);
    CHECK(n > CAP - 64);
    CHECK(ref_valid(text, n));

    /* Error sequences, and how many bytes into each the first impossible byte is. */
    static const struct {
        const char *seq;
        size_t bad;
    } errors[] = {{"\xC0\xAF", 0}, {"\xED\xA0\x80", 1}, {"\xF4\x90\x80\x80", 1},
                  {"\x80", 0},     {"\xE2\x82" "A", 2}, {"\xF0\x9F\x98\xC2", 3}};

    mismatches = 0;
    for (size_t off = 0; off < 16; off++) {
        uint8_t *p = buf + off;
        memcpy(p, text, n);
        if (!lv_utf8_valid(p, n))
            mismatch("long valid", p, n, (long)off);
        /* Splits into two calls at every point, including mid-character. */
        for (size_t k = 0; k <= n; k++) {
            uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, p, k);
            if (st == LV_UTF8_REJECT || lv_utf8_feed(st, p + k, n - k) != LV_UTF8_ACCEPT)
                mismatch("long split", p, n, (long)k);
        }
        /* Cut mid-character at the end: a prefix, never ACCEPT nor REJECT. */
        for (size_t k = 1; k <= n; k++) {
            uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, p, k);
            int boundary = k == n || (p[k] & 0xC0) != 0x80;
            if (boundary != (st == LV_UTF8_ACCEPT) || st == LV_UTF8_REJECT)
                mismatch("long prefix", p, k, (long)k);
        }
        /* An error inserted at many places is found at exactly its byte. */
        for (size_t e = 0; e < sizeof errors / sizeof errors[0]; e++) {
            size_t elen = strlen(errors[e].seq);
            for (size_t at = 0; at + elen <= n; at += 7 + e) {
                if ((text[at] & 0xC0) == 0x80)
                    continue; /* only at character boundaries */
                memcpy(p, text, at);
                memcpy(p + at, errors[e].seq, elen);
                memcpy(p + at + elen, text + at, n - at - elen);
                size_t bad = at + errors[e].bad;
                if (lv_utf8_feed(LV_UTF8_ACCEPT, p, bad) == LV_UTF8_REJECT)
                    mismatch("long early reject", p, n, (long)bad);
                if (lv_utf8_feed(LV_UTF8_ACCEPT, p, bad + 1) != LV_UTF8_REJECT)
                    mismatch("long late reject", p, n, (long)bad);
                if (lv_utf8_valid(p, n))
                    mismatch("long accepted", p, n, (long)bad);
            }
        }
    }
    CHECK_INT(mismatches, 0);
}

/* Pure ASCII of every length up to 80 at every alignment, then one bad byte at each
 * position: the word loop and the byte tail must agree on where it is. */
static void test_ascii_fast_path(void) {
    static uint8_t buf[96 + 16];
    mismatches = 0;
    for (size_t off = 0; off < 16; off++) {
        uint8_t *p = buf + off;
        for (size_t len = 0; len <= 80; len++) {
            for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)('!' + (i * 7) % 90);
            if (!lv_utf8_valid(p, len))
                mismatch("ascii valid", p, len, (long)off);
            for (size_t bad = 0; bad < len; bad++) {
                uint8_t keep = p[bad];
                p[bad] = 0x80;
                if (lv_utf8_feed(LV_UTF8_ACCEPT, p, bad) != LV_UTF8_ACCEPT ||
                    lv_utf8_feed(LV_UTF8_ACCEPT, p, len) != LV_UTF8_REJECT)
                    mismatch("ascii bad byte", p, len, (long)bad);
                p[bad] = 0xC3; /* a lead: fine if followed by a continuation, else bad */
                uint32_t st = lv_utf8_feed(LV_UTF8_ACCEPT, p, bad + 1);
                if (st == LV_UTF8_ACCEPT || st == LV_UTF8_REJECT)
                    mismatch("ascii lead", p, bad + 1, (long)bad);
                if (bad + 1 < len && lv_utf8_valid(p, len))
                    mismatch("ascii lead then ascii", p, len, (long)bad);
                p[bad] = keep;
            }
        }
    }
    CHECK_INT(mismatches, 0);
}

int main(void) {
    ref_build_prefixes();
    RUN(test_table);
    RUN(test_sticky);
    RUN(test_exhaustive_short);
    RUN(test_random);
    RUN(test_long);
    RUN(test_ascii_fast_path);
    return check_finish("utf8");
}
