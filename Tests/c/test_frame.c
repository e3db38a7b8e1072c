/* Tests for the RFC 6455 frame parser and writer (CLive/src/frame.c).
 *
 * Every stream is built from masked client frames, then fed whole, byte by byte and cut at
 * random points (fixed-seed xorshift), each time also with hooks that stop the parser on
 * every call and a caller that resumes; the messages and control frames the hooks see
 * must match a plain reassembly of what was sent, and errors must not depend on the cuts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "frame.h"
#include "utf8.h"

/* ---- growable byte buffer ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_byte(bytes *b, unsigned v) {
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void bytes_free(bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- fixed-seed xorshift, so any failure reproduces ---- */

static uint32_t rng = 0x2545F491u;

static uint32_t rnd(void) {
    uint32_t x = rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng = x;
}

/* ---- events: a complete data message or a control frame ---- */

typedef struct {
    int opcode;
    uint8_t *data;
    size_t len;
} event;

typedef struct {
    event *v;
    size_t n, cap;
} events;

static void ev_push(events *e, int opcode, const uint8_t *data, size_t len) {
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 8;
        e->v = realloc(e->v, e->cap * sizeof *e->v);
        if (!e->v)
            abort();
    }
    event *ev = &e->v[e->n++];
    ev->opcode = opcode;
    ev->len = len;
    ev->data = malloc(len ? len : 1);
    if (!ev->data)
        abort();
    if (len)
        memcpy(ev->data, data, len);
}

static void ev_free(events *e) {
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].data);
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* Whether two event lists match; describes the first difference. */
static int ev_same(const events *got, const events *want, const char *row) {
    if (got->n != want->n) {
        fprintf(stderr, "  [%s] %zu events, want %zu\n", row, got->n, want->n);
        return 0;
    }
    for (size_t i = 0; i < got->n; i++) {
        const event *g = &got->v[i], *w = &want->v[i];
        if (g->opcode != w->opcode || g->len != w->len || memcmp(g->data, w->data, g->len)) {
            fprintf(stderr, "  [%s] event %zu: opcode %d len %zu, want opcode %d len %zu\n", row,
                    i, g->opcode, g->len, w->opcode, w->len);
            return 0;
        }
    }
    return 1;
}

/* ---- stream builder: client frames plus the events a correct parser reports ---- */

typedef struct {
    bytes wire;
    events want;
    bytes cur; /* reference reassembly of the open message */
    int cur_op;
} stream;

static void stream_free(stream *s) {
    bytes_free(&s->wire);
    bytes_free(&s->cur);
    ev_free(&s->want);
}

/* Appends one client frame. rsv: the RSV bits as they sit in byte 0 (0x70 mask). form: 0
 * for the minimal length encoding, or 7, 16, 64 to force one. declared: the length in the
 * header, normally n; larger sends only the start of a frame. */
static void frame_ex(stream *s, int op, int fin, int rsv, int masked, int form, uint64_t declared,
                     const void *payload, size_t n) {
    const uint8_t *pl = payload;
    unsigned mbit = masked ? 0x80 : 0;
    put_byte(&s->wire, (fin ? 0x80u : 0) | (unsigned)rsv | (unsigned)op);
    if (!form)
        form = declared < 126 ? 7 : declared <= 0xFFFF ? 16 : 64;
    if (form == 7) {
        put_byte(&s->wire, mbit | (unsigned)declared);
    } else if (form == 16) {
        put_byte(&s->wire, mbit | 126);
        put_byte(&s->wire, (unsigned)(declared >> 8));
        put_byte(&s->wire, (unsigned)declared);
    } else {
        put_byte(&s->wire, mbit | 127);
        for (int i = 0; i < 8; i++)
            put_byte(&s->wire, (unsigned)(declared >> (56 - 8 * i)));
    }
    size_t at = s->wire.len;
    if (masked) {
        /* no zero key bytes, so a payload that was not unmasked shows */
        uint32_t r = rnd();
        uint8_t key[4] = {(uint8_t)(r | 1), (uint8_t)(r >> 8 | 2), (uint8_t)(r >> 16 | 4),
                          (uint8_t)(r >> 24 | 8)};
        put(&s->wire, key, 4);
        at += 4;
        put(&s->wire, pl, n);
        for (size_t j = 0; j < n; j++)
            s->wire.p[at + j] ^= key[j & 3];
    } else {
        put(&s->wire, pl, n);
    }
    /* the reference: only meaningful for valid streams */
    if (op >= LV_OP_CLOSE) {
        ev_push(&s->want, op, pl, n);
    } else {
        if (op != LV_OP_CONT) {
            s->cur_op = op;
            s->cur.len = 0;
        }
        put(&s->cur, pl, n);
        if (fin) {
            ev_push(&s->want, s->cur_op, s->cur.p, s->cur.len);
            s->cur.len = 0;
        }
    }
}

/* 1 while the client-role tests run: frame() then builds unmasked (server) frames and
 * check_stream parses in the client role. */
static int role_client;

static void frame(stream *s, int op, int fin, const void *payload, size_t n) {
    frame_ex(s, op, fin, 0, !role_client, 0, n, payload, n);
}

static void frame_str(stream *s, int op, int fin, const char *str) {
    frame(s, op, fin, str, strlen(str));
}

/* ---- recorder: the hooks ---- */

typedef struct {
    events got;
    bytes cur;
    int cur_op, in_msg;
    int bad;             /* contract violations seen by the hooks */
    long calls;
    int stop_every;      /* every hook asks to stop */
    int stop_on_message; /* stop when a data message completes */
    int ctl_in_place;    /* control payloads must point into the caller's buffer */
    const uint8_t *base; /* the caller's buffer */
    size_t base_len;
    lv_frame_parser *parser;
} recorder;

static int inside(const void *p, size_t n, const void *base, size_t base_len) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return a >= b && a + n <= b + base_len;
}

static int rec_data(void *user, int opcode, uint8_t *data, size_t len, int last) {
    recorder *r = user;
    r->calls++;
    if (!len && !last)
        r->bad++;
    if (opcode != LV_OP_TEXT && opcode != LV_OP_BINARY)
        r->bad++;
    if (len && !inside(data, len, r->base, r->base_len)) /* data is never copied */
        r->bad++;
    if (!r->in_msg) {
        r->in_msg = 1;
        r->cur_op = opcode;
        r->cur.len = 0;
    } else if (opcode != r->cur_op) {
        r->bad++;
    }
    put(&r->cur, data, len);
    if (last) {
        ev_push(&r->got, r->cur_op, r->cur.p, r->cur.len);
        r->in_msg = 0;
        if (r->stop_on_message)
            return 1;
    }
    return r->stop_every;
}

static int rec_control(void *user, int opcode, uint8_t *data, size_t len) {
    recorder *r = user;
    r->calls++;
    if (len > 125)
        r->bad++;
    if (opcode != LV_OP_PING && opcode != LV_OP_PONG && opcode != LV_OP_CLOSE)
        r->bad++;
    if (len) {
        int in_buf = inside(data, len, r->base, r->base_len);
        if (!in_buf && (r->parser->ctl == NULL || !inside(data, len, r->parser->ctl, 125)))
            r->bad++;
        if (r->ctl_in_place && !in_buf)
            r->bad++;
    }
    ev_push(&r->got, opcode, data, len);
    return r->stop_every;
}

static const lv_frame_hooks hooks = {rec_data, rec_control};

static void rec_init(recorder *r, lv_frame_parser *p, const uint8_t *base, size_t n) {
    memset(r, 0, sizeof *r);
    r->parser = p;
    r->base = base;
    r->base_len = n;
}

static void rec_free(recorder *r) {
    lv_frame_parser_free(r->parser);
    ev_free(&r->got);
    bytes_free(&r->cur);
}

/* ---- feeding ---- */

enum { WHOLE, BYTEWISE, RANDOM };

static size_t pick(int mode, size_t left) {
    if (mode == WHOLE)
        return left;
    if (mode == BYTEWISE)
        return 1;
    uint32_t x = rnd(), c;
    switch (x & 3) {
    case 0: /* tiny cuts land inside headers */
        c = 1 + (x >> 2) % 3;
        break;
    case 1:
        c = 1 + (x >> 2) % 16;
        break;
    case 2:
        c = 1 + (x >> 2) % 300;
        break;
    default:
        c = 1 + (uint32_t)((x >> 2) % left);
        break;
    }
    return c < left ? c : left;
}

/* Feeds buf[0..len) cut per mode, resuming after every stop. Returns the final result. */
static int feed(lv_frame_parser *p, uint8_t *buf, size_t len, int mode, recorder *r) {
    size_t off = 0;
    while (off < len) {
        size_t end = off + pick(mode, len - off);
        while (off < end) {
            size_t used = (size_t)-1;
            int rc = lv_frame_parse(p, buf + off, end - off, &used, &hooks, r);
            if (rc == LV_FRAME_STOPPED) {
                if (used == 0 || used > end - off) {
                    r->bad++;
                    return rc;
                }
                off += used;
                continue;
            }
            if (rc)
                return rc;
            if (used != end - off)
                r->bad++;
            off = end;
        }
    }
    return 0;
}

/* Runs a stream in every mode and checks the result (want: 0 or the close code). iters:
 * random cuttings per pass; a negative count also skips the byte-by-byte runs (for
 * streams of megabytes whose byte-by-byte runs another check already made). */
static void check_stream(const char *name, const stream *s, uint64_t max_message,
                         uint32_t max_fragments, int want, int iters) {
    int bytewise = iters >= 0;
    if (iters < 0)
        iters = -iters;
    static const char *mode_names[] = {"whole", "bytewise", "random"};
    int failed_before = check_failed;
    uint8_t *buf = malloc(s->wire.len ? s->wire.len : 1);
    if (!buf)
        abort();
    for (int stop = 0; stop < 2; stop++) {
        for (int run = 0; run < 2 + iters; run++) {
            int mode = run < 2 ? run : RANDOM;
            if (mode == BYTEWISE && !bytewise)
                continue;
            char row[200];
            snprintf(row, sizeof row, "%s, %s%s", name, mode_names[mode], stop ? ", stops" : "");
            memcpy(buf, s->wire.p, s->wire.len); /* the parser unmasks in place */
            lv_frame_parser p;
            lv_frame_parser_init(&p, max_message, max_fragments);
            if (role_client)
                lv_frame_parser_client(&p);
            recorder r;
            rec_init(&r, &p, buf, s->wire.len);
            r.stop_every = stop;
            r.ctl_in_place = mode == WHOLE;
            int rc = feed(&p, buf, s->wire.len, mode, &r);
            CHECK_ROW(rc == want, row);
            CHECK_ROW(r.bad == 0, row);
            if (want == 0) {
                CHECK_ROW(ev_same(&r.got, &s->want, row), row);
                CHECK_ROW(!r.in_msg, row);
                /* a split control frame's buffer goes once the frame is complete */
                CHECK_ROW(p.ctl == NULL && p.ctl_len == 0, row);
            } else {
                /* sticky: same code, nothing consumed, no hook called */
                long calls = r.calls;
                size_t used = 99;
                uint8_t ping[6] = {0x89, 0x80, 1, 2, 3, 4};
                CHECK_ROW(lv_frame_parse(&p, ping, sizeof ping, &used, &hooks, &r) == want, row);
                CHECK_ROW(used == 0 && r.calls == calls && p.failed == want, row);
            }
            rec_free(&r);
            if (check_failed != failed_before) /* one report per row is enough */
                goto done;
        }
    }
done:
    free(buf);
}

/* ---- table: every rule, from frame descriptions ---- */

typedef struct {
    int used, op, fin, rsv, unmasked, form;
    const char *pl;
    int pl_len; /* -1: strlen(pl) */
    int has_declared;
    uint64_t declared;
} fdesc;

/* a masked frame with minimal length */
#define F(op_, fin_, pl_) {.used = 1, .op = (op_), .fin = (fin_), .pl = (pl_), .pl_len = -1}
/* the same with an explicit payload length (embedded NULs) */
#define FB(op_, fin_, pl_, n_) {.used = 1, .op = (op_), .fin = (fin_), .pl = (pl_), .pl_len = (n_)}
/* RSV bits, unmasked, forced length form */
#define FX(op_, fin_, rsv_, unm_, form_, pl_)                                                \
    {.used = 1, .op = (op_), .fin = (fin_), .rsv = (rsv_), .unmasked = (unm_), .form = (form_), \
     .pl = (pl_), .pl_len = -1}
/* a header claiming `decl_` bytes, followed by only pl_ */
#define FH(op_, fin_, form_, decl_, pl_)                                                     \
    {.used = 1, .op = (op_), .fin = (fin_), .form = (form_), .pl = (pl_), .pl_len = -1,         \
     .has_declared = 1, .declared = (decl_)}

typedef struct {
    const char *name;
    int want;
    uint64_t max_message;
    uint32_t max_fragments;
    fdesc f[6];
} row;

enum { T = LV_OP_TEXT, B = LV_OP_BINARY, C = LV_OP_CONT };
enum { PING = LV_OP_PING, PONG = LV_OP_PONG, CLOSE = LV_OP_CLOSE };

static const row rows[] = {
    /* header rules */
    {"unmasked text", 1002, 0, 0, {FX(T, 1, 0, 1, 0, "hi")}},
    {"unmasked ping", 1002, 0, 0, {FX(PING, 1, 0, 1, 0, "")}},
    {"unmasked after a valid frame", 1002, 0, 0, {F(T, 1, "ok"), FX(B, 1, 0, 1, 0, "x")}},
    {"rsv1", 1002, 0, 0, {FX(T, 1, 0x40, 0, 0, "hi")}},
    {"rsv2", 1002, 0, 0, {FX(T, 1, 0x20, 0, 0, "hi")}},
    {"rsv3", 1002, 0, 0, {FX(T, 1, 0x10, 0, 0, "hi")}},
    {"rsv1 on ping", 1002, 0, 0, {FX(PING, 1, 0x40, 0, 0, "")}},
    {"rsv3 on continuation", 1002, 0, 0, {F(B, 0, "a"), FX(C, 1, 0x10, 0, 0, "b")}},
    {"opcode 3", 1002, 0, 0, {F(3, 1, "x")}},
    {"opcode 4", 1002, 0, 0, {F(4, 1, "x")}},
    {"opcode 5", 1002, 0, 0, {F(5, 1, "x")}},
    {"opcode 6", 1002, 0, 0, {F(6, 1, "x")}},
    {"opcode 7", 1002, 0, 0, {F(7, 1, "x")}},
    {"opcode 0xB", 1002, 0, 0, {F(0xB, 1, "")}},
    {"opcode 0xC", 1002, 0, 0, {F(0xC, 1, "")}},
    {"opcode 0xD", 1002, 0, 0, {F(0xD, 1, "")}},
    {"opcode 0xE", 1002, 0, 0, {F(0xE, 1, "")}},
    {"opcode 0xF", 1002, 0, 0, {F(0xF, 1, "")}},
    {"ping fin=0", 1002, 0, 0, {F(PING, 0, "p")}},
    {"close fin=0", 1002, 0, 0, {F(CLOSE, 0, "")}},
    {"ping 126 bytes", 1002, 0, 0, {FH(PING, 1, 0, 126, "")}},
    {"close 126 bytes", 1002, 0, 0, {FH(CLOSE, 1, 0, 126, "")}},
    {"pong 64-bit length", 1002, 0, 0, {FH(PONG, 1, 64, 70000, "")}},
    {"ping 16-bit form carrying 3", 1002, 0, 0, {FX(PING, 1, 0, 0, 16, "abc")}},
    {"continuation without start", 1002, 0, 0, {F(C, 1, "x")}},
    {"continuation fin=0 without start", 1002, 0, 0, {F(C, 0, "")}},
    {"continuation after message end", 1002, 0, 0, {F(T, 1, "a"), F(C, 1, "b")}},
    {"text inside open text", 1002, 0, 0, {F(T, 0, "a"), F(T, 1, "b")}},
    {"binary inside open text", 1002, 0, 0, {F(T, 0, "a"), F(B, 1, "b")}},
    {"text inside open binary", 1002, 0, 0, {F(B, 0, "a"), F(PING, 1, ""), F(T, 0, "b")}},
    {"64-bit msb set", 1002, 0, 0, {FH(B, 1, 64, 1ull << 63, "")}},
    {"64-bit all ones", 1002, 0, 0, {FH(B, 1, 64, UINT64_MAX, "")}},
    {"16-bit carrying 3", 1002, 0, 0, {FX(B, 1, 0, 0, 16, "abc")}},
    {"16-bit carrying 125", 1002, 0, 0, {FH(B, 1, 16, 125, "")}},
    {"16-bit carrying 0", 1002, 0, 0, {FX(T, 1, 0, 0, 16, "")}},
    {"64-bit carrying 3", 1002, 0, 0, {FX(B, 1, 0, 0, 64, "abc")}},
    {"64-bit carrying 126", 1002, 0, 0, {FH(T, 1, 64, 126, "")}},
    {"64-bit carrying 65535", 1002, 0, 0, {FH(B, 1, 64, 65535, "")}},
    /* close payloads */
    {"close 1-byte payload", 1002, 0, 0, {FB(CLOSE, 1, "\x03", 1)}},
    {"close reason 0xFF", 1002, 0, 0, {FB(CLOSE, 1, "\x03\xE8\xFF", 3)}},
    {"close reason truncated", 1002, 0, 0, {FB(CLOSE, 1, "\x03\xE8" "ab\xC3", 5)}},
    {"close reason surrogate", 1002, 0, 0, {FB(CLOSE, 1, "\x03\xE8\xED\xA0\x80", 5)}},
    {"close valid reason", 0, 0, 0, {FB(CLOSE, 1, "\x03\xE8\xC3\xA9t\xC3\xA9", 7)}},
    {"close code only", 0, 0, 0, {FB(CLOSE, 1, "\x03\xE9", 2)}},
    {"close empty", 0, 0, 0, {F(CLOSE, 1, "")}},
    {"close inside a message", 0, 0, 0, {F(T, 0, "a"), FB(CLOSE, 1, "\x03\xE8", 2), F(C, 1, "b")}},
    /* limits */
    {"max_message single frame", 1009, 10, 0, {F(T, 1, "0123456789A")}},
    {"max_message exact", 0, 10, 0, {F(T, 1, "0123456789")}},
    {"max_message header only", 1009, 1000, 0, {FH(B, 1, 0, 1 << 20, "")}},
    {"max_message 64-bit length", 1009, 1000, 0, {FH(B, 1, 0, 1ull << 62, "")}},
    {"max_message via fragments", 1009, 10, 0, {F(T, 0, "012345"), F(C, 1, "6789A")}},
    {"max_message fragments exact, pings not counted", 0, 10, 0,
     {F(T, 0, "01234"), F(PING, 1, "a long ping payload"), F(C, 0, "567"), F(C, 1, "89")}},
    {"max_message is per message", 0, 10, 0, {F(T, 1, "0123456789"), F(B, 1, "0123456789")}},
    {"too many fragments", 1009, 0, 3, {F(T, 0, "a"), F(C, 0, "b"), F(C, 0, "c"), F(C, 1, "d")}},
    {"too many empty fragments", 1009, 0, 3, {F(B, 0, ""), F(C, 0, ""), F(C, 0, ""), F(C, 1, "")}},
    {"max_fragments exact, pings not counted", 0, 0, 3,
     {F(T, 0, "a"), F(PING, 1, ""), F(C, 0, ""), F(PONG, 1, "x"), F(C, 1, "c")}},
    {"max_fragments is per message", 0, 0, 2,
     {F(T, 0, "a"), F(C, 1, "b"), F(B, 0, "c"), F(C, 1, "d")}},
    {"max_fragments 1 allows a whole message", 0, 0, 1, {F(T, 1, "abc"), F(B, 1, "")}},
    {"max_fragments 1 refuses two", 1009, 0, 1, {F(T, 0, "abc"), F(C, 1, "")}},
    /* UTF-8 */
    {"text 0xFF", 1007, 0, 0, {F(T, 1, "\xFF")}},
    {"text lone continuation", 1007, 0, 0, {F(T, 1, "ab\x80")}},
    {"text overlong", 1007, 0, 0, {F(T, 1, "\xC0\xAF")}},
    {"text surrogate", 1007, 0, 0, {F(T, 1, "a\xED\xA0\x80")}},
    {"text above U+10FFFF", 1007, 0, 0, {F(T, 1, "\xF4\x90\x80\x80")}},
    {"text bad sequence split across fragments", 1007, 0, 0, {F(T, 0, "a\xE2\x82"), F(C, 1, "A")}},
    {"text overlong split across fragments", 1007, 0, 0,
     {F(T, 0, "\xF0"), F(PING, 1, ""), F(C, 1, "\x8F\x80\x80")}},
    {"text ends inside a character", 1007, 0, 0, {F(T, 1, "a\xE2\x82")}},
    {"text fragments end inside a character", 1007, 0, 0,
     {F(T, 0, "ab"), F(C, 1, "\xF0\x9F\x98")}},
    {"text last fragment empty inside a character", 1007, 0, 0, {F(T, 0, "\xC3"), F(C, 1, "")}},
    {"text fail fast", 1007, 0, 0, {FH(T, 1, 0, 100, "ab\xFF")}},
    {"text fail fast in a fragment", 1007, 0, 0, {F(T, 0, "ok"), FH(C, 0, 0, 50, "\xC0")}},
    {"text fail fast in a long frame", 1007, 0, 0, {FH(T, 1, 0, 70000, "\xED\xBF")}},
    {"binary is not UTF-8 checked", 0, 0, 0, {FB(B, 1, "\xFF\xC0\xED\xA0\x80", 5)}},
};

static void build_row(stream *s, const row *rw) {
    for (int i = 0; i < 6 && rw->f[i].used; i++) {
        const fdesc *f = &rw->f[i];
        size_t n = f->pl_len < 0 ? strlen(f->pl) : (size_t)f->pl_len;
        uint64_t decl = f->has_declared ? f->declared : n;
        frame_ex(s, f->op, f->fin, f->rsv, !f->unmasked, f->form, decl, f->pl, n);
    }
}

static void test_rows(void) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        stream s = {0};
        build_row(&s, &rows[i]);
        check_stream(rows[i].name, &s, rows[i].max_message, rows[i].max_fragments,
                     rows[i].want, 100);
        stream_free(&s);
    }
}

/* Close codes on the wire (RFC 6455 7.4). */
static void test_close_codes(void) {
    static const struct {
        unsigned code;
        int valid;
    } codes[] = {
        {0, 0},    {999, 0},  {1004, 0}, {1005, 0}, {1006, 0},  {1015, 0},  {1016, 0},
        {2999, 0}, {5000, 0}, {65535, 0}, {1000, 1}, {1001, 1}, {1002, 1}, {1003, 1},
        {1007, 1}, {1011, 1}, {1014, 1}, {3000, 1}, {4999, 1}, {4008, 1},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "close code %u", codes[i].code);
        CHECK_ROW(lv_close_code_valid(codes[i].code) == codes[i].valid, name);
        uint8_t pl[4] = {(uint8_t)(codes[i].code >> 8), (uint8_t)codes[i].code, 'o', 'k'};
        stream s = {0};
        frame(&s, LV_OP_CLOSE, 1, pl, sizeof pl);
        check_stream(name, &s, 0, 0, codes[i].valid ? 0 : 1002, 20);
        stream_free(&s);
    }
    /* the whole range against the RFC's list */
    int bad = 0;
    for (unsigned c = 0; c < 70000; c++) {
        int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
                   (c >= 3000 && c <= 4999);
        bad += lv_close_code_valid(c) != want;
    }
    CHECK_INT(bad, 0);
}

/* ---- valid streams ---- */

/* Valid UTF-8 of exactly n bytes, with characters of every width. */
static void gen_text(uint8_t *out, size_t n) {
    static const char *chars[] = {"a", "Z", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                  "\xED\x9F\xBF", "\xF4\x8F\xBF\xBF"};
    size_t i = 0;
    while (i < n) {
        const char *c = chars[rnd() % 8];
        size_t l = strlen(c);
        if (l > n - i) {
            c = "x";
            l = 1;
        }
        memcpy(out + i, c, l);
        i += l;
    }
}

static void test_sizes(void) {
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 100000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        uint8_t *text = malloc(n + 1), *bin = malloc(n + 1);
        if (!text || !bin)
            abort();
        gen_text(text, n);
        for (size_t i = 0; i < n; i++)
            bin[i] = (uint8_t)rnd();
        stream s = {0};
        frame(&s, LV_OP_TEXT, 1, text, n);
        frame(&s, LV_OP_BINARY, 1, bin, n);
        frame_str(&s, LV_OP_PING, 1, "after");
        frame(&s, LV_OP_CLOSE, 1, "\x03\xE8" "bye", 5);
        char name[64];
        snprintf(name, sizeof name, "text+binary of %zu bytes", n);
        check_stream(name, &s, 0, 0, 0, n <= 126 ? 300 : 10);
        stream_free(&s);
        free(text);
        free(bin);
    }
}

static void test_fragments(void) {
    stream s = {0};
    /* a fragmented text with control frames between its fragments */
    frame_str(&s, LV_OP_TEXT, 0, "Hello, ");
    frame_str(&s, LV_OP_PING, 1, "are you there?");
    frame_str(&s, LV_OP_CONT, 0, "w\xC3\xB6");
    frame_str(&s, LV_OP_PONG, 1, "");
    frame_str(&s, LV_OP_CONT, 1, "rld");
    /* a fragmented binary with a long fragment */
    uint8_t big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    frame(&s, LV_OP_BINARY, 0, big, 100);
    frame(&s, LV_OP_CONT, 0, big + 100, 200);
    uint8_t ping125[125];
    memset(ping125, 'p', sizeof ping125);
    frame(&s, LV_OP_PING, 1, ping125, sizeof ping125);
    frame(&s, LV_OP_CONT, 1, "", 0);
    check_stream("fragments with pings between", &s, 0, 0, 0, 300);
    stream_free(&s);

    /* characters of 2, 3 and 4 bytes split at every point across fragments */
    static const char *chars[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    for (int c = 0; c < 3; c++) {
        size_t l = strlen(chars[c]);
        for (size_t cut = 1; cut < l; cut++) {
            stream u = {0};
            frame(&u, LV_OP_TEXT, 0, chars[c], cut);
            frame_str(&u, LV_OP_PING, 1, "mid-char");
            frame(&u, LV_OP_CONT, 0, "", 0);
            frame(&u, LV_OP_CONT, 1, chars[c] + cut, l - cut);
            /* and one byte per fragment */
            for (size_t j = 0; j < l; j++)
                frame(&u, j ? LV_OP_CONT : LV_OP_TEXT, j == l - 1, chars[c] + j, 1);
            char name[128];
            snprintf(name, sizeof name, "%zu-byte character cut after %zu", l, cut);
            check_stream(name, &u, 0, 0, 0, 200);
            stream_free(&u);
        }
    }

    /* empty frames and empty fragments */
    stream e = {0};
    frame_str(&e, LV_OP_TEXT, 1, "");
    frame_str(&e, LV_OP_BINARY, 0, "");
    frame_str(&e, LV_OP_CONT, 1, "");
    frame_str(&e, LV_OP_TEXT, 0, "");
    frame_str(&e, LV_OP_CONT, 0, "");
    frame_str(&e, LV_OP_CONT, 0, "abc");
    frame_str(&e, LV_OP_PING, 1, "");
    frame_str(&e, LV_OP_CONT, 0, "");
    frame_str(&e, LV_OP_CONT, 1, "");
    frame_str(&e, LV_OP_PONG, 1, "");
    frame_str(&e, LV_OP_CLOSE, 1, "");
    check_stream("empty frames and fragments", &e, 0, 0, 0, 300);
    stream_free(&e);

    /* forced length encodings that are still minimal */
    stream f = {0};
    uint8_t *pl = calloc(65536, 1);
    if (!pl)
        abort();
    frame_ex(&f, LV_OP_BINARY, 1, 0, 1, 16, 126, pl, 126);
    frame_ex(&f, LV_OP_BINARY, 1, 0, 1, 64, 65536, pl, 65536);
    frame_ex(&f, LV_OP_TEXT, 1, 0, 1, 7, 125, pl, 125);
    check_stream("boundary length encodings", &f, 0, 0, 0, 10);
    stream_free(&f);
    free(pl);
}

/* ---- hooks that stop ---- */

static void test_stop(void) {
    stream s = {0};
    frame_str(&s, LV_OP_TEXT, 1, "hello");
    frame_str(&s, LV_OP_PING, 1, "p");
    frame_str(&s, LV_OP_BINARY, 0, "ab");
    frame_str(&s, LV_OP_CONT, 1, "cd");
    uint8_t *buf = malloc(s.wire.len);
    if (!buf)
        abort();
    memcpy(buf, s.wire.p, s.wire.len);
    lv_frame_parser p;
    lv_frame_parser_init(&p, 0, 0);
    recorder r;
    rec_init(&r, &p, buf, s.wire.len);
    r.stop_on_message = 1;

    size_t used = 0;
    int rc = lv_frame_parse(&p, buf, s.wire.len, &used, &hooks, &r);
    CHECK_INT(rc, LV_FRAME_STOPPED);
    CHECK_INT(used, 6 + 5); /* through the first message's frame */
    CHECK_INT(r.got.n, 1);
    size_t off = used;
    rc = lv_frame_parse(&p, buf + off, s.wire.len - off, &used, &hooks, &r);
    CHECK_INT(rc, LV_FRAME_STOPPED); /* the second message ends the buffer */
    CHECK_INT(off + used, s.wire.len);
    rc = lv_frame_parse(&p, buf + s.wire.len, 0, &used, &hooks, &r);
    CHECK_INT(rc, 0);
    CHECK_INT(used, 0);
    CHECK(ev_same(&r.got, &s.want, "stop on message"));
    CHECK_INT(r.bad, 0);
    rec_free(&r);

    /* a stop inside a frame's payload resumes mid-frame */
    memcpy(buf, s.wire.p, s.wire.len);
    lv_frame_parser_init(&p, 0, 0);
    rec_init(&r, &p, buf, s.wire.len);
    r.stop_every = 1;
    rc = lv_frame_parse(&p, buf, 8, &used, &hooks, &r); /* header and "he" */
    CHECK_INT(rc, LV_FRAME_STOPPED);
    CHECK_INT(used, 8);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.cur.len, 2);
    r.stop_every = 0;
    rc = lv_frame_parse(&p, buf + 8, s.wire.len - 8, &used, &hooks, &r);
    CHECK_INT(rc, 0);
    CHECK_INT(used, s.wire.len - 8);
    CHECK(ev_same(&r.got, &s.want, "stop mid-frame"));
    CHECK_INT(r.bad, 0);
    rec_free(&r);
    free(buf);
    stream_free(&s);
}

/* ---- sticky failure ---- */

static void test_sticky(void) {
    stream s = {0};
    frame_str(&s, LV_OP_TEXT, 1, "\xFF");
    frame_str(&s, LV_OP_PING, 1, "never seen");
    lv_frame_parser p;
    lv_frame_parser_init(&p, 0, 0);
    recorder r;
    rec_init(&r, &p, s.wire.p, s.wire.len);
    size_t used = 0;
    CHECK_INT(lv_frame_parse(&p, s.wire.p, 7, &used, &hooks, &r), 1007);
    CHECK_INT(p.failed, 1007);
    for (int i = 0; i < 3; i++) {
        used = 5;
        CHECK_INT(lv_frame_parse(&p, s.wire.p + 7, s.wire.len - 7, &used, &hooks, &r), 1007);
        CHECK_INT(used, 0);
    }
    CHECK_INT(lv_frame_parse(&p, NULL, 0, NULL, &hooks, &r), 1007);
    CHECK_INT(r.calls, 0);
    rec_free(&r);
    stream_free(&s);
}

/* ---- lv_mask and lv_frame_header ---- */

static void test_mask(void) {
    static const uint8_t key[4] = {0x12, 0xA5, 0x7E, 0xC3};
    uint64_t store[24]; /* 8-byte aligned, so offsets 0-7 cover every alignment */
    uint8_t *buf = (uint8_t *)store, ref[sizeof store];
    int bad = 0;
    for (unsigned pos = 0; pos < 4; pos++) {
        for (size_t off = 0; off < 8; off++) {
            for (size_t n = 0; n <= 100; n++) {
                for (size_t i = 0; i < sizeof store; i++)
                    buf[i] = (uint8_t)(i * 31 + n + pos);
                memcpy(ref, buf, sizeof store);
                for (size_t j = 0; j < n; j++)
                    ref[off + j] ^= key[(pos + j) & 3];
                unsigned next = lv_mask(buf + off, n, key, pos);
                if (next != ((pos + n) & 3) || memcmp(buf, ref, sizeof store)) {
                    if (!bad)
                        fprintf(stderr, "  lv_mask pos %u off %zu n %zu wrong\n", pos, off, n);
                    bad++;
                }
            }
        }
    }
    CHECK_INT(bad, 0);
    /* chained calls equal one call */
    uint8_t a[64], b[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = (uint8_t)i;
    lv_mask(a, 64, key, 1);
    unsigned pos = 1;
    for (size_t at = 0, step = 1; at < 64; at += step, step++)
        pos = lv_mask(b + at, at + step <= 64 ? step : 64 - at, key, pos);
    CHECK(memcmp(a, b, 64) == 0);
}

static void test_header(void) {
    static const struct {
        uint64_t len;
        size_t n;
        uint8_t bytes[10];
    } cases[] = {
        {0, 2, {0x82, 0}},
        {125, 2, {0x82, 125}},
        {126, 4, {0x82, 126, 0, 126}},
        {65535, 4, {0x82, 126, 0xFF, 0xFF}},
        {65536, 10, {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
        {1ull << 32, 10, {0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[10];
        memset(out, 0xEE, sizeof out);
        char name[64];
        snprintf(name, sizeof name, "header for %llu", (unsigned long long)cases[i].len);
        size_t n = lv_frame_header(out, LV_OP_BINARY, cases[i].len);
        CHECK_ROW(n == cases[i].n && memcmp(out, cases[i].bytes, n) == 0, name);
    }
    uint8_t out[10];
    CHECK_INT(lv_frame_header(out, LV_OP_TEXT, 5), 2);
    CHECK(out[0] == 0x81 && out[1] == 5);
    CHECK_INT(lv_frame_header(out, LV_OP_CLOSE, 2), 2);
    CHECK(out[0] == 0x88 && out[1] == 2);
    CHECK_INT(lv_frame_header(out, LV_OP_PONG, 0), 2);
    CHECK(out[0] == 0x8A && out[1] == 0);
}

/* ---- the default limits against a large, finely fragmented message ---- */

static void test_defaults(void) {
    enum { FRAG = 64, COUNT = 65536 }; /* 4 MiB */
    const uint64_t max_message = 16u << 20;
    const uint32_t max_fragments = 131072;
    uint8_t *text = malloc((size_t)FRAG * COUNT);
    if (!text)
        abort();
    gen_text(text, (size_t)FRAG * COUNT);
    stream s = {0};
    for (size_t i = 0; i < COUNT; i++)
        frame(&s, i ? LV_OP_CONT : LV_OP_TEXT, i == COUNT - 1, text + i * FRAG, FRAG);
    CHECK_INT(s.want.n, 1);
    CHECK_INT(s.want.v[0].len, (size_t)FRAG * COUNT);
    check_stream("4 MiB in 65536 fragments, default limits", &s, max_message, max_fragments, 0,
                 2);
    check_stream("4 MiB in 65536 fragments, 65535 allowed", &s, max_message, COUNT - 1, 1009,
                 -1);
    check_stream("4 MiB in 65536 fragments, 4 MiB - 1 allowed", &s, (size_t)FRAG * COUNT - 1,
                 max_fragments, 1009, -1);
    stream_free(&s);
    free(text);
}

/* ---- the client role: unmasked server frames are the norm, a masked one is 1002 ---- */

static void test_client_role(void) {
    role_client = 1;
    uint8_t *big = malloc(70000);
    if (!big)
        abort();
    gen_text(big, 70000);
    stream s = {0};
    frame_str(&s, LV_OP_TEXT, 1, "hello");
    frame_str(&s, LV_OP_BINARY, 0, "frag");
    frame_str(&s, LV_OP_PING, 1, "in between");
    frame_str(&s, LV_OP_CONT, 1, "ment");
    frame(&s, LV_OP_BINARY, 1, big, 300); /* 16-bit length */
    frame(&s, LV_OP_TEXT, 1, big, 70000);  /* 64-bit length */
    frame(&s, LV_OP_BINARY, 1, "", 0);
    frame_str(&s, LV_OP_CLOSE, 1, "\x03\xE8" "bye");
    check_stream("client: server frames", &s, 0, 0, 0, 20);
    stream_free(&s);

    struct {
        const char *name;
        int want, masked, op;
        const char *pl;
        uint64_t max_message;
    } bad[] = {
        {"client: masked text", 1002, 1, LV_OP_TEXT, "hi", 0},
        {"client: masked ping", 1002, 1, LV_OP_PING, "", 0},
        {"client: masked close", 1002, 1, LV_OP_CLOSE, "\x03\xE8", 0},
        {"client: text not UTF-8", 1007, 0, LV_OP_TEXT, "\xC3\x28", 0},
        {"client: over max_message", 1009, 0, LV_OP_BINARY, "0123456789", 8},
        {"client: close code 1005", 1002, 0, LV_OP_CLOSE, "\x03\xED", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stream b = {0};
        frame_str(&b, LV_OP_TEXT, 1, "fine first");
        size_t n = strlen(bad[i].pl);
        frame_ex(&b, bad[i].op, 1, 0, bad[i].masked, 0, n, bad[i].pl, n);
        check_stream(bad[i].name, &b, bad[i].max_message, 0, bad[i].want, 10);
        stream_free(&b);
    }
    free(big);
    role_client = 0;
}

int main(void) {
    RUN(test_rows);
    RUN(test_close_codes);
    RUN(test_sizes);
    RUN(test_fragments);
    RUN(test_stop);
    RUN(test_sticky);
    RUN(test_mask);
    RUN(test_header);
    RUN(test_defaults);
    RUN(test_client_role);
    return check_finish("frame");
}
