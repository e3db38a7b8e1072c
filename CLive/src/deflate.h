/* permessage-deflate (RFC 7692) with zlib: the negotiation, inflating client messages with
 * their size bounded while inflating, and compressing a published frame once for every
 * subscriber that negotiated it.
 *
 * Memory. The server never uses context takeover for what it sends (it answers
 * server_no_context_takeover to every offer, as RFC 7692 7.1.1.1 allows), so one compressed
 * frame serves every subscriber, and by default it asks the client not to either
 * (client_no_context_takeover, 7.1.1.2). Then one deflate and one inflate stream per loop,
 * reset after each message, serve all its sessions and an idle session holds no zlib
 * state. A server configured to allow client context takeover gives such a session its own
 * inflate stream for its life: about 7 KiB plus a 2^bits window. */
#ifndef LIVE_DEFLATE_H
#define LIVE_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "clive.h"

/* What a session agreed to. */
typedef struct lv_pmd {
    uint8_t on;              /* permessage-deflate is in use */
    uint8_t server_bits;     /* the window we may compress with (server_max_window_bits) */
    uint8_t client_takeover; /* the client keeps its context between messages */
    uint8_t client_bits;     /* the client's window when it keeps context (9-15) */
} lv_pmd;

/* Picks the first acceptable permessage-deflate offer among the request's
 * Sec-WebSocket-Extensions headers (all of them, in order) and writes the response header
 * line ("Sec-WebSocket-Extensions: ...\r\n") to resp. An offer is declined (the next one is
 * tried) when it repeats a parameter, has an unknown one, a malformed value, or asks for
 * server_max_window_bits=8 (zlib cannot compress with a 256-byte window).
 * client_window_bits: 0 refuses client context takeover (the answer always carries
 * client_no_context_takeover); 9-15 allows it, bounding the client's window to that when
 * it offered client_max_window_bits. Returns the response line's length, or 0 when no
 * offer was acceptable (or resp is too small): then *out is all zero. Pure. */
size_t lv_pmd_negotiate(const clive_header *headers, size_t count, unsigned client_window_bits,
                        lv_pmd *out, char *resp, size_t cap);

typedef struct lv_zloop lv_zloop;
struct z_stream_s;

/* A loop's zlib state, created on its first use; lv_zloop_free releases it. */
void lv_zloop_free(lv_zloop *z);

/* Inflates one complete compressed message (without its 00 00 ff ff tail) with the loop's
 * stream (reset after) or, when *own is given, with that session's own stream (created on
 * first use with a window of own_bits, kept). Stops as soon as more than max bytes come out.
 * On success returns 0 and points *out at the inflated bytes (valid until the next call on
 * this loop). Else returns the close code: 1009 over max, 1007 a corrupt stream,
 * 1011 out of memory. */
int lv_inflate_message(lv_zloop **z, struct z_stream_s **own, unsigned own_bits,
                       const uint8_t *in, size_t len, size_t max, uint8_t **out,
                       size_t *out_len);

/* Gives back memory a large message made the loop's inflate buffer grow to. */
void lv_inflate_trim(lv_zloop *z);

/* Bytes of buffers the loop's zlib state holds now, zlib's own state aside. */
size_t lv_zloop_buffered(const lv_zloop *z);

/* Frees a session's own inflate stream (NULL is fine). */
void lv_inflate_free(struct z_stream_s *own);

/* The compressed twin of a data frame built by clive_frame_new: built on the first call
 * (with the loop's stream, no context takeover) and kept on the frame, so a publish is
 * compressed once whatever the number of subscribers or loops. Returns NULL when the frame
 * is not a data frame, is shorter than min_size, or does not shrink; the caller then sends
 * the frame itself. The returned frame is owned by `frame` (retain it to keep it).
 * *compressions counts the compressions this call made (0 or 1). */
clive_frame *lv_deflate_twin(lv_zloop **z, clive_frame *frame, size_t min_size, int level,
                             uint64_t *compressions);

#endif
