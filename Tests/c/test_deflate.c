/* Tests for permessage-deflate (CLive/src/deflate.c): the negotiation answer for offers as
 * clients make them (and malformed ones), the inflater's bound on a zip bomb (it stops
 * after max + 1 bytes and never holds more), corrupt streams, context takeover, and the
 * compressed twin of a frame (built once, kept, and inflating back to the payload). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "core.h"
#include "deflate.h"

static size_t negotiate(const char *const *values, size_t n, unsigned bits, lv_pmd *pmd,
                        char *resp, size_t cap) {
    clive_header h[4];
    for (size_t i = 0; i < n; i++)
        h[i] = (clive_header){"Sec-WebSocket-Extensions", 24, values[i], strlen(values[i])};
    return lv_pmd_negotiate(h, n, bits, pmd, resp, cap);
}

typedef struct row {
    const char *offer;
    unsigned client_bits; /* the server's deflate_client_window_bits */
    const char *answer;   /* NULL: declined */
    int server_bits, takeover, client_window;
} row;

static const row ROWS[] = {
    {"permessage-deflate; client_max_window_bits", 0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    {"permessage-deflate", 0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    {"PerMessage-Deflate ; Server_No_Context_Takeover", 0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    {"permessage-deflate; server_max_window_bits=9", 0,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover", 9, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"15\"", 0,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=15; client_no_context_takeover", 15, 0, 0},
    {"permessage-deflate; server_max_window_bits=8", 0, NULL, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=8, permessage-deflate", 0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    {"permessage-deflate; server_max_window_bits=08", 0, NULL, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"1", 0, NULL, 0, 0, 0},
    {"permessage-deflate; client_max_window_bits=16", 0, NULL, 0, 0, 0},
    {"permessage-deflate; client_max_window_bits=8", 0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, NULL, 0, 0, 0},
    {"permessage-deflate; bogus", 0, NULL, 0, 0, 0},
    {"permessage-deflate x", 0, NULL, 0, 0, 0},
    {"deflate-frame, permessage-deflate;client_max_window_bits=10", 0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    /* a server that allows client context takeover bounds the client's window */
    {"permessage-deflate; client_max_window_bits", 10,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10", 15, 1, 10},
    {"permessage-deflate; client_max_window_bits=9", 12,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=9", 15, 1, 9},
    {"permessage-deflate; client_max_window_bits=8", 12,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=9", 15, 1, 9},
    {"permessage-deflate", 12, "permessage-deflate; server_no_context_takeover", 15, 1, 15},
    {"permessage-deflate; client_no_context_takeover", 12,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 0, 0},
    {"", 0, NULL, 0, 0, 0},
};

static void test_negotiation(void) {
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        const row *r = &ROWS[i];
        char resp[256], want[256];
        lv_pmd pmd;
        size_t n = negotiate(&r->offer, 1, r->client_bits, &pmd, resp, sizeof resp);
        if (r->answer == NULL) {
            CHECK_ROW(n == 0 && !pmd.on, r->offer);
            continue;
        }
        snprintf(want, sizeof want, "Sec-WebSocket-Extensions: %s\r\n", r->answer);
        CHECK_ROW(n == strlen(want) && memcmp(resp, want, n) == 0, r->offer);
        if (n != strlen(want)) fprintf(stderr, "  got %.*s", (int)n, resp);
        CHECK_ROW(pmd.on && pmd.server_bits == r->server_bits, r->offer);
        CHECK_ROW(pmd.client_takeover == r->takeover, r->offer);
        if (r->takeover) CHECK_ROW(pmd.client_bits == r->client_window, r->offer);
    }
    /* several headers: the first acceptable offer over all of them */
    const char *two[] = {"permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_max_window_bits=12"};
    char resp[256];
    lv_pmd pmd;
    CHECK(negotiate(two, 2, 0, &pmd, resp, sizeof resp) > 0 && pmd.server_bits == 12);
    /* too small a buffer declines rather than writing half a header */
    const char *one[] = {"permessage-deflate"};
    CHECK_INT(negotiate(one, 1, 0, &pmd, resp, 20), 0);
    CHECK(!pmd.on);
}

static size_t deflate_raw(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int bits) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (uint8_t *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_SYNC_FLUSH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len - 4; /* without 00 00 ff ff */
}

static void test_inflate_bounds(void) {
    lv_zloop *z = NULL;
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    uint8_t *bomb = malloc(1u << 20);
    size_t blen = deflate_raw(zeros, big, bomb, 1u << 20, 15);
    CHECK(blen < 100000);
    uint8_t *out;
    size_t n;
    /* 64 MiB of zeros against a 1 MiB limit: 1009, and the buffer never passed max + 1 */
    CHECK_INT(lv_inflate_message(&z, NULL, 15, bomb, blen, 1u << 20, &out, &n), LV_CLOSE_TOO_BIG);
    CHECK(lv_zloop_buffered(z) <= (1u << 20) + 1);
    lv_inflate_trim(z);
    CHECK_INT(lv_zloop_buffered(z), 0);
    /* exactly max inflates; the stream was reset after the failure */
    size_t exact = deflate_raw(zeros, 1u << 20, bomb, 1u << 20, 15);
    CHECK_INT(lv_inflate_message(&z, NULL, 15, bomb, exact, 1u << 20, &out, &n), 0);
    CHECK_INT(n, 1u << 20);
    CHECK(n == (1u << 20) && memcmp(out, zeros, n) == 0);
    /* corrupt */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    CHECK_INT(lv_inflate_message(&z, NULL, 15, junk, sizeof junk, 1000, &out, &n), LV_CLOSE_INVALID_DATA);
    /* empty message: an empty stored block or nothing at all */
    CHECK_INT(lv_inflate_message(&z, NULL, 15, (const uint8_t *)"", 0, 1000, &out, &n), 0);
    CHECK_INT(n, 0);
    const uint8_t empty_final[] = {0x03, 0x00}; /* a final empty fixed block */
    CHECK_INT(lv_inflate_message(&z, NULL, 15, empty_final, 2, 1000, &out, &n), 0);
    CHECK_INT(n, 0);
    /* then an ordinary message on the same (reset) loop stream */
    const char *hello = "hello hello hello hello";
    size_t hl = deflate_raw((const uint8_t *)hello, strlen(hello), bomb, 1000, 15);
    CHECK_INT(lv_inflate_message(&z, NULL, 15, bomb, hl, 1000, &out, &n), 0);
    CHECK(n == strlen(hello) && memcmp(out, hello, n) == 0);
    free(zeros);
    free(bomb);
    lv_zloop_free(z);
}

static void test_context_takeover(void) {
    lv_zloop *z = NULL;
    struct z_stream_s *own = NULL;
    z_stream c;
    memset(&c, 0, sizeof c);
    deflateInit2(&c, 6, Z_DEFLATED, -10, 8, Z_DEFAULT_STRATEGY);
    const char *msg = "{\"type\":\"patch\",\"path\":\"/items/3\",\"value\":\"the same words again\"}";
    for (int i = 0; i < 5; i++) {
        uint8_t buf[512];
        c.next_in = (uint8_t *)msg;
        c.avail_in = (uInt)strlen(msg);
        c.next_out = buf;
        c.avail_out = sizeof buf;
        deflate(&c, Z_SYNC_FLUSH);
        size_t len = sizeof buf - c.avail_out - 4;
        uint8_t *out;
        size_t n;
        CHECK_INT(lv_inflate_message(&z, &own, 10, buf, len, 1000, &out, &n), 0);
        CHECK(n == strlen(msg) && memcmp(out, msg, n) == 0);
        CHECK(own != NULL);
    }
    deflateEnd(&c);
    lv_inflate_free(own);
    lv_zloop_free(z);
}

static void test_twin(void) {
    lv_zloop *z = NULL;
    uint64_t made = 0;
    char text[600];
    for (size_t i = 0; i < sizeof text; i++) text[i] = "abcabcabd"[i % 9];
    clive_frame *f = clive_frame_new(0, text, sizeof text);
    clive_frame *t = lv_deflate_twin(&z, f, 128, 6, &made);
    CHECK(t != NULL && t->len < f->len / 2);
    CHECK(t && (t->bytes[0] == (0x80 | 0x40 | LV_OP_TEXT)));
    CHECK(lv_deflate_twin(&z, f, 128, 6, &made) == t); /* built once, kept on the frame */
    CHECK_INT(made, 1);
    if (t) {
        uint8_t *out;
        size_t n;
        CHECK_INT(lv_inflate_message(&z, NULL, 15, t->bytes + t->head_len, t->len - t->head_len,
                                     1000, &out, &n), 0);
        CHECK(n == sizeof text && memcmp(out, text, n) == 0);
    }
    clive_frame *small = clive_frame_new(1, text, 100);
    CHECK(lv_deflate_twin(&z, small, 128, 6, &made) == NULL); /* under the threshold */
    uint8_t noise[300];
    srand(7);
    for (size_t i = 0; i < sizeof noise; i++) noise[i] = (uint8_t)rand();
    clive_frame *rnd = clive_frame_new(1, noise, sizeof noise);
    CHECK(lv_deflate_twin(&z, rnd, 128, 6, &made) == NULL); /* does not shrink */
    CHECK(lv_deflate_twin(&z, rnd, 128, 6, &made) == NULL); /* and that is remembered */
    CHECK_INT(made, 2); /* the text and the noise, each once; nothing for the small one */
    clive_frame *ctl = lv_frame_control(LV_OP_PING, text, 125);
    CHECK(lv_deflate_twin(&z, ctl, 1, 6, &made) == NULL); /* never a control frame */
    clive_frame_release(f); /* frees the twin with it (LeakSanitizer checks) */
    clive_frame_release(small);
    clive_frame_release(rnd);
    clive_frame_release(ctl);
    lv_zloop_free(z);
}

int main(void) {
    RUN(test_negotiation);
    RUN(test_inflate_bounds);
    RUN(test_context_takeover);
    RUN(test_twin);
    return check_finish("deflate");
}
