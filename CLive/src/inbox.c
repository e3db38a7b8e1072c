/* The MPSC inbox. Producers link nodes at `newest`; the consumer walks from `oldest`.
 * A producer's push is two steps (swap `newest`, then link the previous node to it);
 * between them the consumer can see a node whose successor is not linked yet, so pop
 * reports "empty" and relies on the producer's following uv_async_send to come back. */
#include "inbox.h"

void lv_inbox_init(lv_inbox *q) {
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->newest, &q->stub, memory_order_relaxed);
    q->oldest = &q->stub;
}

void lv_inbox_push(lv_inbox *q, lv_node *node) {
    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    /* acq_rel: publish node's contents to the consumer, and order after earlier pushes */
    lv_node *prev = atomic_exchange_explicit(&q->newest, node, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, node, memory_order_release);
}

lv_node *lv_inbox_pop(lv_inbox *q) {
    lv_node *oldest = q->oldest;
    lv_node *next = atomic_load_explicit(&oldest->next, memory_order_acquire);
    if (oldest == &q->stub) { /* skip the stub */
        if (next == NULL) return NULL;
        q->oldest = next;
        oldest = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->oldest = next;
        return oldest;
    }
    /* `oldest` is the last linked node. If a producer has already swapped past it, its
     * link is on the way: report empty and wait for its wake-up. */
    if (oldest != atomic_load_explicit(&q->newest, memory_order_acquire)) return NULL;
    /* Re-insert the stub behind `oldest` so that `oldest` can be handed out. */
    lv_inbox_push(q, &q->stub);
    next = atomic_load_explicit(&oldest->next, memory_order_acquire);
    if (next != NULL) {
        q->oldest = next;
        return oldest;
    }
    return NULL;
}
