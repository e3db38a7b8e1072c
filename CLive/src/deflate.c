/* permessage-deflate (RFC 7692): negotiation, bounded inflate, compress-once. See deflate.h. */
#include "deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core.h"
#include "frame.h"

/* --- negotiation ------------------------------------------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ows(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int is_tchar(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A token at the cursor, or an empty one. */
static size_t token(cursor *c, const char **start) {
    skip_ows(c);
    *start = c->p;
    while (c->p < c->end && is_tchar(*c->p)) c->p++;
    return (size_t)(c->p - *start);
}

static int token_is(const char *t, size_t n, const char *want) {
    return strlen(want) == n && strncasecmp(t, want, n) == 0;
}

/* A parameter value: a token or a quoted string of token characters (RFC 7692 7.1 lets
 * values be quoted, "10"). Returns 0 when malformed. */
static int value(cursor *c, const char **start, size_t *n) {
    skip_ows(c);
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        *start = c->p;
        while (c->p < c->end && is_tchar(*c->p)) c->p++;
        if (c->p >= c->end || *c->p != '"') return 0;
        *n = (size_t)(c->p - *start);
        c->p++;
        return *n > 0;
    }
    *n = token(c, start);
    return *n > 0;
}

/* Window bits 8-15 written as plain decimal (no sign, no leading zero). */
static int window_bits(const char *v, size_t n) {
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + v[1] - '0';
    return -1;
}

typedef struct offer {
    int server_nct, client_nct;
    int server_bits; /* 0: not given */
    int client_bits; /* 0: not given; -1: given without a value */
} offer;

/* Reads one extension's parameters up to the ',' that ends it (or the end). Returns 1 for
 * a well-formed permessage-deflate offer we could accept, 0 otherwise; either way the
 * cursor ends after the extension. */
static int read_offer(cursor *c, offer *o) {
    memset(o, 0, sizeof *o);
    const char *name;
    size_t n = token(c, &name);
    int ok = token_is(name, n, "permessage-deflate");
    int seen_server_nct = 0, seen_client_nct = 0, seen_sb = 0, seen_cb = 0;
    for (;;) {
        skip_ows(c);
        if (c->p >= c->end || *c->p == ',') break;
        if (*c->p != ';') {
            ok = 0; /* garbage: skip to the next extension */
            while (c->p < c->end && *c->p != ',') c->p++;
            break;
        }
        c->p++;
        const char *pn, *v = NULL;
        size_t pl = token(c, &pn), vl = 0;
        skip_ows(c);
        int has_value = 0;
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            if (!value(c, &v, &vl)) ok = 0;
            has_value = 1;
        }
        if (!ok) continue;
        if (token_is(pn, pl, "server_no_context_takeover")) {
            ok = !seen_server_nct++ && !has_value;
            o->server_nct = 1;
        } else if (token_is(pn, pl, "client_no_context_takeover")) {
            ok = !seen_client_nct++ && !has_value;
            o->client_nct = 1;
        } else if (token_is(pn, pl, "server_max_window_bits")) {
            /* 8 is valid, but zlib cannot make raw deflate with a 256-byte window */
            int b = has_value ? window_bits(v, vl) : -1;
            ok = !seen_sb++ && b >= 9;
            o->server_bits = b;
        } else if (token_is(pn, pl, "client_max_window_bits")) {
            int b = has_value ? window_bits(v, vl) : -1;
            ok = !seen_cb++ && (!has_value || b >= 8);
            o->client_bits = b;
        } else {
            ok = 0;
        }
    }
    if (c->p < c->end && *c->p == ',') c->p++;
    return ok;
}

static int put(char *out, size_t cap, size_t *at, const char *s) {
    size_t n = strlen(s);
    if (*at + n >= cap) return 0;
    memcpy(out + *at, s, n);
    *at += n;
    out[*at] = 0;
    return 1;
}

size_t lv_pmd_negotiate(const clive_header *headers, size_t count, unsigned client_window_bits,
                        lv_pmd *out, char *resp, size_t cap) {
    memset(out, 0, sizeof *out);
    for (size_t h = 0; h < count; h++) {
        if (!token_is(headers[h].name, headers[h].name_len, "sec-websocket-extensions")) continue;
        cursor c = {headers[h].value, headers[h].value + headers[h].value_len};
        while (c.p < c.end) {
            offer o;
            if (!read_offer(&c, &o)) continue;
            lv_pmd p = {.on = 1, .server_bits = (uint8_t)(o.server_bits > 0 ? o.server_bits : 15)};
            /* The client keeps its context only when we allow it and it did not give it
             * up itself; its window is then bounded when it let us say so. */
            if (client_window_bits && !o.client_nct) {
                p.client_takeover = 1;
                p.client_bits = 15;
                if (o.client_bits == -1 || (o.client_bits > 0 && (unsigned)o.client_bits > client_window_bits))
                    p.client_bits = (uint8_t)client_window_bits;
                else if (o.client_bits > 0)
                    p.client_bits = (uint8_t)o.client_bits;
                if (p.client_bits < 9) p.client_bits = 9; /* a smaller window inflates fine */
            }
            size_t at = 0;
            char num[48];
            int ok = put(resp, cap, &at, "Sec-WebSocket-Extensions: permessage-deflate; "
                                         "server_no_context_takeover");
            if (o.server_bits > 0) {
                snprintf(num, sizeof num, "; server_max_window_bits=%d", o.server_bits);
                ok = ok && put(resp, cap, &at, num);
            }
            if (!p.client_takeover) {
                ok = ok && put(resp, cap, &at, "; client_no_context_takeover");
            } else if (o.client_bits != 0) {
                snprintf(num, sizeof num, "; client_max_window_bits=%u", p.client_bits);
                ok = ok && put(resp, cap, &at, num);
            }
            ok = ok && put(resp, cap, &at, "\r\n");
            if (!ok) return 0;
            *out = p;
            return at;
        }
    }
    return 0;
}

/* --- per-loop streams -------------------------------------------------------------- */

struct lv_zloop {
    z_stream def, inf;
    int def_level; /* 0: def not initialised */
    int inf_ready;
    uint8_t *out; /* inflated message, then reused */
    size_t out_cap;
    uint8_t *scratch; /* compressed payload before it becomes a frame */
    size_t scratch_cap;
};

/* Buffers above this are given back after the message that needed them. */
#define KEEP_BYTES (256u << 10)

void lv_zloop_free(lv_zloop *z) {
    if (z == NULL) return;
    if (z->def_level) deflateEnd(&z->def);
    if (z->inf_ready) inflateEnd(&z->inf);
    free(z->out);
    free(z->scratch);
    free(z);
}

static lv_zloop *zloop(lv_zloop **z) {
    if (*z == NULL) *z = calloc(1, sizeof **z);
    return *z;
}

void lv_inflate_trim(lv_zloop *z) {
    if (z && z->out_cap > KEEP_BYTES) {
        free(z->out);
        z->out = NULL;
        z->out_cap = 0;
    }
}

size_t lv_zloop_buffered(const lv_zloop *z) { return z ? z->out_cap + z->scratch_cap : 0; }

void lv_inflate_free(struct z_stream_s *own) {
    if (own == NULL) return;
    inflateEnd(own);
    free(own);
}

int lv_inflate_message(lv_zloop **zp, struct z_stream_s **own, unsigned own_bits,
                       const uint8_t *in, size_t len, size_t max, uint8_t **out,
                       size_t *out_len) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    lv_zloop *z = zloop(zp);
    if (z == NULL) return LV_CLOSE_INTERNAL;
    z_stream *st;
    if (own) {
        if (*own == NULL) {
            z_stream *fresh = calloc(1, sizeof *fresh);
            if (fresh == NULL || inflateInit2(fresh, -(int)own_bits) != Z_OK) {
                free(fresh);
                return LV_CLOSE_INTERNAL;
            }
            *own = fresh;
        }
        st = *own;
    } else {
        if (!z->inf_ready) {
            if (inflateInit2(&z->inf, -15) != Z_OK) return LV_CLOSE_INTERNAL;
            z->inf_ready = 1;
        }
        st = &z->inf;
    }
    size_t produced = 0;
    int rc = 0;
    /* the message, then the 00 00 ff ff the sender stripped (RFC 7692 7.2.2) */
    const uint8_t *src[2] = {in, tail};
    size_t srclen[2] = {len, sizeof tail};
    for (int part = 0; part < 2 && rc == 0; part++) {
        st->next_in = (Bytef *)(uintptr_t)src[part];
        st->avail_in = (uInt)srclen[part];
        for (;;) {
            if (produced == z->out_cap) {
                /* grow, but never past max + 1: one byte over is enough to know */
                if (z->out_cap > max) {
                    rc = LV_CLOSE_TOO_BIG;
                    break;
                }
                size_t want = z->out_cap ? z->out_cap * 2 : 16384;
                if (want > max + 1) want = max + 1;
                uint8_t *p = realloc(z->out, want);
                if (p == NULL) {
                    rc = LV_CLOSE_INTERNAL;
                    break;
                }
                z->out = p;
                z->out_cap = want;
            }
            st->next_out = z->out + produced;
            st->avail_out = (uInt)(z->out_cap - produced);
            int zr = inflate(st, Z_SYNC_FLUSH);
            produced = z->out_cap - st->avail_out;
            if (produced > max) {
                rc = LV_CLOSE_TOO_BIG;
                break;
            }
            if (zr == Z_STREAM_END) {
                /* The client ended the stream with a final block: anything after it but
                 * our own tail is corrupt; the next message starts a new stream. */
                if (part == 0 && st->avail_in) rc = LV_CLOSE_INVALID_DATA;
                inflateReset(st);
                part = 2;
                break;
            }
            if (zr == Z_MEM_ERROR) {
                rc = LV_CLOSE_INTERNAL;
                break;
            }
            if (zr != Z_OK && zr != Z_BUF_ERROR) {
                rc = LV_CLOSE_INVALID_DATA;
                break;
            }
            if (st->avail_in == 0 && st->avail_out != 0) break; /* this part is consumed */
            if (zr == Z_BUF_ERROR && st->avail_out != 0) break;
        }
    }
    if (rc != 0 || !own) inflateReset(st);
    if (rc != 0) return rc;
    *out = z->out;
    *out_len = produced;
    return 0;
}

/* --- compress once ------------------------------------------------------------------ */

clive_frame *lv_deflate_twin(lv_zloop **zp, clive_frame *f, size_t min_size, int level,
                             uint64_t *compressions) {
    if (f->kind != LV_FRAME_DATA) return NULL;
    size_t plen = f->len - f->head_len;
    if (plen < min_size) return NULL;
    clive_frame *twin = atomic_load_explicit(&f->twin, memory_order_acquire);
    if (twin) return twin == LV_NO_TWIN ? NULL : twin;
    lv_zloop *z = zloop(zp);
    if (z == NULL) return NULL;
    if (z->def_level != level) {
        if (z->def_level) deflateEnd(&z->def);
        z->def_level = 0;
        if (deflateInit2(&z->def, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        z->def_level = level;
    }
    size_t bound = deflateBound(&z->def, (uLong)plen) + 16;
    if (bound > z->scratch_cap) {
        uint8_t *p = realloc(z->scratch, bound);
        if (p == NULL) return NULL;
        z->scratch = p;
        z->scratch_cap = bound;
    }
    z->def.next_in = f->bytes + f->head_len;
    z->def.avail_in = (uInt)plen;
    z->def.next_out = z->scratch;
    z->def.avail_out = (uInt)bound;
    int zr = deflate(&z->def, Z_SYNC_FLUSH);
    (*compressions)++;
    size_t clen = bound - z->def.avail_out;
    deflateReset(&z->def); /* no context takeover: the next message starts afresh */
    clive_frame *made = NULL;
    /* A sync flush ends with 00 00 ff ff, which the receiver puts back (RFC 7692 7.2.1). */
    if ((zr == Z_OK || zr == Z_BUF_ERROR) && z->def.avail_in == 0 && clen >= 4 &&
        clen - 4 < plen) {
        uint8_t head[10];
        int opcode = f->bytes[0] & 0x0F;
        size_t hl = lv_frame_header(head, opcode, clen - 4);
        head[0] |= 0x40; /* RSV1: this message is compressed */
        made = lv_frame_raw(head, hl, z->scratch, clen - 4);
        if (made) {
            made->kind = LV_FRAME_DEFLATED;
            made->head_len = (uint8_t)hl;
        }
    }
    if (z->scratch_cap > KEEP_BYTES) {
        free(z->scratch);
        z->scratch = NULL;
        z->scratch_cap = 0;
    }
    clive_frame *want = made ? made : LV_NO_TWIN, *expected = NULL;
    /* Two loops may race to compress one publish: the first one's twin is kept. */
    if (!atomic_compare_exchange_strong_explicit(&f->twin, &expected, want, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        clive_frame_release(made);
        return expected == LV_NO_TWIN ? NULL : expected;
    }
    return made;
}
