/* RFC 6455 section 5 frames: an incremental parser for client-to-server frames (and, in the
 * client role, server-to-client ones) and the
 * header writer for server-to-client frames. No I/O; the session layer (session.c) owns
 * buffering. The parser allocates only to hold a control frame split across reads. */
#ifndef LIVE_FRAME_H
#define LIVE_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    LV_OP_CONT = 0x0,
    LV_OP_TEXT = 0x1,
    LV_OP_BINARY = 0x2,
    LV_OP_CLOSE = 0x8,
    LV_OP_PING = 0x9,
    LV_OP_PONG = 0xA,
};

/* Close codes the parser fails with. */
enum {
    LV_CLOSE_NORMAL = 1000,
    LV_CLOSE_GOING_AWAY = 1001,
    LV_CLOSE_PROTOCOL = 1002,
    LV_CLOSE_UNSUPPORTED = 1003,
    LV_CLOSE_NO_STATUS = 1005, /* never on the wire: "the peer sent no code" */
    LV_CLOSE_ABNORMAL = 1006,  /* never on the wire: "the connection dropped" */
    LV_CLOSE_INVALID_DATA = 1007,
    LV_CLOSE_POLICY = 1008,
    LV_CLOSE_TOO_BIG = 1009,
    LV_CLOSE_INTERNAL = 1011,
};

/* Returned by lv_frame_parse when a hook asked it to stop. */
#define LV_FRAME_STOPPED (-1)

typedef struct lv_frame_hooks {
    /* A chunk of the current data message's payload, already unmasked (in place, in the
     * caller's buffer). `opcode` is the message's opcode (LV_OP_TEXT or LV_OP_BINARY, also
     * for continuation frames); for text the chunk has passed incremental UTF-8 validation.
     * `last` is 1 on the message's final chunk, which may be empty (len 0); every message
     * ends with exactly one call with last == 1. Return 0 to go on, non-zero to stop. */
    int (*on_data)(void *user, int opcode, uint8_t *data, size_t len, int last);
    /* A complete, valid control frame: LV_OP_PING, LV_OP_PONG or LV_OP_CLOSE, with its
     * unmasked payload (at most 125 bytes; it may live in the parser's own buffer when the
     * frame arrived split). For CLOSE the payload has been validated: empty, or a 2-byte
     * code that may appear on the wire followed by a UTF-8 reason.
     * Return 0 to go on, non-zero to stop. */
    int (*on_control)(void *user, int opcode, uint8_t *data, size_t len);
} lv_frame_hooks;

typedef struct lv_frame_parser {
    /* Every idle session carries a parser: the fields are ordered by size, so that the
     * struct has no padding holes (80 bytes, from 96). */
    /* limits */
    uint64_t max_message;   /* bytes in one message (sum of its frames), else 1009 */
    /* frame in progress: payload bytes pending */
    uint64_t remaining;
    /* data message in progress */
    uint64_t msg_len;
    /* control frame split across reads: allocated for it (every idle session carries a
     * parser, and 125 bytes inline were a seventh of an idle session's memory) */
    uint8_t *ctl;
    uint32_t max_fragments; /* frames in one message, else 1009 */
    uint32_t msg_frames;
    uint32_t utf8_state;
    int failed; /* sticky close code once a violation was found */
    /* header being assembled (2 to 14 bytes) */
    uint8_t head[14];
    uint8_t head_len;
    uint8_t in_payload; /* header complete, payload bytes pending */
    uint8_t opcode;
    uint8_t fin;
    uint8_t mask[4];
    uint8_t mask_pos; /* index of the mask byte for the next payload byte */
    uint8_t msg_opcode; /* LV_OP_TEXT/LV_OP_BINARY while a message is open, else 0 */
    /* permessage-deflate: the caller sets rsv1_ok once it is negotiated; msg_compressed
     * says whether the current message (still during its last on_data) had RSV1 set. Its
     * payload is then handed over compressed and not UTF-8 checked: the caller inflates
     * and validates it. */
    uint8_t rsv1_ok;
    uint8_t msg_compressed;
    uint8_t ctl_len;
    uint8_t client; /* role: 0 (init's default) parses client frames in a server, which must
                       be masked; 1 parses server frames in a client, which must not be */
} lv_frame_parser;

/* Prepares a parser. Limits of 0 mean "no limit". Any thread. */
void lv_frame_parser_init(lv_frame_parser *p, uint64_t max_message, uint32_t max_fragments);

/* Switches a freshly initialised parser to the client role: it then parses frames a server
 * sent, which must be unmasked (a masked one fails with 1002, RFC 6455 5.1). */
void lv_frame_parser_client(lv_frame_parser *p);

/* Releases what the parser holds (a split control frame); it may be initialised again. */
void lv_frame_parser_free(lv_frame_parser *p);

/* Feeds received bytes; unmasks payload in place and calls the hooks in stream order.
 * Returns:
 *   0 when all len bytes were consumed;
 *   LV_FRAME_STOPPED when a hook returned non-zero: *consumed tells how far it got;
 *   a close code when the stream violates RFC 6455, after which every call returns it:
 *     1002 unmasked frame (in the client role: a masked one), RSV2/RSV3 set, RSV1 set
 *          without rsv1_ok or on a control or continuation frame, reserved opcode,
 *          control frame fragmented or
 *          over 125 bytes, continuation with no message open, new data frame inside an
 *          open message, 64-bit length with the high bit set, non-minimal length
 *          encoding, invalid close payload (1 byte, a code not allowed on the wire, a
 *          reason that is not UTF-8);
 *     1007 text that is not UTF-8, detected at the first byte that cannot be valid;
 *     1009 a message longer than max_message or made of more than max_fragments frames,
 *          detected from the frame header, before its payload is read;
 *     1011 no memory to hold a control frame split across reads.
 * *consumed (may be NULL) receives the bytes consumed. One thread at a time. */
int lv_frame_parse(lv_frame_parser *p, uint8_t *data, size_t len, size_t *consumed,
                   const lv_frame_hooks *hooks, void *user);

/* Whether a close code may appear in a close frame on the wire (RFC 6455 7.4):
 * 1000-1003, 1007-1011 (IANA-registered 1012-1014 too), 3000-4999. */
int lv_close_code_valid(unsigned code);

/* Writes a server frame header (FIN set, no mask) for a payload of len bytes; out must
 * hold 10 bytes. Returns the header length (2, 4 or 10). */
size_t lv_frame_header(uint8_t *out, int opcode, uint64_t len);

/* Unmasks (or masks) n bytes in place with the 4-byte key starting at key index `pos`
 * (0-3); returns the key index for the byte after them. Works a machine word at a time. */
unsigned lv_mask(uint8_t *data, size_t n, const uint8_t key[4], unsigned pos);

#endif
