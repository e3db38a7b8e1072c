/* Presence: who is subscribed to a topic, across every loop, and join/leave batches.
 *
 * Subscriptions live in per-loop registries (topics.h) that only their loop may read, so
 * "who is in this topic" cannot be answered from them without asking every loop. When
 * presence is on, the server also keeps one shared index, topic -> session ids, under a
 * mutex taken on subscribe and unsubscribe only: a publish never touches it. Each loop
 * also collects the joins and leaves of its sessions and hands them to on_presence in
 * batches (per loop turn, or per presence_interval_ms), so that a burst of 1,000 joins
 * becomes a few events listing many ids instead of 1,000 events. */
#ifndef LIVE_PRESENCE_H
#define LIVE_PRESENCE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "clive.h"
#include "topics.h"

typedef struct lv_presence_topic lv_presence_topic;

/* The shared index. */
typedef struct lv_presence {
    pthread_mutex_t lock;
    lv_name_table names; /* topic name -> lv_presence_topic */
} lv_presence;

/* One loop's pending joins and leaves. */
typedef struct lv_presence_event {
    char *topic;
    size_t len;
    uint64_t id;
    int joined;
    uint64_t seq; /* order of arrival, to keep first and last per (topic, id) */
} lv_presence_event;

typedef struct lv_presence_batch {
    lv_presence_event *events;
    size_t count, cap;
    uint64_t seq;
} lv_presence_batch;

void lv_presence_init(lv_presence *p);
void lv_presence_free(lv_presence *p);

/* Adds a subscription to the index (sub->presence_index is set). Any loop thread. */
int lv_presence_add(lv_presence *p, lv_sub *sub, uint64_t id);
/* Removes it. Any loop thread. */
void lv_presence_remove(lv_presence *p, lv_sub *sub);

/* Subscribers of a topic: fills up to cap ids, returns the total. Any thread. */
size_t lv_presence_list(lv_presence *p, const char *topic, size_t len, uint64_t *ids, size_t cap);

/* Records a join or leave for the next batch. Loop thread. */
void lv_presence_note(lv_presence_batch *b, const char *topic, size_t len, uint64_t id, int joined);

/* Reports the pending batch, one on_presence call per topic with its net joins and leaves
 * (an id that joined and left again within the batch is not reported). Loop thread. */
void lv_presence_flush(lv_presence_batch *b, const clive_callbacks *cb);

void lv_presence_batch_free(lv_presence_batch *b);

#endif
