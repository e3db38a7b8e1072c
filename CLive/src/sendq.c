/* The per-session send ring (see sendq.h for why it needs no atomics). */
#include "sendq.h"

#include <stdlib.h>

#include "core.h"

static int grow(lv_sendq *q) {
    uint32_t cap = q->cap ? q->cap * 2 : 8;
    clive_frame **slots = malloc(sizeof *slots * cap);
    if (slots == NULL) return -2;
    for (uint32_t i = 0; i < q->count; i++) slots[i] = q->slots[(q->head + i) & (q->cap - 1)];
    free(q->slots);
    q->slots = slots;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int lv_sendq_push_force(lv_sendq *q, clive_frame *frame) {
    if (q->count == q->cap && grow(q) != 0) return -2;
    q->slots[(q->head + q->count) & (q->cap - 1)] = frame;
    q->count++;
    q->bytes += frame->len;
    return 0;
}

int lv_sendq_push(lv_sendq *q, clive_frame *frame, uint32_t max_count, size_t max_bytes) {
    if (q->count > 0 && (q->count >= max_count || q->bytes + frame->len > max_bytes)) return -1;
    return lv_sendq_push_force(q, frame);
}

int lv_sendq_iov(const lv_sendq *q, struct iovec *iov, int max) {
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++, n++) {
        clive_frame *f = q->slots[(q->head + i) & (q->cap - 1)];
        size_t off = i == 0 ? q->head_off : 0;
        iov[n].iov_base = f->bytes + off;
        iov[n].iov_len = f->len - off;
    }
    return n;
}

/* An empty queue gives its storage back: an idle session holds no ring (the upgrade's 101
 * response alone left a 64-byte ring on every idle session), and the next push makes one
 * again, from the allocator's per-thread cache. */
static void release_if_empty(lv_sendq *q) {
    if (q->count > 0 || q->slots == NULL) return;
    free(q->slots);
    q->slots = NULL;
    q->cap = 0;
    q->head = 0;
}

uint32_t lv_sendq_consume(lv_sendq *q, size_t written) {
    uint32_t done = 0;
    q->bytes -= written;
    while (written > 0) {
        clive_frame *f = q->slots[q->head];
        size_t left = f->len - q->head_off;
        if (written < left) {
            q->head_off += written;
            break;
        }
        written -= left;
        q->head_off = 0;
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        q->head_seq++;
        done++;
        clive_frame_release(f);
    }
    /* Zero-length frames never occur (every frame has a header), so nothing lingers. */
    release_if_empty(q);
    return done;
}

int lv_sendq_replace(lv_sendq *q, uint64_t seq, clive_frame *frame) {
    uint64_t first = q->head_seq + (q->head_off > 0 ? 1 : 0); /* a partly written frame stays */
    if (seq < first || seq >= q->head_seq + q->count) return 0;
    uint32_t slot = (q->head + (uint32_t)(seq - q->head_seq)) & (q->cap - 1);
    clive_frame *old = q->slots[slot];
    q->bytes = q->bytes - old->len + frame->len;
    q->slots[slot] = frame;
    clive_frame_release(old);
    return 1;
}

void lv_sendq_drop(lv_sendq *q) {
    uint32_t keep = q->head_off > 0 ? 1 : 0;
    while (q->count > keep) {
        uint32_t last = (q->head + q->count - 1) & (q->cap - 1);
        q->bytes -= q->slots[last]->len;
        clive_frame_release(q->slots[last]);
        q->count--;
    }
    release_if_empty(q);
}

void lv_sendq_free(lv_sendq *q) {
    while (q->count > 0) {
        clive_frame_release(q->slots[q->head]);
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        q->head_seq++;
    }
    free(q->slots);
    uint64_t seq = q->head_seq;
    *q = (lv_sendq){0};
    q->head_seq = seq;
}
