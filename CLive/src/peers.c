/* Connections per client address (see peers.h). */
#include "peers.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

struct lv_peer {
    uint8_t key[16]; /* IPv4 mapped into IPv6, or an IPv6 /64 with the host part zeroed */
    uint64_t hash;
    unsigned count;
};

void lv_peers_init(lv_peers *p) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
}

void lv_peers_free(lv_peers *p) {
    for (uint32_t i = 0; i < p->cap; i++) free(p->slots[i]);
    free(p->slots);
    pthread_mutex_destroy(&p->lock);
}

static bool make_key(const struct sockaddr_storage *a, uint8_t key[16]) {
    memset(key, 0, 16);
    if (a->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
        return true;
    }
    if (a->ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(key, b, memcmp(b, v4mapped, 12) == 0 ? 16 : 8); /* IPv4 as IPv6: whole */
        return true;
    }
    return false;
}

static uint32_t slot_of(const lv_peers *p, const uint8_t key[16], uint64_t hash) {
    uint32_t mask = p->cap - 1;
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask)
        if (p->slots[i] == NULL || memcmp(p->slots[i]->key, key, 16) == 0) return i;
}

static int reserve(lv_peers *p) {
    if ((p->count + 1) * 4 <= p->cap * 3) return 0;
    uint32_t cap = p->cap ? p->cap * 2 : 64;
    lv_peer **slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return -1;
    lv_peer **old = p->slots;
    uint32_t old_cap = p->cap;
    p->slots = slots;
    p->cap = cap;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i]) p->slots[slot_of(p, old[i]->key, old[i]->hash)] = old[i];
    free(old);
    return 0;
}

lv_peer *lv_peers_add(lv_peers *p, const struct sockaddr_storage *addr, unsigned max,
                      bool *over) {
    *over = false;
    uint8_t key[16];
    if (!make_key(addr, key)) return NULL;
    /* keyed, like topic names: a client picks its source address within its /64 */
    uint64_t hash = lv_name_hash((const char *)key, sizeof key);
    lv_peer *peer = NULL;
    pthread_mutex_lock(&p->lock);
    if (reserve(p) == 0) {
        uint32_t i = slot_of(p, key, hash);
        peer = p->slots[i];
        if (peer == NULL && (peer = calloc(1, sizeof *peer)) != NULL) {
            memcpy(peer->key, key, 16);
            peer->hash = hash;
            p->slots[i] = peer;
            p->count++;
        }
        if (peer) *over = ++peer->count > max;
    }
    pthread_mutex_unlock(&p->lock);
    return peer;
}

void lv_peers_remove(lv_peers *p, lv_peer *peer) {
    pthread_mutex_lock(&p->lock);
    if (--peer->count == 0) {
        /* backward-shift deletion, as in names.c */
        uint32_t mask = p->cap - 1, i = slot_of(p, peer->key, peer->hash);
        p->slots[i] = NULL;
        for (uint32_t j = (i + 1) & mask; p->slots[j] != NULL; j = (j + 1) & mask) {
            uint32_t home = (uint32_t)p->slots[j]->hash & mask;
            if (((j - home) & mask) >= ((j - i) & mask)) {
                p->slots[i] = p->slots[j];
                p->slots[j] = NULL;
                i = j;
            }
        }
        p->count--;
        free(peer);
    }
    pthread_mutex_unlock(&p->lock);
}
