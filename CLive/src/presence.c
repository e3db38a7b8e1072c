/* The shared presence index and the per-loop join/leave batches (see presence.h). */
#include "presence.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint64_t id;
    lv_sub *sub;
} entry;

struct lv_presence_topic {
    lv_name_key key; /* first: the name table's entry pointer is the topic's */
    entry *entries;
    uint32_t count, cap;
    char name[];
};

void lv_presence_init(lv_presence *p) {
    memset(p, 0, sizeof *p);
    p->names.name_offset = offsetof(lv_presence_topic, name);
    pthread_mutex_init(&p->lock, NULL);
}

void lv_presence_free(lv_presence *p) {
    for (uint32_t i = 0; i < p->names.cap; i++) {
        lv_presence_topic *t = (lv_presence_topic *)p->names.slots[i];
        if (t) {
            free(t->entries);
            free(t);
        }
    }
    lv_names_free(&p->names);
    pthread_mutex_destroy(&p->lock);
}

int lv_presence_add(lv_presence *p, lv_sub *sub, uint64_t id) {
    const char *name = sub->topic->name;
    size_t len = sub->topic->key.len;
    int rc = -1;
    pthread_mutex_lock(&p->lock);
    if (lv_names_reserve(&p->names) != 0) goto out;
    uint64_t h = sub->topic->key.hash; /* computed once, when the topic appeared */
    uint32_t i = lv_names_slot(&p->names, name, len, h);
    lv_presence_topic *t = (lv_presence_topic *)p->names.slots[i];
    if (t == NULL) {
        t = calloc(1, sizeof *t + len);
        if (t == NULL) goto out;
        t->key = (lv_name_key){.hash = h, .len = len};
        memcpy(t->name, name, len);
        lv_names_put(&p->names, i, &t->key);
    }
    if (t->count == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 4;
        entry *e = realloc(t->entries, sizeof *e * cap);
        if (e == NULL) goto out;
        t->entries = e;
        t->cap = cap;
    }
    sub->presence_index = t->count;
    t->entries[t->count++] = (entry){id, sub};
    rc = 0;
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void lv_presence_remove(lv_presence *p, lv_sub *sub) {
    const char *name = sub->topic->name;
    size_t len = sub->topic->key.len;
    pthread_mutex_lock(&p->lock);
    if (p->names.cap) {
        uint32_t i = lv_names_slot(&p->names, name, len, sub->topic->key.hash);
        lv_presence_topic *t = (lv_presence_topic *)p->names.slots[i];
        uint32_t k = sub->presence_index;
        if (t && k < t->count && t->entries[k].sub == sub) {
            t->entries[k] = t->entries[--t->count];
            if (k < t->count) t->entries[k].sub->presence_index = k;
            if (t->count == 0) {
                lv_names_delete(&p->names, i);
                free(t->entries);
                free(t);
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
}

size_t lv_presence_list(lv_presence *p, const char *topic, size_t len, uint64_t *ids, size_t cap) {
    size_t total = 0;
    pthread_mutex_lock(&p->lock);
    lv_presence_topic *t = lv_names_find(&p->names, topic, len, lv_name_hash(topic, len));
    if (t) {
        total = t->count;
        for (size_t i = 0; i < total && i < cap; i++) ids[i] = t->entries[i].id;
    }
    pthread_mutex_unlock(&p->lock);
    return total;
}

void lv_presence_note(lv_presence_batch *b, const char *topic, size_t len, uint64_t id, int joined) {
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        lv_presence_event *e = realloc(b->events, sizeof *e * cap);
        if (e == NULL) return; /* an event lost under memory pressure: presence is best-effort */
        b->events = e;
        b->cap = cap;
    }
    char *copy = malloc(len ? len : 1);
    if (copy == NULL) return;
    memcpy(copy, topic, len);
    b->events[b->count++] = (lv_presence_event){copy, len, id, joined, b->seq++};
}

static int by_topic_id_seq(const void *a, const void *b) {
    const lv_presence_event *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->topic, y->topic, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int same_topic(const lv_presence_event *a, const lv_presence_event *b) {
    return a->len == b->len && memcmp(a->topic, b->topic, a->len) == 0;
}

void lv_presence_flush(lv_presence_batch *b, const clive_callbacks *cb) {
    if (b->count == 0) return;
    qsort(b->events, b->count, sizeof *b->events, by_topic_id_seq);
    uint64_t *joined = malloc(sizeof *joined * b->count);
    uint64_t *left = malloc(sizeof *left * b->count);
    for (size_t i = 0; i < b->count && joined && left;) {
        size_t nj = 0, nl = 0, start = i;
        while (i < b->count && same_topic(&b->events[start], &b->events[i])) {
            /* one (topic, id) run: the first event tells the state before the batch, the
             * last the state after; report only a change */
            size_t first = i;
            while (i + 1 < b->count && same_topic(&b->events[first], &b->events[i + 1]) &&
                   b->events[i + 1].id == b->events[first].id)
                i++;
            int before = !b->events[first].joined, after = b->events[i].joined;
            if (before != after) {
                if (after)
                    joined[nj++] = b->events[i].id;
                else
                    left[nl++] = b->events[i].id;
            }
            i++;
        }
        if ((nj || nl) && cb->on_presence)
            cb->on_presence(b->events[start].topic, b->events[start].len, joined, nj, left, nl,
                            cb->user);
    }
    free(joined);
    free(left);
    for (size_t i = 0; i < b->count; i++) free(b->events[i].topic);
    b->count = 0;
}

void lv_presence_batch_free(lv_presence_batch *b) {
    for (size_t i = 0; i < b->count; i++) free(b->events[i].topic);
    free(b->events);
    memset(b, 0, sizeof *b);
}
