/* libFuzzer harness for the Redis envelope decoder (Sources/CLiveRedis/envelope.c): any
 * bytes published on a node's channel reach it. A decoded envelope's fields must lie inside
 * the input, and encoding them again must decode to the same fields. */
#include <stdlib.h>
#include <string.h>

#include "lr_envelope.h"

static void check_inside(const uint8_t *data, size_t len, const void *p, size_t n) {
    const uint8_t *b = p;
    if (n && (b < data || b + n > data + len)) abort();
}

static int same(const void *a, size_t alen, const void *b, size_t blen) {
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    lr_envelope e;
    if (lr_envelope_decode(data, len, &e) != 0) return 0;
    check_inside(data, len, e.origin, e.origin_len);
    check_inside(data, len, e.type, e.type_len);
    check_inside(data, len, e.topic, e.topic_len);
    check_inside(data, len, e.ref, e.ref_len);
    check_inside(data, len, e.body, e.body_len);
    uint8_t *again;
    size_t again_len;
    if (lr_envelope_encode(&e, &again, &again_len) != 0) return 0;
    lr_envelope f;
    if (lr_envelope_decode(again, again_len, &f) != 0) abort();
    if (!same(e.origin, e.origin_len, f.origin, f.origin_len) ||
        !same(e.type, e.type_len, f.type, f.type_len) ||
        !same(e.topic, e.topic_len, f.topic, f.topic_len) ||
        !same(e.ref, e.ref_len, f.ref, f.ref_len) || !same(e.body, e.body_len, f.body, f.body_len) ||
        e.body_json != f.body_json)
        abort();
    free(again);
    return 0;
}
