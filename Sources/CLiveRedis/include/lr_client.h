/* The Redis client of the Redis broker: one thread running its own libuv loop, with one
 * subscriber connection and one publishing connection to one Redis server.
 *
 * Nothing here blocks its caller. lr_client_interest and lr_client_publish (any thread)
 * put their work on a queue under a mutex and wake the client's loop, which writes every
 * command it has to a connection in one write (pipelining). Commands are formatted and
 * replies parsed with hiredis (redisFormatCommandArgv, redisReader); the sockets, the
 * connecting and the reconnecting are the client's own, on libuv, so that the subscriber
 * connection can take SUBSCRIBE and SSUBSCRIBE pushes alike (hiredis 0.14's async layer
 * routes neither sharded pushes nor an unsubscribe followed by a resubscribe correctly).
 *
 * Redis going away does not stop the node: publishes made while a connection is down are
 * dropped and counted; the client reconnects with exponential backoff and jitter,
 * subscribes again to every topic with local interest, and logs once per outage. */
#ifndef LR_CLIENT_H
#define LR_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "lr_envelope.h"

typedef struct lr_client lr_client;

enum { LR_LOG_INFO = 0, LR_LOG_WARNING = 1, LR_LOG_ERROR = 2 };

typedef struct lr_config {
    const char *host;
    uint16_t port;
    const char *password; /* AUTH before anything else; NULL or "": none */
    unsigned db;          /* SELECT it when not 0 (pub/sub channels ignore it: see prefix) */
    const char *prefix;   /* channel = prefix + topic; NULL: "live:" */
    const char *node_id;  /* this node's id, in every envelope it publishes */
    size_t max_queued;    /* bytes of publishes waiting for Redis, else dropped; 0: 8 MiB */
    unsigned backoff_min_ms; /* first reconnect delay; 0: 100 */
    unsigned backoff_max_ms; /* longest reconnect delay; 0: 5000 */
    int sharded;          /* 1: SSUBSCRIBE/SPUBLISH when Redis has them (7.0+); 0: never */
    unsigned presence_ttl_ms; /* presence entries in Redis expire this long after the node
                                 last refreshed them (every third of it); 0: no presence */
    /* An envelope from another node (or this one: check origin) on a topic, on the client's
     * thread; the fields are valid only during the call. */
    void (*deliver)(const lr_envelope *e, void *user);
    /* The publishing connection is (again) ready: write every presence entry of this node
     * (lr_client_presence_set), since Redis may have lost them. On the client's thread. */
    void (*on_ready)(void *user);
    /* A line for the log, on the client's thread. */
    void (*log)(int level, const char *text, void *user);
    void *user;
} lr_config;

typedef struct lr_stats {
    int connected;            /* both connections up and ready */
    int sharded;              /* SSUBSCRIBE/SPUBLISH in use */
    uint64_t down_ms;         /* how long it has been cut off (0 while connected) */
    uint64_t outages;         /* times it lost Redis */
    uint64_t published;       /* PUBLISH commands written */
    uint64_t dropped_down;    /* publishes dropped because Redis was away */
    uint64_t dropped_full;    /* publishes dropped because the queue towards Redis was full */
    uint64_t received;        /* envelopes received from Redis */
    uint64_t malformed;       /* messages on our channels that were not our envelopes */
    uint64_t own;             /* this node's own envelopes, received back and skipped */
    uint64_t topics;          /* topics with local interest */
} lr_stats;

/* Creates a client (not yet running); strings in config are copied. Returns 0, or -1
 * (bad config or no memory). */
int lr_client_new(const lr_config *config, lr_client **out);
/* Starts the client's thread, which connects. Returns 0, or -1. */
int lr_client_start(lr_client *c);
/* The node's first local subscriber of a topic appeared (active 1) or its last one left.
 * Any thread; the calls for one topic must alternate, in order. */
void lr_client_interest(lr_client *c, const char *topic, size_t len, int active);
/* Publishes an envelope (origin is set to the node id). Returns 0 when queued, -1 when
 * dropped (Redis away, the queue full, no memory), counted. Any thread. */
int lr_client_publish(lr_client *c, const lr_envelope *e);
/* Presence across nodes (config.presence_ttl_ms > 0). Each topic's members are kept in
 * Redis as one hash per node, <prefix>p:{topic}:<node> (session id -> entry, the JSON the
 * presence events use), expiring presence_ttl_ms after the node's last refresh, and a set
 * of the nodes with members, <prefix>pn:{topic}. A node that dies stops refreshing, so its
 * entries are gone within the TTL. Any thread; queued like publishes. */
void lr_client_presence_set(lr_client *c, const char *topic, size_t topic_len, const char *id,
                            size_t id_len, const char *entry, size_t entry_len);
void lr_client_presence_del(lr_client *c, const char *topic, size_t topic_len, const char *id,
                            size_t id_len);
/* The answer to lr_client_who: ok 0 when Redis could not be asked (then nothing else is
 * set); else the entries (count_only 0) or the number of members (count_only 1). The
 * arrays are valid only during the call, on the client's thread. */
typedef void (*lr_who_fn)(void *ctx, int ok, const char *const *entries, const size_t *lens,
                          size_t n, uint64_t count);
/* Asks Redis for a topic's members on every node (at most `limit` entries), or their
 * number. fn is called exactly once. Any thread. */
void lr_client_who(lr_client *c, const char *topic, size_t topic_len, unsigned limit,
                   int count_only, lr_who_fn fn, void *ctx);
/* Stops the thread and closes the connections; idempotent. Not on the client's thread. */
void lr_client_stop(lr_client *c);
/* Frees a stopped (or never started) client. */
void lr_client_free(lr_client *c);
/* A snapshot of the counters. Any thread. */
void lr_client_stats(lr_client *c, lr_stats *out);

#endif
