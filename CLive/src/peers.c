/* Connections per client address (see peers.h). */
#include "peers.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct lv_peer {
    lv_name_key key; /* first: the name table's entry; the name is addr */
    unsigned count;
    uint8_t addr[16]; /* IPv4 mapped into IPv6, or an IPv6 /64 with the host part zeroed */
};

void lv_peers_init(lv_peers *p) {
    memset(p, 0, sizeof *p);
    p->table.name_offset = offsetof(lv_peer, addr);
    pthread_mutex_init(&p->lock, NULL);
}

void lv_peers_free(lv_peers *p) {
    for (uint32_t i = 0; i < p->table.cap; i++) free(p->table.slots[i]);
    lv_names_free(&p->table);
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

lv_peer *lv_peers_add(lv_peers *p, const struct sockaddr_storage *addr, unsigned max,
                      bool *over) {
    *over = false;
    uint8_t key[16];
    if (!make_key(addr, key)) return NULL;
    /* keyed, like topic names: a client picks its source address within its /64 */
    uint64_t hash = lv_name_hash((const char *)key, sizeof key);
    lv_peer *peer = NULL;
    pthread_mutex_lock(&p->lock);
    if (lv_names_reserve(&p->table) == 0) {
        uint32_t slot = lv_names_slot(&p->table, (const char *)key, sizeof key, hash);
        peer = (lv_peer *)p->table.slots[slot];
        if (peer == NULL && (peer = calloc(1, sizeof *peer)) != NULL) {
            peer->key = (lv_name_key){.hash = hash, .len = sizeof key};
            memcpy(peer->addr, key, sizeof key);
            lv_names_put(&p->table, slot, &peer->key);
        }
        if (peer) *over = ++peer->count > max;
    }
    pthread_mutex_unlock(&p->lock);
    return peer;
}

void lv_peers_remove(lv_peers *p, lv_peer *peer) {
    pthread_mutex_lock(&p->lock);
    if (--peer->count == 0) {
        lv_names_delete(&p->table, lv_names_slot(&p->table, (const char *)peer->addr,
                                                 sizeof peer->addr, peer->key.hash));
        free(peer);
    }
    pthread_mutex_unlock(&p->lock);
}
