/* A session's send queue: a bounded ring of shared frames waiting to be written.
 *
 * Single-owner, not lock-free: only the session's loop thread pushes and pops, so the
 * ring needs no atomics at all. Other threads never touch it; their sends and publishes
 * reach the loop through its lock-free MPSC inbox (inbox.h) and are pushed here by the
 * loop. This keeps the per-delivery cost of a fanout at a pointer store and a count.
 *
 * Storage is allocated on the first push, grows by doubling up to the count limit, and is
 * freed whenever the queue drains (an idle session costs nothing here). */
#ifndef LIVE_SENDQ_H
#define LIVE_SENDQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "clive.h"

typedef struct lv_sendq {
    clive_frame **slots;
    uint32_t cap;      /* slots allocated: 0 or a power of two */
    uint32_t head;     /* index of the oldest frame */
    uint32_t count;    /* frames queued */
    size_t head_off;   /* bytes of the oldest frame already written */
    size_t bytes;      /* bytes queued, not counting head_off */
    uint64_t head_seq; /* sequence number of the oldest frame: frames ever taken out */
} lv_sendq;

/* Appends a frame (taking over one reference the caller already added) unless that would
 * exceed max_count frames or max_bytes bytes; a frame into an empty queue is always taken.
 * Returns 0, -1 when the limits say no (the reference stays the caller's), -2 without
 * memory (likewise). Loop thread. */
int lv_sendq_push(lv_sendq *q, clive_frame *frame, uint32_t max_count, size_t max_bytes);

/* Appends regardless of limits (close frames, handshake responses). Same returns. */
int lv_sendq_push_force(lv_sendq *q, clive_frame *frame);

/* Fills at most max iovecs with the queued bytes, oldest first. Returns how many. */
int lv_sendq_iov(const lv_sendq *q, struct iovec *iov, int max);

/* Marks `written` bytes as sent: releases the frames now fully written (and the storage
 * once none is left). Returns how many frames were completed. */
uint32_t lv_sendq_consume(lv_sendq *q, size_t written);

/* The sequence number the next pushed frame gets. */
static inline uint64_t lv_sendq_next_seq(const lv_sendq *q) { return q->head_seq + q->count; }

/* Replaces the frame with sequence number seq if it is still queued and not yet partly
 * written (taking over the caller's reference to `frame`, releasing the old one). Returns
 * 1 when replaced, 0 when that frame is gone or already on the wire. */
int lv_sendq_replace(lv_sendq *q, uint64_t seq, clive_frame *frame);

/* Drops every queued frame except a partly written oldest one (which must still go out
 * whole to keep the stream well-formed). */
void lv_sendq_drop(lv_sendq *q);

/* Releases every frame and the storage. */
void lv_sendq_free(lv_sendq *q);

#endif
