/* The per-loop topic registry (see topics.h). */
#include "topics.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void lv_topics_init(lv_topics *t) { t->names.name_offset = offsetof(lv_topic, name); }

lv_topic *lv_topics_find(const lv_topics *t, const char *name, size_t len) {
    return lv_names_find(&t->names, name, len, lv_name_hash(name, len));
}

/* --- the (session, topic) table ------------------------------------------------------ */

/* Pointers are not chosen by clients, so a multiplicative mix is enough here. */
static uint32_t pair_hash(const clive_session *s, const lv_topic *tp) {
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uintptr_t)tp * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h ^ h >> 32);
}

/* The slot holding (s, tp), or the empty slot where it would go. Needs pairs_cap > 0. */
static uint32_t pair_slot(const lv_topics *t, const clive_session *s, const lv_topic *tp) {
    uint32_t mask = t->pairs_cap - 1;
    for (uint32_t i = pair_hash(s, tp) & mask;; i = (i + 1) & mask) {
        const lv_sub *e = t->pairs[i];
        if (e == NULL || (e->session == s && e->topic == tp)) return i;
    }
}

static lv_sub *pair_find(const lv_topics *t, const clive_session *s, const lv_topic *tp) {
    return t->pairs_cap ? t->pairs[pair_slot(t, s, tp)] : NULL;
}

static int pair_reserve(lv_topics *t) {
    if ((t->pairs_count + 1) * 4 <= t->pairs_cap * 3) return 0;
    uint32_t cap = t->pairs_cap ? t->pairs_cap * 2 : 16;
    lv_sub **slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return -1;
    lv_sub **old = t->pairs;
    uint32_t old_cap = t->pairs_cap;
    t->pairs = slots;
    t->pairs_cap = cap;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i]) t->pairs[pair_slot(t, old[i]->session, old[i]->topic)] = old[i];
    free(old);
    return 0;
}

/* Backward-shift deletion, as in names.c: no tombstones, so lookups stay short. */
static void pair_delete(lv_topics *t, const lv_sub *sub) {
    uint32_t mask = t->pairs_cap - 1, i = pair_slot(t, sub->session, sub->topic);
    t->pairs[i] = NULL;
    for (uint32_t j = (i + 1) & mask; t->pairs[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = pair_hash(t->pairs[j]->session, t->pairs[j]->topic) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->pairs[i] = t->pairs[j];
            t->pairs[j] = NULL;
            i = j;
        }
    }
    t->pairs_count--;
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
    if (lv_names_reserve(&t->names) != 0 || pair_reserve(t) != 0) return -1;
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
    *sub = (lv_sub){.topic = tp, .session = session, .index = tp->count, .next = list->head};
    if (list->head) list->head->prev = sub;
    list->head = sub;
    list->count++;
    tp->members[tp->count++] = (lv_member){.session = session, .sub = sub};
    t->pairs[pair_slot(t, session, tp)] = sub;
    t->pairs_count++;
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
    free(t->pairs);
    t->pairs = NULL;
    t->pairs_cap = t->pairs_count = 0;
    t->subscriptions = 0;
}
