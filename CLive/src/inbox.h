/* A loop's inbox: the one way other threads reach an event loop. An unbounded, intrusive,
 * lock-free multi-producer single-consumer queue (the Vyukov design): a push is one
 * atomic exchange and one store, never a lock, never a wait; only the loop's thread pops.
 * A push is followed by uv_async_send, which libuv coalesces, so one wake-up drains many
 * items. */
#ifndef LIVE_INBOX_H
#define LIVE_INBOX_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct lv_node {
    _Atomic(struct lv_node *) next;
} lv_node;

typedef struct lv_inbox {
    _Atomic(lv_node *) newest; /* producers swap themselves in here */
    lv_node *oldest;           /* the consumer's end; touched by the consumer only */
    lv_node stub;              /* keeps the list non-empty so producers never see NULL */
} lv_inbox;

/* Prepares an empty inbox. Before any thread uses it. */
void lv_inbox_init(lv_inbox *q);

/* Appends a node. Any thread; lock-free (wait-free but for the hardware exchange). */
void lv_inbox_push(lv_inbox *q, lv_node *node);

/* Takes the oldest node, or NULL when the inbox is empty or when a producer is halfway
 * through a push (it will wake the loop again when done). Consumer thread only. */
lv_node *lv_inbox_pop(lv_inbox *q);

#endif
