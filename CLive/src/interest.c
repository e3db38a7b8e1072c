/* The node-wide interest table (see interest.h). */
#include "interest.h"

#include <stdlib.h>
#include <string.h>

typedef struct interest_entry {
    lv_name_key key; /* first: the table's entry pointer is the entry's */
    uint32_t loops;  /* loops whose registry holds the topic */
    char name[];
} interest_entry;

void lv_interest_init(lv_interest *in, int enabled) {
    memset(in, 0, sizeof *in);
    in->names.name_offset = offsetof(interest_entry, name);
    in->enabled = enabled;
    pthread_mutex_init(&in->lock, NULL);
}

void lv_interest_free(lv_interest *in) {
    for (uint32_t i = 0; i < in->names.cap; i++) free(in->names.slots[i]);
    lv_names_free(&in->names);
    pthread_mutex_destroy(&in->lock);
}

void lv_interest_change(lv_interest *in, const clive_callbacks *cb, const char *name,
                        size_t len, uint64_t hash, int delta) {
    if (!in->enabled) return;
    pthread_mutex_lock(&in->lock);
    if (lv_names_reserve(&in->names) != 0) goto out; /* out of memory: no broker interest */
    uint32_t slot = lv_names_slot(&in->names, name, len, hash);
    interest_entry *e = (interest_entry *)in->names.slots[slot];
    if (delta > 0) {
        if (e == NULL) {
            e = calloc(1, sizeof *e + len);
            if (e == NULL) goto out;
            e->key = (lv_name_key){.hash = hash, .len = len};
            memcpy(e->name, name, len);
            lv_names_put(&in->names, slot, &e->key);
        }
        if (e->loops++ == 0) cb->on_interest(name, len, 1, cb->user);
    } else if (e != NULL) {
        if (--e->loops == 0) {
            cb->on_interest(name, len, 0, cb->user);
            lv_names_delete(&in->names, slot);
            free(e);
        }
    }
out:
    pthread_mutex_unlock(&in->lock);
}

