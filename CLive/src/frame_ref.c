/* Outbound frames: built once, reference-counted, shared by every send queue they sit in.
 * A publish to 10,000 subscribers stores one pointer 10,000 times and copies no bytes. */
#include <stdlib.h>
#include <string.h>

#include "core.h"

static clive_frame *frame_alloc(size_t len) {
    clive_frame *f = malloc(sizeof *f + len);
    if (f == NULL) return NULL;
    atomic_init(&f->refs, 1);
    f->kind = LV_FRAME_RAW;
    f->head_len = 0;
    f->len = len;
    atomic_init(&f->twin, NULL);
    return f;
}

clive_frame *clive_frame_new(int binary, const void *payload, size_t len) {
    uint8_t head[10];
    size_t hl = lv_frame_header(head, binary ? LV_OP_BINARY : LV_OP_TEXT, len);
    clive_frame *f = lv_frame_raw(head, hl, payload, len);
    if (f) {
        f->kind = LV_FRAME_DATA;
        f->head_len = (uint8_t)hl;
    }
    return f;
}

clive_frame *lv_frame_control(int opcode, const void *payload, size_t len) {
    uint8_t head[10];
    size_t hl = lv_frame_header(head, opcode, len);
    return lv_frame_raw(head, hl, payload, len);
}

clive_frame *lv_frame_raw(const void *a, size_t alen, const void *b, size_t blen) {
    clive_frame *f = frame_alloc(alen + blen);
    if (f == NULL) return NULL;
    if (alen) memcpy(f->bytes, a, alen);
    if (blen) memcpy(f->bytes + alen, b, blen);
    return f;
}

void clive_frame_retain(clive_frame *f) {
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void clive_frame_release(clive_frame *f) {
    if (f == NULL) return;
    /* acq_rel: the last owner sees every write made through other references (a fence
     * would do as well, but ThreadSanitizer does not model fences) */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        clive_frame *twin = atomic_load_explicit(&f->twin, memory_order_acquire);
        if (twin != NULL && twin != LV_NO_TWIN) clive_frame_release(twin);
        free(f);
    }
}
