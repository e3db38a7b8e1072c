/* An open-addressing hash table of entries keyed by name: linear probing, backward-shift
 * deletion (no tombstones), load at most 3/4. The topic registry (topics.c) and the
 * presence index (presence.c) both keep one.
 *
 * An entry begins with an lv_name_key; its name bytes live in the entry itself, at the
 * offset the table is given (a flexible array member, so a name costs no pointer). The
 * table owns only its slot array; entries belong to the caller. */
#ifndef LIVE_NAMES_H
#define LIVE_NAMES_H

#include <stddef.h>
#include <stdint.h>

/* The hash of a name: SipHash-2-4 under a key drawn at random once per process
 * (lv_names_seed), because clients choose topic names, and with an unkeyed hash they could
 * choose thousands that collide and make every lookup walk them all. */
uint64_t lv_name_hash(const char *p, size_t n);

/* Draws the process's hash key from the system's random source, once; later calls do
 * nothing. Before it runs the key is zero (the unit tests hash with that). Any thread. */
void lv_names_seed(void);

typedef struct lv_name_key {
    uint64_t hash; /* lv_name_hash of the name */
    size_t len;    /* the name's length in bytes */
} lv_name_key;

typedef struct lv_name_table {
    lv_name_key **slots; /* NULL: empty */
    uint32_t cap;        /* 0 or a power of two */
    uint32_t count;      /* entries */
    size_t name_offset;  /* where an entry's name bytes start, from the entry's start */
} lv_name_table;

/* The entry's name bytes. */
static inline const char *lv_name_of(const lv_name_table *t, const lv_name_key *e) {
    return (const char *)e + t->name_offset;
}

/* The entry named (name, len) with that hash, or NULL. */
void *lv_names_find(const lv_name_table *t, const char *name, size_t len, uint64_t hash);

/* The slot that holds (name, len), or the empty slot where it would go. Needs cap > 0
 * (lv_names_reserve first). */
uint32_t lv_names_slot(const lv_name_table *t, const char *name, size_t len, uint64_t hash);

/* Makes room for one more entry. Returns 0, or -1 without memory (the table is intact). */
int lv_names_reserve(lv_name_table *t);

/* Puts an entry into the empty slot lv_names_slot gave for its name. */
void lv_names_put(lv_name_table *t, uint32_t slot, lv_name_key *entry);

/* Takes out the entry in `slot` (the entry itself is the caller's to free). */
void lv_names_delete(lv_name_table *t, uint32_t slot);

/* Frees the slot array (not the entries) and empties the table. */
void lv_names_free(lv_name_table *t);

#endif
