/* The envelope codec (see lr_envelope.h): msgpack-c packs it; reading is a strict
 * hand-written parser of the six fields, so that every field can point into the received
 * bytes without a copy or an allocation, and anything else is refused. */
#include "lr_envelope.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "live1"

int lr_envelope_encode(const lr_envelope *e, uint8_t **out, size_t *out_len) {
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    const char *strs[5] = {MAGIC, e->origin, e->type, e->topic, e->ref};
    size_t lens[5] = {sizeof MAGIC - 1, e->origin_len, e->type_len, e->topic_len, e->ref_len};
    int rc = msgpack_pack_array(&pk, 6);
    for (int i = 0; i < 5 && rc == 0; i++) {
        rc = msgpack_pack_str(&pk, lens[i]);
        if (rc == 0) rc = msgpack_pack_str_body(&pk, strs[i], lens[i]);
    }
    if (rc == 0) rc = e->body_json ? msgpack_pack_str(&pk, e->body_len) : msgpack_pack_bin(&pk, e->body_len);
    if (rc == 0)
        rc = e->body_json ? msgpack_pack_str_body(&pk, e->body, e->body_len)
                          : msgpack_pack_bin_body(&pk, e->body, e->body_len);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&buf);
        return -1;
    }
    *out = (uint8_t *)buf.data; /* msgpack_sbuffer allocates with malloc */
    *out_len = buf.size;
    return 0;
}

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static int take_uint(reader *r, size_t bytes, size_t *out) {
    if ((size_t)(r->end - r->p) < bytes) return -1;
    size_t v = 0;
    for (size_t i = 0; i < bytes; i++) v = v << 8 | r->p[i];
    r->p += bytes;
    *out = v;
    return 0;
}

/* A str (binary 0) or bin (binary 1) header, then its bytes. */
static int take_bytes(reader *r, int binary, const uint8_t **bytes, size_t *len) {
    if (r->p >= r->end) return -1;
    uint8_t tag = *r->p++;
    size_t n;
    if (!binary && (tag & 0xE0) == 0xA0) {
        n = tag & 0x1F;
    } else {
        uint8_t base = binary ? 0xC4 : 0xD9; /* bin8/16/32 or str8/16/32 */
        if (tag < base || tag > base + 2) return -1;
        if (take_uint(r, (size_t)1 << (tag - base), &n) != 0) return -1;
    }
    if ((size_t)(r->end - r->p) < n) return -1;
    *bytes = r->p;
    *len = n;
    r->p += n;
    return 0;
}

static int take_str(reader *r, const char **s, size_t *len) {
    return take_bytes(r, 0, (const uint8_t **)s, len);
}

int lr_envelope_decode(const uint8_t *data, size_t len, lr_envelope *out) {
    reader r = {data, data + len};
    if (len == 0 || data[0] != 0x96) return -1; /* a fixarray of six */
    r.p++;
    const char *magic = "";
    size_t magic_len = 0;
    lr_envelope e;
    if (take_str(&r, &magic, &magic_len) != 0 || magic_len != sizeof MAGIC - 1 ||
        memcmp(magic, MAGIC, sizeof MAGIC - 1) != 0)
        return -1;
    if (take_str(&r, &e.origin, &e.origin_len) != 0 || take_str(&r, &e.type, &e.type_len) != 0 ||
        take_str(&r, &e.topic, &e.topic_len) != 0 || take_str(&r, &e.ref, &e.ref_len) != 0 ||
        r.p >= r.end)
        return -1;
    /* the body: a str marks a JSON value the server wrote, a bin opaque bytes */
    uint8_t tag = *r.p;
    e.body_json = (tag & 0xE0) == 0xA0 || (tag >= 0xD9 && tag <= 0xDB);
    if (take_bytes(&r, !e.body_json, &e.body, &e.body_len) != 0) return -1;
    if (r.p != r.end || e.origin_len == 0 || e.topic_len == 0) return -1;
    *out = e;
    return 0;
}
