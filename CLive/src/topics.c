/* The per-loop topic registry (see topics.h). */
#include "topics.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void lv_topics_init(lv_topics *t) { t->names.name_offset = offsetof(lv_topic, name); }

lv_topic *lv_topics_find(const lv_topics *t, const char *name, size_t len) {
    return lv_names_find(&t->names, name, len, lv_name_hash(name, len));
}

static lv_sub *find_sub(lv_sub *list, const char *name, size_t len) {
    /* A session's own list: sessions hold few topics, so a walk beats another index. */
    for (lv_sub *s = list; s; s = s->next)
        if (s->topic->key.len == len && memcmp(s->topic->name, name, len) == 0) return s;
    return NULL;
}

int lv_topics_subscribe(lv_topics *t, clive_session *session, lv_sub **list, const char *name,
                        size_t len) {
    if (find_sub(*list, name, len)) return 0;
    if (lv_names_reserve(&t->names) != 0) return -1;
    uint64_t h = lv_name_hash(name, len);
    uint32_t slot = lv_names_slot(&t->names, name, len, h);
    lv_topic *tp = (lv_topic *)t->names.slots[slot];
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
        lv_names_put(&t->names, slot, &tp->key);
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

static void remove_topic(lv_topics *t, lv_topic *tp) {
    lv_names_delete(&t->names, lv_names_slot(&t->names, tp->name, tp->key.len, tp->key.hash));
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
        if (s->topic->key.len == len && memcmp(s->topic->name, name, len) == 0) {
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
    for (uint32_t i = 0; i < t->names.cap; i++) {
        lv_topic *tp = (lv_topic *)t->names.slots[i];
        if (tp) {
            free(tp->members);
            free(tp);
        }
    }
    lv_names_free(&t->names);
    t->subscriptions = 0;
}
