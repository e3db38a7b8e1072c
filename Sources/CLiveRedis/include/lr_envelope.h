/* The envelope a publish travels in between nodes, on a Redis channel.
 *
 * MessagePack, an array of six: ["live1", origin, type, topic, ref, body], the first five
 * strings; the body a bin for opaque bytes (what clients publish), or a str for one JSON
 * value the server wrote itself (Message.BodyEncoding.json: a presence event), which
 * codecs with a native form render natively on every node. "live1" marks the format and its version, so that anything
 * else published on the channel (by another program, or a later format) is recognised as
 * foreign and dropped instead of guessed at. */
#ifndef LR_ENVELOPE_H
#define LR_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lr_envelope {
    const char *origin; /* the publishing node's id */
    size_t origin_len;
    const char *type;
    size_t type_len;
    const char *topic;
    size_t topic_len;
    const char *ref;
    size_t ref_len;
    const uint8_t *body;
    size_t body_len;
    int body_json; /* 1: the body is one JSON value the server wrote (a str); 0: opaque (a bin) */
} lr_envelope;

/* The envelope's bytes in a malloc'd buffer (*out, *out_len; the caller frees it).
 * Returns 0, or -1 without memory. */
int lr_envelope_encode(const lr_envelope *e, uint8_t **out, size_t *out_len);

/* Reads an envelope. Every field points into `data`, which must outlive their use.
 * Returns 0, or -1 when the bytes are not exactly one well-formed envelope of this format
 * (foreign, truncated, trailing bytes, wrong types, an empty origin or topic). */
int lr_envelope_decode(const uint8_t *data, size_t len, lr_envelope *out);

#endif
