/* A loop's topic registry: topic name -> the sessions of this loop subscribed to it.
 *
 * Sharded by loop, not shared: each loop keeps the subscriptions of its own sessions and
 * only its thread touches them, so neither subscribe nor publish takes a lock. A publish
 * made on a loop thread fans out to that loop's subscribers directly and posts one
 * command to each other loop's inbox, which fans out there (commands.c). The cost of a
 * publish is therefore one hash lookup per loop plus, per subscriber, a pointer store into
 * its send ring, with no atomic operation per subscriber.
 *
 * Subscribe and unsubscribe cost O(1) whatever a session holds: a topic is found by its
 * name's keyed hash, a (session, topic) pair in a second table keyed by the two pointers,
 * and each subscription remembers its index in the topic's array and its neighbours on the
 * session's list, so removal is a swap and an unlink. */
#ifndef LIVE_TOPICS_H
#define LIVE_TOPICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clive.h"
#include "names.h"

typedef struct lv_topic lv_topic;

/* One (session, topic) pair, on the session's list and in the topic's array. */
typedef struct lv_sub {
    /* first, for the loop's pair table (names.c): the "name" is the two pointers below,
     * topic then session, side by side */
    lv_name_key pair;
    lv_topic *topic;
    clive_session *session;
    uint32_t index;             /* position in topic->members */
    uint32_t presence_index;    /* position in the presence index (guarded by its lock) */
    uint64_t unsent_seq;        /* latest-only topics: 1 + the ring sequence number of this
                                   subscription's unsent frame, 0 when there is none */
    struct lv_sub *next, *prev; /* the session's list */
} lv_sub;

/* A session's subscriptions. */
typedef struct lv_sub_list {
    lv_sub *head;
    uint32_t count;
} lv_sub_list;

/* A topic's entry for one subscription. The session pointer sits in the array itself so
 * that a fanout, which walks the array, reaches each session without a detour through
 * its lv_sub (a cache miss per subscriber at 10,000 subscribers). */
typedef struct lv_member {
    clive_session *session;
    lv_sub *sub;
} lv_member;

struct lv_topic {
    lv_name_key key; /* first: the name table's entry pointer is the topic's; name is name[] */
    lv_member *members;
    uint32_t count;
    uint32_t cap;
    /* the topic's policy (clive_topic_policy), set by the loop when the topic appears */
    bool policy_set;
    bool latest_only;
    uint32_t throttle_ms;
    uint64_t last_sent_ms;          /* throttle: when a publish last went out */
    clive_frame **pending;          /* throttle: the newest publish held back, per slot */
    size_t pending_count;
    struct lv_topic *throttle_next; /* the loop's list of topics holding a publish back */
    bool throttle_listed;
    char name[];
};

typedef struct lv_topics {
    lv_name_table names; /* name -> lv_topic; names.count is the number of topics */
    lv_name_table pairs; /* (topic, session) -> subscription */
    uint64_t subscriptions;
    /* limits (0: none); shared_topics counts topics over every loop's registry */
    uint32_t max_per_session;
    uint32_t max_topics;
    atomic_uint *shared_topics;
    /* called before a subscription is freed (presence bookkeeping); may be NULL */
    void (*on_remove)(void *ctx, lv_sub *sub);
    /* called before an emptied topic is freed (throttle bookkeeping); may be NULL */
    void (*on_topic_free)(void *ctx, lv_topic *tp);
    void *ctx;
} lv_topics;

#define LV_TOPICS_LIMIT (-2)

/* Adds (session, name). Returns 1 when added (the new subscription heads the list), 0
 * when it already existed, -1 without memory, LV_TOPICS_LIMIT when the session holds
 * max_per_session topics or a new topic would pass max_topics. *list is the session's
 * (updated). Loop thread. */
int lv_topics_subscribe(lv_topics *t, clive_session *s, lv_sub_list *list, const char *name,
                        size_t len);

/* Removes (session, name); returns 1 when removed, 0 when absent. An empty topic is freed. */
int lv_topics_unsubscribe(lv_topics *t, clive_session *s, lv_sub_list *list, const char *name,
                          size_t len);

/* Removes every subscription on the list. */
void lv_topics_remove_all(lv_topics *t, lv_sub_list *list);

/* The topic, or NULL. */
lv_topic *lv_topics_find(const lv_topics *t, const char *name, size_t len);

/* Prepares an empty registry (zeroed, then this). */
void lv_topics_init(lv_topics *t);

/* Frees the table; every topic must already be empty. */
void lv_topics_free(lv_topics *t);

#endif
