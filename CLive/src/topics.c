/* The per-loop topic registry (see topics.h). */
#include "topics.h"

#include <stdlib.h>
#include <string.h>

static uint32_t slot_of(const lv_topics *t, const char *name, size_t len, uint64_t h) {
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        lv_topic *tp = t->table[i];
        if (tp == NULL) return i;
        if (tp->hash == h && tp->name_len == len && memcmp(tp->name, name, len) == 0) return i;
    }
}

lv_topic *lv_topics_find(const lv_topics *t, const char *name, size_t len) {
    if (t->cap == 0) return NULL;
    return t->table[slot_of(t, name, len, lv_topic_hash(name, len))];
}

static int rehash(lv_topics *t) {
    uint32_t cap = t->cap ? t->cap * 2 : 16;
    lv_topic **table = calloc(cap, sizeof *table);
    if (table == NULL) return -1;
    lv_topics old = *t;
    t->table = table;
    t->cap = cap;
    for (uint32_t i = 0; i < old.cap; i++) {
        lv_topic *tp = old.table[i];
        if (tp) t->table[slot_of(t, tp->name, tp->name_len, tp->hash)] = tp;
    }
    free(old.table);
    return 0;
}

static lv_sub *find_sub(lv_sub *list, const char *name, size_t len) {
    /* A session's own list: sessions hold few topics, so a walk beats another index. */
    for (lv_sub *s = list; s; s = s->next)
        if (s->topic->name_len == len && memcmp(s->topic->name, name, len) == 0) return s;
    return NULL;
}

int lv_topics_subscribe(lv_topics *t, clive_session *session, lv_sub **list, const char *name,
                        size_t len) {
    if (find_sub(*list, name, len)) return 0;
    if ((t->count + 1) * 4 > t->cap * 3 && rehash(t) != 0) return -1; /* load <= 3/4 */
    uint64_t h = lv_topic_hash(name, len);
    uint32_t slot = slot_of(t, name, len, h);
    lv_topic *tp = t->table[slot];
    lv_sub *sub = malloc(sizeof *sub);
    if (sub == NULL) return -1;
    if (tp == NULL) {
        tp = calloc(1, sizeof *tp + len);
        if (tp == NULL) {
            free(sub);
            return -1;
        }
        tp->hash = h;
        tp->name_len = len;
        memcpy(tp->name, name, len);
        t->table[slot] = tp;
        t->count++;
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
    *sub = (lv_sub){.topic = tp, .session = session, .index = tp->count, .next = *list};
    tp->members[tp->count++] = (lv_member){.session = session, .sub = sub};
    *list = sub;
    t->subscriptions++;
    return 1;
}

/* Deletes a topic's slot with backward-shift deletion, which keeps linear probing
 * correct without tombstones. */
static void remove_topic(lv_topics *t, lv_topic *tp) {
    uint32_t mask = t->cap - 1;
    uint32_t i = slot_of(t, tp->name, tp->name_len, tp->hash);
    t->table[i] = NULL;
    for (uint32_t j = (i + 1) & mask; t->table[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)t->table[j]->hash & mask;
        /* move j back into the hole at i when its home is not in (i, j] (cyclically) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->table[i] = t->table[j];
            t->table[j] = NULL;
            i = j;
        }
    }
    t->count--;
    if (t->on_topic_free) t->on_topic_free(t->ctx, tp);
    free(tp->members);
    free(tp);
}

static void detach(lv_topics *t, lv_sub *sub) {
    if (t->on_remove) t->on_remove(t->ctx, sub);
    lv_topic *tp = sub->topic;
    lv_member last = tp->members[--tp->count];
    tp->members[sub->index] = last;
    last.sub->index = sub->index;
    t->subscriptions--;
    if (tp->count == 0) remove_topic(t, tp);
    free(sub);
}

int lv_topics_unsubscribe(lv_topics *t, lv_sub **list, const char *name, size_t len) {
    for (lv_sub **pp = list; *pp; pp = &(*pp)->next) {
        lv_sub *s = *pp;
        if (s->topic->name_len == len && memcmp(s->topic->name, name, len) == 0) {
            *pp = s->next;
            detach(t, s);
            return 1;
        }
    }
    return 0;
}

void lv_topics_remove_all(lv_topics *t, lv_sub **list) {
    while (*list) {
        lv_sub *s = *list;
        *list = s->next;
        detach(t, s);
    }
}

void lv_topics_free(lv_topics *t) {
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->table[i]) {
            free(t->table[i]->members);
            free(t->table[i]);
        }
    }
    free(t->table);
    t->table = NULL;
    t->cap = t->count = 0;
    t->subscriptions = 0;
}
