/* The per-loop topic registry (see topics.h). */
#include "topics.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void lv_topics_init(lv_topics *t) {
    t->names.name_offset = offsetof(lv_topic, name);
    t->pairs.name_offset = offsetof(lv_sub, topic);
}

lv_topic *lv_topics_find(const lv_topics *t, const char *name, size_t len) {
    return lv_names_find(&t->names, name, len, lv_name_hash(name, len));
}

/* --- the (topic, session) table ---------------------------------------------------------- */

/* A pair's key is the two pointers as bytes, laid out as they sit in lv_sub. */
typedef struct pair_key {
    const lv_topic *topic;
    const clive_session *session;
} pair_key;

_Static_assert(offsetof(lv_sub, session) == offsetof(lv_sub, topic) + sizeof(void *),
               "a subscription's pair key is its topic and session pointers, side by side");

static lv_sub *pair_find(const lv_topics *t, const clive_session *s, const lv_topic *tp) {
    pair_key k = {tp, s};
    return lv_names_find(&t->pairs, (const char *)&k, sizeof k, lv_name_hash((const char *)&k, sizeof k));
}

static void pair_delete(lv_topics *t, const lv_sub *sub) {
    lv_names_delete(&t->pairs, lv_names_slot(&t->pairs, (const char *)&sub->topic,
                                             sizeof(pair_key), sub->pair.hash));
}

/* --- subscriptions --------------------------------------------------------------------- */

int lv_topics_subscribe(lv_topics *t, clive_session *session, lv_sub_list *list, const char *name,
                        size_t len) {
    uint64_t h = lv_name_hash(name, len);
    lv_topic *tp = lv_names_find(&t->names, name, len, h);
    if (tp && pair_find(t, session, tp)) return 0;
    if (t->max_per_session && list->count >= t->max_per_session) return LV_TOPICS_LIMIT;
    if (tp == NULL && t->max_topics && t->shared_topics &&
        atomic_load_explicit(t->shared_topics, memory_order_relaxed) >= t->max_topics)
        return LV_TOPICS_LIMIT;
    if (lv_names_reserve(&t->names) != 0 || lv_names_reserve(&t->pairs) != 0) return -1;
    lv_sub *sub = malloc(sizeof *sub);
    if (sub == NULL) return -1;
    if (tp == NULL) {
        tp = calloc(1, sizeof *tp + len);
        if (tp == NULL) {
            free(sub);
            return -1;
        }
        tp->key = (lv_name_key){.hash = h, .len = len};
        memcpy(tp->name, name, len);
        lv_names_put(&t->names, lv_names_slot(&t->names, name, len, h), &tp->key);
        if (t->shared_topics) atomic_fetch_add_explicit(t->shared_topics, 1, memory_order_relaxed);
    }
    if (tp->count == tp->cap) {
        uint32_t cap = tp->cap ? tp->cap * 2 : 4;
        lv_member *members = realloc(tp->members, sizeof *members * cap);
        if (members == NULL) {
            free(sub);
            return -1; /* an empty new topic stays registered; harmless and reused */
        }
        tp->members = members;
        tp->cap = cap;
    }
    pair_key k = {tp, session};
    *sub = (lv_sub){.pair = {.hash = lv_name_hash((const char *)&k, sizeof k), .len = sizeof k},
                    .topic = tp, .session = session, .index = tp->count, .next = list->head};
    if (list->head) list->head->prev = sub;
    list->head = sub;
    list->count++;
    tp->members[tp->count++] = (lv_member){.session = session, .sub = sub};
    lv_names_put(&t->pairs, lv_names_slot(&t->pairs, (const char *)&k, sizeof k, sub->pair.hash),
                 &sub->pair);
    t->subscriptions++;
    return 1;
}

static void remove_topic(lv_topics *t, lv_topic *tp) {
    lv_names_delete(&t->names, lv_names_slot(&t->names, tp->name, tp->key.len, tp->key.hash));
    if (t->shared_topics) atomic_fetch_sub_explicit(t->shared_topics, 1, memory_order_relaxed);
    if (t->on_topic_free) t->on_topic_free(t->ctx, tp);
    free(tp->members);
    free(tp);
}

/* Takes a subscription off its session's list, the pair table and its topic, and frees it. */
static void detach(lv_topics *t, lv_sub_list *list, lv_sub *sub) {
    if (t->on_remove) t->on_remove(t->ctx, sub);
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        list->head = sub->next;
    if (sub->next) sub->next->prev = sub->prev;
    list->count--;
    pair_delete(t, sub);
    lv_topic *tp = sub->topic;
    lv_member last = tp->members[--tp->count];
    tp->members[sub->index] = last;
    last.sub->index = sub->index;
    t->subscriptions--;
    if (tp->count == 0) remove_topic(t, tp);
    free(sub);
}

int lv_topics_unsubscribe(lv_topics *t, clive_session *session, lv_sub_list *list,
                          const char *name, size_t len) {
    lv_topic *tp = lv_topics_find(t, name, len);
    lv_sub *sub = tp ? pair_find(t, session, tp) : NULL;
    if (sub == NULL) return 0;
    detach(t, list, sub);
    return 1;
}

void lv_topics_remove_all(lv_topics *t, lv_sub_list *list) {
    while (list->head) detach(t, list, list->head);
}

void lv_topics_free(lv_topics *t) {
    for (uint32_t i = 0; i < t->names.cap; i++) {
        lv_topic *tp = (lv_topic *)t->names.slots[i];
        if (tp) {
            free(tp->members);
            free(tp);
        }
    }
    lv_names_free(&t->names);
    lv_names_free(&t->pairs);
    t->subscriptions = 0;
}
