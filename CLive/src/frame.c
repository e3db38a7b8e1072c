/* RFC 6455 section 5 framing: the incremental frame parser (client frames; server frames in
 * the client role) and the server header
 * writer. See frame.h for the contract.
 *
 * Shape of the parser. A header that is wholly in the caller's buffer (the usual case) is
 * read in place; only a header split across reads is assembled in p->head. Data payloads
 * are unmasked in place and handed to on_data chunk by chunk, so a frame that sits in one
 * buffer costs one unmask pass, one UTF-8 pass (text) and one hook call. Everything the
 * parser must remember between calls lives in the struct, and it is brought up to date
 * before each hook runs, so a hook may stop the parser and the caller resume later. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void lv_frame_parser_init(lv_frame_parser *p, uint64_t max_message, uint32_t max_fragments) {
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    p->max_fragments = max_fragments;
}

void lv_frame_parser_client(lv_frame_parser *p) { p->client = 1; }

void lv_frame_parser_free(lv_frame_parser *p) {
    free(p->ctl);
    p->ctl = NULL;
    p->ctl_len = 0;
}

int lv_close_code_valid(unsigned code) {
    /* 1004 is reserved, 1005/1006/1015 are local-only, 1016-2999 are unassigned */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

size_t lv_frame_header(uint8_t *out, int opcode, uint64_t len) {
    out[0] = (uint8_t)(0x80u | ((unsigned)opcode & 0x0Fu));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

unsigned lv_mask(uint8_t *data, size_t n, const uint8_t key[4], unsigned pos) {
    unsigned next = (pos + (unsigned)(n & 3)) & 3;
    /* The key laid out from `pos`, twice: 8 is a multiple of 4, so every word and the tail
     * start at the same key phase. memcpy makes unaligned loads and stores legal and
     * compiles to plain moves. */
    uint8_t kb[8];
    for (unsigned j = 0; j < 8; j++)
        kb[j] = key[(pos + j) & 3];
    uint64_t k;
    memcpy(&k, kb, 8);
    while (n >= 32) {
        uint64_t w[4];
        memcpy(w, data, 32);
        w[0] ^= k;
        w[1] ^= k;
        w[2] ^= k;
        w[3] ^= k;
        memcpy(data, w, 32);
        data += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, data, 8);
        w ^= k;
        memcpy(data, &w, 8);
        data += 8;
        n -= 8;
    }
    for (size_t j = 0; j < n; j++)
        data[j] ^= kb[j];
    return next;
}

/* Header size from its second byte, assuming the MASK bit the role requires (a frame
 * without it is rejected): set in the server role, clear in the client role. */
static size_t head_size(const lv_frame_parser *p, uint8_t b1) {
    uint8_t len7 = b1 & 0x7F;
    size_t n = len7 < 126 ? 6 : len7 == 126 ? 8 : 14;
    return p->client ? n - 4 : n;
}

/* The rules the first two header bytes decide on their own; checked as soon as both are
 * here, so a bad frame fails before the rest of its header arrives. */
static int check_head2(const lv_frame_parser *p, uint8_t b0, uint8_t b1) {
    unsigned op = b0 & 0x0Fu;
    if (b0 & 0x30) /* no extension gives RSV2 or RSV3 a meaning */
        return LV_CLOSE_PROTOCOL;
    /* RSV1 marks a compressed message (RFC 7692 6): only where negotiated, and only on a
     * message's first frame */
    if ((b0 & 0x40) && (!p->rsv1_ok || op == LV_OP_CONT || op >= LV_OP_CLOSE))
        return LV_CLOSE_PROTOCOL;
    if ((op > LV_OP_BINARY && op < LV_OP_CLOSE) || op > LV_OP_PONG)
        return LV_CLOSE_PROTOCOL;
    /* RFC 6455 5.1: a server must fail an unmasked client frame, a client a masked one */
    if ((b1 >> 7) == p->client)
        return LV_CLOSE_PROTOCOL;
    if (op >= LV_OP_CLOSE) {
        if (!(b0 & 0x80) || (b1 & 0x7F) > 125)
            return LV_CLOSE_PROTOCOL;
    } else if (op == LV_OP_CONT) {
        if (!p->msg_opcode)
            return LV_CLOSE_PROTOCOL;
    } else if (p->msg_opcode) {
        return LV_CLOSE_PROTOCOL;
    }
    return 0;
}

/* Reads the length and key of a complete header whose first two bytes passed check_head2,
 * applies the minimal-encoding and message limits, and opens the frame. */
static int start_frame(lv_frame_parser *p, const uint8_t *h) {
    uint64_t n = h[1] & 0x7Fu;
    const uint8_t *key = h + 2;
    if (n == 126) {
        n = (uint64_t)h[2] << 8 | h[3];
        if (n < 126)
            return LV_CLOSE_PROTOCOL;
        key = h + 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | h[i];
        if ((n >> 63) || n <= 0xFFFF)
            return LV_CLOSE_PROTOCOL;
        key = h + 10;
    }
    if (p->client) /* no key: lv_mask is skipped for the payload */
        key = (const uint8_t *)"\0\0\0\0";
    uint8_t op = h[0] & 0x0F;
    if (op < LV_OP_CLOSE) {
        /* msg_len/msg_frames are 0 when no message is open, and msg_len never exceeds
         * max_message, so the subtraction cannot wrap */
        if (p->max_message && n > p->max_message - p->msg_len)
            return LV_CLOSE_TOO_BIG;
        if (p->max_fragments && p->msg_frames >= p->max_fragments)
            return LV_CLOSE_TOO_BIG;
        if (op != LV_OP_CONT) {
            p->msg_opcode = op;
            p->utf8_state = LV_UTF8_ACCEPT;
            p->msg_compressed = (h[0] >> 6) & 1;
        }
        p->msg_len += n;
        p->msg_frames++;
    }
    p->opcode = op;
    p->fin = h[0] >> 7;
    memcpy(p->mask, key, 4);
    p->mask_pos = 0;
    p->remaining = n;
    p->ctl_len = 0;
    p->in_payload = 1;
    return 0;
}

/* Assembles a header split across reads in p->head. Returns 1 once it is complete, 0 when
 * the input ran out first, or a close code from check_head2. */
static int gather_head(lv_frame_parser *p, const uint8_t *data, size_t len, size_t *pos) {
    size_t i = *pos;
    if (p->head_len < 2) {
        while (p->head_len < 2 && i < len)
            p->head[p->head_len++] = data[i++];
        *pos = i;
        if (p->head_len < 2)
            return 0;
        int rc = check_head2(p, p->head[0], p->head[1]);
        if (rc)
            return rc;
    }
    size_t need = head_size(p, p->head[1]);
    size_t take = need - p->head_len;
    if (take > len - i)
        take = len - i;
    if (take) {
        memcpy(p->head + p->head_len, data + i, take);
        p->head_len = (uint8_t)(p->head_len + take);
        *pos = i + take;
    }
    return p->head_len == need;
}

/* A close payload is empty or a 2-byte code allowed on the wire plus a UTF-8 reason. */
static int check_close(const uint8_t *d, size_t n) {
    if (n == 0)
        return 0;
    if (n == 1 || !lv_close_code_valid((unsigned)d[0] << 8 | d[1]))
        return LV_CLOSE_PROTOCOL;
    if (!lv_utf8_valid(d + 2, n - 2))
        return LV_CLOSE_PROTOCOL;
    return 0;
}

static int fail(lv_frame_parser *p, int code, size_t pos, size_t *consumed) {
    p->failed = code;
    if (consumed)
        *consumed = pos;
    return code;
}

int lv_frame_parse(lv_frame_parser *p, uint8_t *data, size_t len, size_t *consumed,
                   const lv_frame_hooks *hooks, void *user) {
    size_t i = 0;
    int rc;
    if (p->failed) {
        if (consumed)
            *consumed = 0;
        return p->failed;
    }
    for (;;) {
        if (!p->in_payload) {
            size_t need;
            if (p->head_len == 0 && len - i >= 2 && len - i >= (need = head_size(p, data[i + 1]))) {
                /* fast path: the whole header is here, read it in place */
                const uint8_t *h = data + i;
                if ((rc = check_head2(p, h[0], h[1])) != 0)
                    return fail(p, rc, i, consumed);
                i += need;
                if ((rc = start_frame(p, h)) != 0)
                    return fail(p, rc, i, consumed);
            } else {
                if (i == len)
                    break;
                rc = gather_head(p, data, len, &i);
                if (rc == 0)
                    break; /* all input went into p->head */
                if (rc != 1)
                    return fail(p, rc, i, consumed);
                p->head_len = 0;
                if ((rc = start_frame(p, p->head)) != 0)
                    return fail(p, rc, i, consumed);
            }
            /* go straight on to the payload, so that an empty frame is delivered now */
        } else if (i == len) {
            break;
        }

        size_t n = len - i;
        if (n > p->remaining)
            n = (size_t)p->remaining;
        uint8_t *d = data + i;
        if (!p->client)
            p->mask_pos = (uint8_t)lv_mask(d, n, p->mask, p->mask_pos);
        p->remaining -= n;
        i += n;

        if (p->opcode < LV_OP_CLOSE) {
            int op = p->msg_opcode, last = 0;
            if (op == LV_OP_TEXT && n && !p->msg_compressed) {
                /* validate before delivering: a chunk with an impossible byte never reaches
                 * the hook, and the failure comes at once, not at the end of the frame */
                uint32_t st = lv_utf8_feed(p->utf8_state, d, n);
                if (st == LV_UTF8_REJECT)
                    return fail(p, LV_CLOSE_INVALID_DATA, i, consumed);
                p->utf8_state = st;
            }
            if (p->remaining == 0) {
                p->in_payload = 0;
                if (p->fin) {
                    /* a character may span fragments, but not the end of the message */
                    if (p->utf8_state != LV_UTF8_ACCEPT)
                        return fail(p, LV_CLOSE_INVALID_DATA, i, consumed);
                    last = 1;
                    p->msg_opcode = 0;
                    p->msg_len = 0;
                    p->msg_frames = 0;
                }
            }
            if ((n || last) && hooks->on_data(user, op, d, n, last))
                goto stopped;
        } else if (p->remaining) {
            /* a control payload split across reads: keep what we have */
            if (n == 0) continue;
            if (p->ctl == NULL && (p->ctl = malloc(125)) == NULL)
                return fail(p, LV_CLOSE_INTERNAL, i, consumed);
            memcpy(p->ctl + p->ctl_len, d, n);
            p->ctl_len = (uint8_t)(p->ctl_len + n);
        } else {
            uint8_t *c = d;
            size_t cn = n;
            if (p->ctl_len) {
                memcpy(p->ctl + p->ctl_len, d, n);
                c = p->ctl;
                cn = p->ctl_len + n;
                p->ctl_len = 0;
            }
            p->in_payload = 0;
            if (p->opcode == LV_OP_CLOSE && (rc = check_close(c, cn)) != 0) {
                lv_frame_parser_free(p);
                return fail(p, rc, i, consumed);
            }
            int stop = hooks->on_control(user, p->opcode, c, cn);
            if (p->ctl) lv_frame_parser_free(p); /* the hook has seen it */
            if (stop)
                goto stopped;
        }
    }
    if (consumed)
        *consumed = len;
    return 0;

stopped:
    if (consumed)
        *consumed = i;
    return LV_FRAME_STOPPED;
}
