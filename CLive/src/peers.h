/* Connections per client address (clive_options.max_sessions_per_ip).
 *
 * One table for the server, under a mutex taken once when a connection is accepted and
 * once when it ends, never per message. An IPv4 address counts alone; an IPv6 address
 * counts by its /64, since one host is given a whole /64 and could otherwise open each
 * connection from a new address. Entries are allocated per address and freed with its
 * last connection, so a session keeps a stable pointer to its entry; nothing is held
 * while the limit is off. */
#ifndef LIVE_PEERS_H
#define LIVE_PEERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "names.h"

typedef struct lv_peer lv_peer;

typedef struct lv_peers {
    pthread_mutex_t lock;
    lv_name_table table; /* address key (16 bytes, as a name) -> lv_peer */
} lv_peers;

void lv_peers_init(lv_peers *p);
void lv_peers_free(lv_peers *p);

/* Counts a new connection from addr. Returns its entry (NULL without memory or for an
 * address family other than IPv4/IPv6), and sets *over when the address now has more
 * than max connections. Any thread. */
lv_peer *lv_peers_add(lv_peers *p, const struct sockaddr_storage *addr, unsigned max,
                      bool *over);

/* Uncounts a connection counted by lv_peers_add. Any thread. */
void lv_peers_remove(lv_peers *p, lv_peer *peer);

#endif
