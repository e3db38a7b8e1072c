/* Interest: which topics have at least one local subscriber on any loop of this server.
 *
 * A broker that carries publishes between server processes (Redis, NATS) should only be
 * subscribed to a topic while this node has a subscriber to it. Each loop keeps its own
 * topic registry (topics.h), so the node-wide answer is one shared table, topic -> number
 * of loops that have the topic, under a mutex. It is touched only when a loop's topic
 * appears or disappears, never per publish or per subscriber, and only when the embedder
 * asked for on_interest. The 0 -> 1 and 1 -> 0 transitions call on_interest under the
 * mutex, so that a topic's "active" and "inactive" reach the embedder in the order they
 * happened. */
#ifndef LIVE_INTEREST_H
#define LIVE_INTEREST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "clive.h"
#include "names.h"

typedef struct lv_interest {
    pthread_mutex_t lock;
    lv_name_table names; /* topic name -> loops that have it */
    int enabled;         /* callbacks.on_interest is set */
} lv_interest;

void lv_interest_init(lv_interest *in, int enabled);
void lv_interest_free(lv_interest *in);

/* A loop gained (delta 1) or lost (delta -1) its topic `name` (hash: lv_name_hash of it).
 * Calls cb->on_interest when the node's count goes 0 -> 1 or 1 -> 0. Loop thread. */
void lv_interest_change(lv_interest *in, const clive_callbacks *cb, const char *name,
                        size_t len, uint64_t hash, int delta);

#endif
