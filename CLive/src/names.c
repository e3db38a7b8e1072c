/* The name-keyed hash table (see names.h). */
#include "names.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "siphash.h"

static uint64_t key[2];
static pthread_once_t seeded = PTHREAD_ONCE_INIT;

static void draw_key(void) {
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* No entropy source (very early boot, a seccomp jail): a key that is at least
         * not known in advance. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        k[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
    }
    key[0] = k[0];
    key[1] = k[1];
}

void lv_names_seed(void) { pthread_once(&seeded, draw_key); }

uint64_t lv_name_hash(const char *p, size_t n) { return lv_siphash(key[0], key[1], p, n); }

uint32_t lv_names_slot(const lv_name_table *t, const char *name, size_t len, uint64_t hash) {
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        const lv_name_key *e = t->slots[i];
        if (e == NULL ||
            (e->hash == hash && e->len == len && memcmp(lv_name_of(t, e), name, len) == 0))
            return i;
    }
}

void *lv_names_find(const lv_name_table *t, const char *name, size_t len, uint64_t hash) {
    if (t->cap == 0) return NULL;
    return t->slots[lv_names_slot(t, name, len, hash)];
}

int lv_names_reserve(lv_name_table *t) {
    if ((t->count + 1) * 4 <= t->cap * 3) return 0;
    uint32_t cap = t->cap ? t->cap * 2 : 16;
    lv_name_key **slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return -1;
    lv_name_table old = *t;
    t->slots = slots;
    t->cap = cap;
    for (uint32_t i = 0; i < old.cap; i++) {
        lv_name_key *e = old.slots[i];
        if (e) t->slots[lv_names_slot(t, lv_name_of(t, e), e->len, e->hash)] = e;
    }
    free(old.slots);
    return 0;
}

void lv_names_put(lv_name_table *t, uint32_t slot, lv_name_key *entry) {
    t->slots[slot] = entry;
    t->count++;
}

void lv_names_delete(lv_name_table *t, uint32_t slot) {
    uint32_t mask = t->cap - 1, i = slot;
    t->slots[i] = NULL;
    for (uint32_t j = (i + 1) & mask; t->slots[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)t->slots[j]->hash & mask;
        /* move j back into the hole at i when its home is not in (i, j] (cyclically) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            t->slots[j] = NULL;
            i = j;
        }
    }
    t->count--;
}

void lv_names_free(lv_name_table *t) {
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}
