/* libFuzzer harness: the frame parser (with the UTF-8 validator behind it) over a stream of
 * client frames cut into reads at points the input chooses. The first 4 bytes pick the
 * limits, the cut pattern, whether permessage-deflate was negotiated (data[3]'s high bit:
 * then compressed messages go through the bounded inflate as session.c does) and the role
 * (data[3]'s next bit: the client role, which parses server frames); the hooks check the
 * parser's and the inflater's promises as they go. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "deflate.h"
#include "frame.h"
#include "utf8.h"

typedef struct seen {
    uint64_t msg_len;
    uint64_t max;
    int text;
    uint32_t utf8;
    const lv_frame_parser *parser;
    lv_zloop *zlib;
    uint8_t *zmsg; /* a compressed message being collected */
    size_t zlen;
} seen;

/* What session.c does with a compressed message: inflate within the limit, then check. */
static void inflate_whole(seen *s, int opcode) {
    uint8_t *out = NULL;
    size_t n = 0;
    size_t max = s->max ? s->max : 1u << 20;
    int rc = lv_inflate_message(&s->zlib, NULL, 15, s->zmsg, s->zlen, max, &out, &n);
    if (rc == 0) {
        if (n > max) abort(); /* the bound must hold while inflating */
        if (n && out == NULL) abort();
        if (opcode == LV_OP_TEXT) (void)lv_utf8_valid(out, n);
    } else if (rc != LV_CLOSE_TOO_BIG && rc != LV_CLOSE_INVALID_DATA) {
        abort();
    }
    lv_inflate_trim(s->zlib);
    free(s->zmsg);
    s->zmsg = NULL;
    s->zlen = 0;
}

static int on_data(void *user, int opcode, uint8_t *data, size_t len, int last) {
    seen *s = user;
    if (opcode != LV_OP_TEXT && opcode != LV_OP_BINARY) abort();
    if (len == 0 && !last) abort(); /* promised never to happen */
    s->msg_len += len;
    if (s->max && s->msg_len > s->max) abort(); /* the size limit must hold */
    if (s->parser->msg_compressed) {
        if (!s->parser->rsv1_ok) abort(); /* RSV1 only where negotiated */
        uint8_t *p = realloc(s->zmsg, s->zlen + len + 1);
        if (p == NULL) abort();
        s->zmsg = p;
        if (len) memcpy(p + s->zlen, data, len);
        s->zlen += len;
        if (last) {
            inflate_whole(s, opcode);
            s->msg_len = 0;
        }
        return 0;
    }
    if (opcode == LV_OP_TEXT) {
        s->utf8 = lv_utf8_feed(s->utf8, data, len);
        if (s->utf8 == LV_UTF8_REJECT) abort(); /* text delivered must be valid so far */
    }
    if (last) {
        if (opcode == LV_OP_TEXT && s->utf8 != LV_UTF8_ACCEPT) abort();
        s->msg_len = 0;
        s->utf8 = LV_UTF8_ACCEPT;
    }
    return 0;
}

static int on_control(void *user, int opcode, uint8_t *data, size_t len) {
    (void)user;
    if (len > 125) abort();
    if (opcode == LV_OP_CLOSE) {
        if (len == 1) abort();
        if (len >= 2 && !lv_close_code_valid((unsigned)(data[0] << 8 | data[1]))) abort();
        if (len > 2 && !lv_utf8_valid(data + 2, len - 2)) abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    uint64_t max = data[0] ? (uint64_t)data[0] * 64 : 0;
    uint32_t frags = data[1] ? data[1] : 0;
    unsigned step = data[2] ? data[2] : 1;
    size_t len = size - 4;
    uint8_t *buf = malloc(len ? len : 1); /* the parser unmasks in place: a writable copy */
    memcpy(buf, data + 4, len);
    lv_frame_parser p;
    lv_frame_parser_init(&p, max, frags);
    p.rsv1_ok = data[3] >> 7; /* permessage-deflate negotiated */
    if (data[3] & 0x40) lv_frame_parser_client(&p);
    seen s = {.max = max, .utf8 = LV_UTF8_ACCEPT, .parser = &p};
    lv_frame_hooks hooks = {on_data, on_control};
    size_t off = 0;
    while (off < len) {
        size_t n = step + (data[3] & 7) * (off % 5);
        if (n > len - off) n = len - off;
        size_t consumed = 0;
        int r = lv_frame_parse(&p, buf + off, n, &consumed, &hooks, &s);
        if (r > 0) break; /* a close code: the stream is over */
        off += n;
    }
    lv_frame_parser_free(&p);
    free(s.zmsg);
    lv_zloop_free(s.zlib);
    free(buf);
    return 0;
}
