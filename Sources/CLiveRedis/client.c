/* The Redis client (see lr_client.h). Everything below the public functions runs on the
 * client's own thread, except where a comment says "any thread". */
#include "lr_client.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "names.h" /* the core's keyed-hash name table, for the interest set */

#define SUBSCRIBE_BATCH 1000 /* channels per SUBSCRIBE command */
#define READ_CHUNK (64 * 1024)

typedef enum op_kind { OP_SUB, OP_UNSUB, OP_PUB, OP_PSET, OP_PDEL, OP_WHO } op_kind;

/* Work handed to the client's thread: an interest change (data: the topic), a publish
 * (data: the channel, then the envelope), a presence change (data: topic, id, entry) or a
 * presence question (data: the topic). */
typedef struct op {
    struct op *next;
    op_kind kind;
    size_t len;      /* topic or channel bytes */
    size_t len2;     /* presence: id bytes, after the topic */
    size_t body_len; /* envelope or presence entry bytes, last */
    lr_who_fn fn;    /* OP_WHO */
    void *ctx;
    unsigned limit;
    int count_only;
    char data[];
} op;

/* What to do with a reply on the publishing connection, in command order. */
typedef struct reply_slot {
    lr_who_fn fn; /* NULL: nothing (a PUBLISH's count, an HSET's) */
    void *ctx;
    int count_only;
} reply_slot;

typedef struct interest_entry {
    lv_name_key key;
    char name[];
} interest_entry;

enum { SUB_CONN, PUB_CONN };
typedef enum conn_state { C_IDLE, C_RESOLVING, C_CONNECTING, C_HANDSHAKE, C_READY, C_CLOSING } conn_state;
typedef enum hs_kind { HS_AUTH, HS_SELECT, HS_PROBE } hs_kind;

typedef struct conn {
    struct lr_client *c;
    int role;
    conn_state state;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_tcp_t tcp;
    uv_timer_t retry;
    uv_write_t wreq;
    redisReader *reader;
    hs_kind hs[3]; /* handshake replies still expected, in order */
    int hs_count, hs_next;
    int sharded;   /* the probe found SSUBSCRIBE/SPUBLISH */
    unsigned backoff_ms;
    char *out;     /* commands not yet written */
    size_t out_len, out_cap;
    char *writing; /* the buffer uv_write has, or NULL */
    size_t writing_len;
    char why[160]; /* why it went down, for the log */
    reply_slot *replies; /* publishing connection: the replies owed, a ring */
    size_t r_head, r_count, r_cap;
} conn;

struct lr_client {
    lr_config cfg; /* strings below are copies */
    char *host, *password, *prefix, *node_id;
    size_t prefix_len;
    uv_loop_t loop;
    uv_thread_t thread;
    bool thread_started, thread_joined;
    uv_async_t wake;
    uv_timer_t refresh; /* presence: renews this node's entries' TTL */
    conn sub, pub;
    /* under lock: */
    pthread_mutex_t lock;
    lv_name_table interest;
    op *head, *tail;
    size_t queued_bytes;
    atomic_bool stopping;
    /* the client's thread only: */
    bool in_outage, ever_ready;
    /* counters (any thread reads) */
    atomic_int connected, sharded;
    atomic_uint_fast64_t down_since_ms, outages, published, dropped_down, dropped_full,
        received, malformed, own, topics, backlog_bytes;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static void logf_(lr_client *c, int level, const char *fmt, ...) {
    if (c->cfg.log == NULL) return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    c->cfg.log(level, text, c->cfg.user);
}

static void bump(atomic_uint_fast64_t *v) { atomic_fetch_add_explicit(v, 1, memory_order_relaxed); }

/* --- writing --------------------------------------------------------------------------- */

static void conn_fail(conn *k, const char *why);
static void presence_each_key(lr_client *c, const char *verb, const char *arg);

static int conn_append(conn *k, const char *cmd, size_t len) {
    if (k->out_len + len > k->out_cap) {
        size_t cap = k->out_cap ? k->out_cap : 4096;
        while (cap < k->out_len + len) cap *= 2;
        char *p = realloc(k->out, cap);
        if (p == NULL) return -1;
        k->out = p;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, cmd, len);
    k->out_len += len;
    return 0;
}

static int conn_command(conn *k, int argc, const char **argv, const size_t *lens) {
    char *cmd;
    long long n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0) return -1;
    int rc = conn_append(k, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

/* A command on the publishing connection, with what to do with its reply. */
static int pub_command(lr_client *c, int argc, const char **argv, const size_t *lens, lr_who_fn fn,
                       void *ctx, int count_only) {
    conn *k = &c->pub;
    if (k->r_count == k->r_cap) {
        size_t cap = k->r_cap ? k->r_cap * 2 : 64;
        reply_slot *r = malloc(sizeof *r * cap);
        if (r == NULL) return -1;
        for (size_t i = 0; i < k->r_count; i++) r[i] = k->replies[(k->r_head + i) % k->r_cap];
        free(k->replies);
        k->replies = r;
        k->r_head = 0;
        k->r_cap = cap;
    }
    if (conn_command(k, argc, argv, lens) != 0) return -1;
    k->replies[(k->r_head + k->r_count++) % k->r_cap] = (reply_slot){fn, ctx, count_only};
    return 0;
}

/* The connection is gone: every question still owed an answer gets "could not ask". */
static void fail_replies(conn *k) {
    while (k->r_count) {
        reply_slot r = k->replies[k->r_head];
        k->r_head = (k->r_head + 1) % k->r_cap;
        k->r_count--;
        if (r.fn) r.fn(r.ctx, 0, NULL, NULL, 0, 0);
    }
}

static void answer(reply_slot r, const redisReply *reply) {
    if (r.fn == NULL) return;
    if (r.count_only) {
        if (reply->type == REDIS_REPLY_INTEGER)
            r.fn(r.ctx, 1, NULL, NULL, 0, (uint64_t)reply->integer);
        else
            r.fn(r.ctx, 0, NULL, NULL, 0, 0);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        r.fn(r.ctx, 0, NULL, NULL, 0, 0);
        return;
    }
    size_t n = reply->elements, k = 0;
    const char **entries = malloc(sizeof *entries * (n ? n : 1));
    size_t *lens = malloc(sizeof *lens * (n ? n : 1));
    if (entries == NULL || lens == NULL) {
        r.fn(r.ctx, 0, NULL, NULL, 0, 0);
    } else {
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING) continue;
            entries[k] = e->str;
            lens[k++] = e->len;
        }
        r.fn(r.ctx, 1, entries, lens, k, k);
    }
    free(entries);
    free(lens);
}

static void backlog_changed(lr_client *c) {
    atomic_store_explicit(&c->backlog_bytes, c->pub.out_len + c->pub.writing_len,
                          memory_order_relaxed);
}

static void conn_flush(conn *k);

static void on_written(uv_write_t *req, int status) {
    conn *k = req->data;
    free(k->writing);
    k->writing = NULL;
    k->writing_len = 0;
    if (k->role == PUB_CONN) backlog_changed(k->c);
    if (status < 0) {
        conn_fail(k, uv_strerror(status));
        return;
    }
    conn_flush(k);
}

/* Writes everything appended so far in one write, unless one is in flight (then its
 * completion writes the rest): that is the pipelining. */
static void conn_flush(conn *k) {
    if (k->writing || k->out_len == 0 || (k->state != C_HANDSHAKE && k->state != C_READY)) return;
    k->writing = k->out;
    k->writing_len = k->out_len;
    k->out = NULL;
    k->out_len = k->out_cap = 0;
    uv_buf_t buf = uv_buf_init(k->writing, (unsigned)k->writing_len);
    k->wreq.data = k;
    int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(k->writing);
        k->writing = NULL;
        k->writing_len = 0;
        conn_fail(k, uv_strerror(rc));
    }
}

/* --- subscribing ---------------------------------------------------------------------- */

/* (S)SUBSCRIBE or (S)UNSUBSCRIBE for topics; plain ones in batches, sharded ones one per
 * command (on a cluster the channels of one command must share a hash slot). */
static void send_interest(lr_client *c, int active, const char *const *topics,
                          const size_t *lens, size_t n) {
    conn *k = &c->sub;
    const char *verb = k->sharded ? (active ? "SSUBSCRIBE" : "SUNSUBSCRIBE")
                                  : (active ? "SUBSCRIBE" : "UNSUBSCRIBE");
    size_t batch = k->sharded ? 1 : SUBSCRIBE_BATCH;
    const char **argv = malloc(sizeof *argv * (batch + 1));
    size_t *alen = malloc(sizeof *alen * (batch + 1));
    char **chans = malloc(sizeof *chans * batch);
    if (argv == NULL || alen == NULL || chans == NULL) goto out;
    for (size_t i = 0; i < n;) {
        size_t m = n - i < batch ? n - i : batch, built = 0;
        argv[0] = verb;
        alen[0] = strlen(verb);
        for (; built < m; built++) {
            size_t len = c->prefix_len + lens[i + built];
            chans[built] = malloc(len);
            if (chans[built] == NULL) break;
            memcpy(chans[built], c->prefix, c->prefix_len);
            memcpy(chans[built] + c->prefix_len, topics[i + built], lens[i + built]);
            argv[1 + built] = chans[built];
            alen[1 + built] = len;
        }
        if (built == m) conn_command(k, (int)m + 1, argv, alen);
        for (size_t j = 0; j < built; j++) free(chans[j]);
        if (built < m) break;
        i += m;
    }
out:
    free(argv);
    free(alen);
    free(chans);
}

/* The subscriber connection is ready: subscribe to every topic with local interest. The
 * interest changes queued so far are in the snapshot, so they are dropped. */
static void resubscribe_all(lr_client *c) {
    pthread_mutex_lock(&c->lock);
    op **pp = &c->head;
    c->tail = NULL;
    while (*pp) {
        op *o = *pp;
        if (o->kind != OP_SUB && o->kind != OP_UNSUB) {
            c->tail = o;
            pp = &o->next;
        } else {
            *pp = o->next;
            free(o);
        }
    }
    size_t n = c->interest.count, k = 0;
    const char **topics = malloc(sizeof *topics * (n ? n : 1));
    size_t *lens = malloc(sizeof *lens * (n ? n : 1));
    char *names = NULL;
    size_t total = 0;
    for (uint32_t i = 0; i < c->interest.cap; i++)
        if (c->interest.slots[i]) total += c->interest.slots[i]->len;
    names = malloc(total ? total : 1);
    if (topics && lens && names) {
        size_t at = 0;
        for (uint32_t i = 0; i < c->interest.cap; i++) {
            interest_entry *e = (interest_entry *)c->interest.slots[i];
            if (e == NULL) continue;
            memcpy(names + at, e->name, e->key.len);
            topics[k] = names + at;
            lens[k++] = e->key.len;
            at += e->key.len;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (k) send_interest(c, 1, topics, lens, k);
    free(topics);
    free(lens);
    free(names);
}

/* --- the connections' life ----------------------------------------------------------- */

static void conn_connect(conn *k);

static void on_retry(uv_timer_t *t) { conn_connect(t->data); }

static void conn_closed(conn *k) {
    fail_replies(k);
    if (k->reader) redisReaderFree(k->reader);
    k->reader = NULL;
    free(k->out);
    k->out = NULL;
    k->out_len = k->out_cap = 0;
    if (k->role == PUB_CONN) backlog_changed(k->c);
    k->state = C_IDLE;
    if (atomic_load(&k->c->stopping)) return;
    /* exponential backoff with jitter (50% to 150%), so that many nodes that lost the same
     * Redis do not all come back at the same instant */
    unsigned d = k->backoff_ms;
    unsigned delay = d / 2 + (unsigned)((uint64_t)d * (unsigned)rand() / RAND_MAX);
    unsigned max = k->c->cfg.backoff_max_ms;
    k->backoff_ms = d * 2 > max ? max : d * 2;
    uv_timer_start(&k->retry, on_retry, delay, 0);
}

static void on_closed(uv_handle_t *h) { conn_closed(h->data); }

static void set_connected(lr_client *c) {
    int up = c->sub.state == C_READY && c->pub.state == C_READY;
    atomic_store(&c->connected, up);
    if (!up) return;
    atomic_store(&c->sharded, c->pub.sharded && c->sub.sharded);
    if (c->in_outage) {
        uint64_t since = atomic_load(&c->down_since_ms);
        logf_(c, LR_LOG_WARNING,
              "redis %s:%u is back after %llu ms; cross-node delivery resumes (%llu publishes "
              "dropped so far while it was away)",
              c->host, (unsigned)c->cfg.port, (unsigned long long)(now_ms() - since),
              (unsigned long long)atomic_load(&c->dropped_down));
    } else if (!c->ever_ready) {
        logf_(c, LR_LOG_INFO, "redis %s:%u connected (%s pub/sub)", c->host,
              (unsigned)c->cfg.port, atomic_load(&c->sharded) ? "sharded" : "plain");
    }
    c->ever_ready = true;
    c->in_outage = false;
    atomic_store(&c->down_since_ms, 0);
}

static void conn_fail(conn *k, const char *why) {
    lr_client *c = k->c;
    if (k->state == C_IDLE || k->state == C_CLOSING) return;
    snprintf(k->why, sizeof k->why, "%s", why);
    if (!c->in_outage) { /* once per outage, not once per attempt or per message */
        c->in_outage = true;
        atomic_store(&c->down_since_ms, now_ms());
        bump(&c->outages);
        logf_(c, LR_LOG_WARNING,
              "redis %s:%u unavailable (%s): local delivery goes on; cross-node messages are "
              "dropped until it is back; reconnecting",
              c->host, (unsigned)c->cfg.port, why);
    }
    bool had_socket = k->state != C_RESOLVING;
    k->state = C_CLOSING;
    atomic_store(&c->connected, 0);
    if (had_socket)
        uv_close((uv_handle_t *)&k->tcp, on_closed);
    else
        conn_closed(k);
}

static void conn_ready(conn *k) {
    k->state = C_READY;
    k->backoff_ms = k->c->cfg.backoff_min_ms;
    if (k->role == SUB_CONN) resubscribe_all(k->c);
    if (k->role == PUB_CONN && k->c->cfg.presence_ttl_ms) {
        /* this node's entries as Redis has them may be stale (leaves made while it was
         * away): drop them, and on_ready writes the current ones after the drops */
        presence_each_key(k->c, "DEL", NULL);
        if (k->c->cfg.on_ready) k->c->cfg.on_ready(k->c->cfg.user);
    }
    set_connected(k->c);
}

/* A message pushed on the subscriber connection. */
static void on_pushed(lr_client *c, const redisReply *r) {
    const redisReply *ch = r->element[1], *payload = r->element[2];
    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
    lr_envelope e;
    if (ch->len <= c->prefix_len || memcmp(ch->str, c->prefix, c->prefix_len) != 0 ||
        lr_envelope_decode((const uint8_t *)payload->str, payload->len, &e) != 0 ||
        e.topic_len != ch->len - c->prefix_len ||
        memcmp(e.topic, ch->str + c->prefix_len, e.topic_len) != 0) {
        bump(&c->malformed); /* not ours, or not for this channel: never reaches a client */
        return;
    }
    if (e.origin_len == strlen(c->node_id) && memcmp(e.origin, c->node_id, e.origin_len) == 0) {
        bump(&c->own); /* delivered locally when it was published */
        return;
    }
    bump(&c->received);
    if (c->cfg.deliver) c->cfg.deliver(&e, c->cfg.user);
}

static void on_reply(conn *k, redisReply *r) {
    lr_client *c = k->c;
    if (k->state == C_HANDSHAKE && k->hs_next < k->hs_count) {
        hs_kind kind = k->hs[k->hs_next++];
        if (kind == HS_PROBE) {
            /* COMMAND INFO SPUBLISH: [nil] (or an error) on a server without it */
            k->sharded = r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                         r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements > 0;
        } else if (r->type == REDIS_REPLY_ERROR) {
            char why[200];
            snprintf(why, sizeof why, "%s: %.*s", kind == HS_AUTH ? "AUTH" : "SELECT",
                     (int)r->len, r->str);
            conn_fail(k, why);
            return;
        }
        if (k->hs_next == k->hs_count) conn_ready(k);
        return;
    }
    if (k->role == SUB_CONN && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        ((r->element[0]->len == 7 && memcmp(r->element[0]->str, "message", 7) == 0) ||
         (r->element[0]->len == 8 && memcmp(r->element[0]->str, "smessage", 8) == 0))) {
        on_pushed(c, r);
    } else if (k->role == PUB_CONN && k->r_count) {
        reply_slot slot = k->replies[k->r_head];
        k->r_head = (k->r_head + 1) % k->r_cap;
        k->r_count--;
        if (r->type == REDIS_REPLY_ERROR && slot.fn == NULL)
            logf_(c, LR_LOG_WARNING, "redis refused a command: %.*s", (int)r->len, r->str);
        answer(slot, r);
    } else if (r->type == REDIS_REPLY_ERROR) {
        logf_(c, LR_LOG_WARNING, "redis refused a command: %.*s", (int)r->len, r->str);
    } /* else: a subscribe confirmation or a PUBLISH count */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h, (void)suggested;
    buf->base = malloc(READ_CHUNK);
    buf->len = buf->base ? READ_CHUNK : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    conn *k = s->data;
    if (n < 0) {
        free(buf->base);
        conn_fail(k, n == UV_EOF ? "connection closed by redis" : uv_strerror((int)n));
        return;
    }
    if (n > 0 && redisReaderFeed(k->reader, buf->base, (size_t)n) != REDIS_OK) {
        free(buf->base);
        conn_fail(k, "protocol error");
        return;
    }
    free(buf->base);
    void *reply;
    while (k->state == C_HANDSHAKE || k->state == C_READY) {
        if (redisReaderGetReply(k->reader, &reply) != REDIS_OK) {
            conn_fail(k, "protocol error");
            return;
        }
        if (reply == NULL) break;
        on_reply(k, reply);
        freeReplyObject(reply);
    }
    conn_flush(k);
}

static void on_connected(uv_connect_t *req, int status) {
    conn *k = req->data;
    lr_client *c = k->c;
    if (atomic_load(&c->stopping)) return;
    if (status < 0) {
        conn_fail(k, uv_strerror(status));
        return;
    }
    k->reader = redisReaderCreate();
    if (k->reader == NULL) {
        conn_fail(k, "out of memory");
        return;
    }
    k->state = C_HANDSHAKE;
    k->hs_count = k->hs_next = 0;
    k->sharded = 0;
    uv_tcp_nodelay(&k->tcp, 1);
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    if (c->password && *c->password) {
        const char *argv[] = {"AUTH", c->password};
        size_t lens[] = {4, strlen(c->password)};
        conn_command(k, 2, argv, lens);
        k->hs[k->hs_count++] = HS_AUTH;
    }
    if (c->cfg.db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%u", c->cfg.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        conn_command(k, 2, argv, lens);
        k->hs[k->hs_count++] = HS_SELECT;
    }
    if (c->cfg.sharded) {
        const char *argv[] = {"COMMAND", "INFO", "SPUBLISH"};
        size_t lens[] = {7, 4, 8};
        conn_command(k, 3, argv, lens);
        k->hs[k->hs_count++] = HS_PROBE;
    }
    if (k->hs_count == 0) conn_ready(k);
    conn_flush(k);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    conn *k = req->data;
    lr_client *c = k->c;
    if (atomic_load(&c->stopping)) {
        if (res) uv_freeaddrinfo(res);
        k->state = C_IDLE;
        return;
    }
    if (status < 0 || res == NULL) {
        if (res) uv_freeaddrinfo(res);
        conn_fail(k, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    uv_tcp_init(&c->loop, &k->tcp);
    k->tcp.data = k;
    k->state = C_CONNECTING;
    k->creq.data = k;
    int rc = uv_tcp_connect(&k->creq, &k->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rc < 0) conn_fail(k, uv_strerror(rc));
}

static void conn_connect(conn *k) {
    lr_client *c = k->c;
    if (atomic_load(&c->stopping) || k->state != C_IDLE) return;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)c->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    k->state = C_RESOLVING;
    k->gai.data = k;
    int rc = uv_getaddrinfo(&c->loop, &k->gai, on_resolved, c->host, port, &hints);
    if (rc < 0) conn_fail(k, uv_strerror(rc));
}

/* --- the queue from other threads ------------------------------------------------------ */

static void stop_here(lr_client *c) {
    conn *ks[2] = {&c->sub, &c->pub};
    for (int i = 0; i < 2; i++) {
        conn *k = ks[i];
        uv_close((uv_handle_t *)&k->retry, NULL);
        if (k->state == C_CONNECTING || k->state == C_HANDSHAKE || k->state == C_READY) {
            k->state = C_CLOSING;
            uv_close((uv_handle_t *)&k->tcp, on_closed);
        } else if (k->state == C_RESOLVING) {
            uv_cancel((uv_req_t *)&k->gai);
        }
    }
    uv_close((uv_handle_t *)&c->wake, NULL);
    uv_close((uv_handle_t *)&c->refresh, NULL);
}

/* --- presence -------------------------------------------------------------------------- */

/* <prefix><kind>{<topic>}<tail>: the braces make a topic's keys one hash slot on a cluster. */
static char *presence_key(lr_client *c, const char *kind, const char *topic, size_t len,
                          const char *tail, size_t *out_len) {
    size_t kl = strlen(kind), tl = strlen(tail);
    size_t n = c->prefix_len + kl + 1 + len + 1 + tl;
    char *k = malloc(n);
    if (k == NULL) return NULL;
    char *p = k;
    memcpy(p, c->prefix, c->prefix_len), p += c->prefix_len;
    memcpy(p, kind, kl), p += kl;
    *p++ = '{';
    memcpy(p, topic, len), p += len;
    *p++ = '}';
    memcpy(p, tail, tl);
    *out_len = n;
    return k;
}

static char *node_key(lr_client *c, const char *topic, size_t len, size_t *out_len) {
    char tail[80];
    snprintf(tail, sizeof tail, ":%s", c->node_id);
    return presence_key(c, "p:", topic, len, tail, out_len);
}

static void presence_write(lr_client *c, op *o) {
    size_t kl, nl;
    char *key = node_key(c, o->data, o->len, &kl);
    char *nodes = presence_key(c, "pn:", o->data, o->len, "", &nl);
    const char *id = o->data + o->len;
    if (key && nodes && o->kind == OP_PSET) {
        char ttl[24];
        int tn = snprintf(ttl, sizeof ttl, "%u", c->cfg.presence_ttl_ms);
        const char *hset[] = {"HSET", key, id, id + o->len2};
        size_t hset_l[] = {4, kl, o->len2, o->body_len};
        const char *exp[] = {"PEXPIRE", key, ttl};
        size_t exp_l[] = {7, kl, (size_t)tn};
        const char *sadd[] = {"SADD", nodes, c->node_id};
        size_t sadd_l[] = {4, nl, strlen(c->node_id)};
        pub_command(c, 4, hset, hset_l, NULL, NULL, 0);
        pub_command(c, 3, exp, exp_l, NULL, NULL, 0);
        pub_command(c, 3, sadd, sadd_l, NULL, NULL, 0);
    } else if (key && nodes) {
        const char *hdel[] = {"HDEL", key, id};
        size_t hdel_l[] = {4, kl, o->len2};
        pub_command(c, 3, hdel, hdel_l, NULL, NULL, 0);
    }
    free(key);
    free(nodes);
}

/* Every node's members of a topic, or their number, in one round trip. A node whose hash
 * has expired (it died, or stopped refreshing) is taken off the topic's node set. */
static const char WHO_SCRIPT[] =
    "local out, total = {}, 0\n"
    "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local k = ARGV[1] .. n\n"
    "  if redis.call('EXISTS', k) == 0 then\n"
    "    redis.call('SREM', KEYS[1], n)\n"
    "  elseif ARGV[3] == 'count' then\n"
    "    total = total + redis.call('HLEN', k)\n"
    "  else\n"
    "    for _, v in ipairs(redis.call('HVALS', k)) do\n"
    "      if #out < tonumber(ARGV[2]) then out[#out + 1] = v end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if ARGV[3] == 'count' then return total end\n"
    "return out\n";

static int presence_who(lr_client *c, op *o) {
    size_t nl, pl;
    char *nodes = presence_key(c, "pn:", o->data, o->len, "", &nl);
    char *prefix = presence_key(c, "p:", o->data, o->len, ":", &pl);
    int rc = -1;
    if (nodes && prefix) {
        char limit[16];
        int ln = snprintf(limit, sizeof limit, "%u", o->limit);
        const char *argv[] = {"EVAL", WHO_SCRIPT, "1", nodes, prefix, limit, o->count_only ? "count" : "list"};
        size_t lens[] = {4, sizeof WHO_SCRIPT - 1, 1, nl, pl, (size_t)ln, o->count_only ? 5u : 4u};
        rc = pub_command(c, 7, argv, lens, o->fn, o->ctx, o->count_only);
    }
    free(nodes);
    free(prefix);
    return rc;
}

/* `verb key [arg]` for this node's presence key of every topic with local interest. */
static void presence_each_key(lr_client *c, const char *verb, const char *arg) {
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->interest.cap; i++) {
        interest_entry *e = (interest_entry *)c->interest.slots[i];
        if (e == NULL) continue;
        size_t kl;
        char *key = node_key(c, e->name, e->key.len, &kl);
        if (key == NULL) continue;
        const char *argv[] = {verb, key, arg};
        size_t lens[] = {strlen(verb), kl, arg ? strlen(arg) : 0};
        pub_command(c, arg ? 3 : 2, argv, lens, NULL, NULL, 0);
        free(key);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Every third of the TTL: this node's entries live on for another TTL. */
static void on_refresh(uv_timer_t *t) {
    lr_client *c = t->data;
    if (c->pub.state != C_READY) return;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%u", c->cfg.presence_ttl_ms);
    presence_each_key(c, "PEXPIRE", ttl);
    conn_flush(&c->pub);
}

/* Sends a batch of interest changes of one kind, and frees their ops. */
static void send_batch(lr_client *c, op **batch, size_t n) {
    const char *topics[SUBSCRIBE_BATCH];
    size_t lens[SUBSCRIBE_BATCH];
    for (size_t i = 0; i < n; i++) {
        topics[i] = batch[i]->data;
        lens[i] = batch[i]->len;
    }
    /* while the connection is down the changes are dropped: its resubscribe_all covers them */
    if (n && c->sub.state == C_READY) send_interest(c, batch[0]->kind == OP_SUB, topics, lens, n);
    for (size_t i = 0; i < n; i++) free(batch[i]);
}

static void on_wake(uv_async_t *h) {
    lr_client *c = h->data;
    pthread_mutex_lock(&c->lock);
    op *o = c->head;
    c->head = c->tail = NULL;
    c->queued_bytes = 0;
    pthread_mutex_unlock(&c->lock);
    bool stopping = atomic_load(&c->stopping);
    op *batch[SUBSCRIBE_BATCH];
    size_t n = 0;
    while (o) {
        op *next = o->next;
        if (o->kind == OP_SUB || o->kind == OP_UNSUB) {
            if (n && (batch[0]->kind != o->kind || n == SUBSCRIBE_BATCH)) {
                send_batch(c, batch, n);
                n = 0;
            }
            batch[n++] = o;
            o = next;
            continue;
        }
        send_batch(c, batch, n); /* keep interest changes and the rest in order */
        n = 0;
        bool ready = c->pub.state == C_READY && !stopping;
        if (o->kind == OP_PUB) {
            if (ready) {
                const char *argv[] = {c->pub.sharded ? "SPUBLISH" : "PUBLISH", o->data, o->data + o->len};
                size_t alen[] = {strlen(argv[0]), o->len, o->body_len};
                if (pub_command(c, 3, argv, alen, NULL, NULL, 0) == 0)
                    bump(&c->published);
                else
                    bump(&c->dropped_full);
            } else {
                bump(&c->dropped_down);
            }
        } else if (o->kind == OP_WHO) {
            if (!ready || presence_who(c, o) != 0) o->fn(o->ctx, 0, NULL, NULL, 0, 0);
        } else if (ready) { /* while away, presence changes are dropped: on_ready rewrites all */
            presence_write(c, o);
        }
        free(o);
        o = next;
    }
    send_batch(c, batch, n);
    if (stopping) {
        stop_here(c);
        return;
    }
    backlog_changed(c);
    conn_flush(&c->sub);
    conn_flush(&c->pub);
}

static void push_op(lr_client *c, op *o) {
    o->next = NULL;
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
}

void lr_client_interest(lr_client *c, const char *topic, size_t len, int active) {
    op *o = malloc(sizeof *o + len);
    if (o) {
        o->kind = active ? OP_SUB : OP_UNSUB;
        o->len = len;
        o->body_len = 0;
        memcpy(o->data, topic, len);
    }
    uint64_t h = lv_name_hash(topic, len);
    pthread_mutex_lock(&c->lock);
    if (lv_names_reserve(&c->interest) == 0) {
        uint32_t slot = lv_names_slot(&c->interest, topic, len, h);
        interest_entry *e = (interest_entry *)c->interest.slots[slot];
        if (active && e == NULL) {
            e = malloc(sizeof *e + len);
            if (e) {
                e->key = (lv_name_key){.hash = h, .len = len};
                memcpy(e->name, topic, len);
                lv_names_put(&c->interest, slot, &e->key);
            }
        } else if (!active && e != NULL) {
            lv_names_delete(&c->interest, slot);
            free(e);
        }
    }
    atomic_store(&c->topics, c->interest.count);
    if (o) push_op(c, o);
    pthread_mutex_unlock(&c->lock);
    if (o) uv_async_send(&c->wake);
}

int lr_client_publish(lr_client *c, const lr_envelope *e) {
    if (!atomic_load_explicit(&c->connected, memory_order_relaxed)) {
        bump(&c->dropped_down);
        return -1;
    }
    lr_envelope mine = *e;
    mine.origin = c->node_id;
    mine.origin_len = strlen(c->node_id);
    uint8_t *bytes;
    size_t n;
    if (lr_envelope_encode(&mine, &bytes, &n) != 0) {
        bump(&c->dropped_full);
        return -1;
    }
    size_t chan = c->prefix_len + e->topic_len;
    op *o = malloc(sizeof *o + chan + n);
    if (o == NULL) {
        free(bytes);
        bump(&c->dropped_full);
        return -1;
    }
    o->kind = OP_PUB;
    o->len = chan;
    o->body_len = n;
    memcpy(o->data, c->prefix, c->prefix_len);
    memcpy(o->data + c->prefix_len, e->topic, e->topic_len);
    memcpy(o->data + chan, bytes, n);
    free(bytes);
    size_t size = chan + n;
    pthread_mutex_lock(&c->lock);
    size_t backlog = atomic_load_explicit(&c->backlog_bytes, memory_order_relaxed);
    bool full = c->queued_bytes + backlog + size > c->cfg.max_queued;
    if (!full) {
        c->queued_bytes += size;
        push_op(c, o);
    }
    pthread_mutex_unlock(&c->lock);
    if (full) { /* a slow Redis must not make the node hold ever more: drop, count */
        free(o);
        bump(&c->dropped_full);
        return -1;
    }
    uv_async_send(&c->wake);
    return 0;
}


static void push_presence(lr_client *c, op_kind kind, const char *topic, size_t tlen,
                          const char *id, size_t ilen, const char *entry, size_t elen,
                          lr_who_fn fn, void *ctx, unsigned limit, int count_only) {
    op *o = malloc(sizeof *o + tlen + ilen + elen);
    if (o == NULL) {
        if (fn) fn(ctx, 0, NULL, NULL, 0, 0);
        return;
    }
    *o = (op){.kind = kind, .len = tlen, .len2 = ilen, .body_len = elen, .fn = fn, .ctx = ctx,
              .limit = limit, .count_only = count_only};
    memcpy(o->data, topic, tlen);
    if (ilen) memcpy(o->data + tlen, id, ilen);
    if (elen) memcpy(o->data + tlen + ilen, entry, elen);
    pthread_mutex_lock(&c->lock);
    push_op(c, o);
    pthread_mutex_unlock(&c->lock);
    uv_async_send(&c->wake);
}

void lr_client_presence_set(lr_client *c, const char *topic, size_t topic_len, const char *id,
                            size_t id_len, const char *entry, size_t entry_len) {
    if (c->cfg.presence_ttl_ms == 0) return;
    push_presence(c, OP_PSET, topic, topic_len, id, id_len, entry, entry_len, NULL, NULL, 0, 0);
}

void lr_client_presence_del(lr_client *c, const char *topic, size_t topic_len, const char *id,
                            size_t id_len) {
    if (c->cfg.presence_ttl_ms == 0) return;
    push_presence(c, OP_PDEL, topic, topic_len, id, id_len, NULL, 0, NULL, NULL, 0, 0);
}

void lr_client_who(lr_client *c, const char *topic, size_t topic_len, unsigned limit,
                   int count_only, lr_who_fn fn, void *ctx) {
    if (c->cfg.presence_ttl_ms == 0 || !atomic_load(&c->connected) || atomic_load(&c->stopping)) {
        fn(ctx, 0, NULL, NULL, 0, 0);
        return;
    }
    push_presence(c, OP_WHO, topic, topic_len, NULL, 0, NULL, 0, fn, ctx, limit, count_only);
}

/* --- life -------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int lr_client_new(const lr_config *config, lr_client **out) {
    *out = NULL;
    if (config->host == NULL || config->node_id == NULL || config->node_id[0] == 0) return -1;
    lr_client *c = calloc(1, sizeof *c);
    if (c == NULL) return -1;
    c->cfg = *config;
    if (c->cfg.max_queued == 0) c->cfg.max_queued = 8u << 20;
    if (c->cfg.backoff_min_ms == 0) c->cfg.backoff_min_ms = 100;
    if (c->cfg.backoff_max_ms == 0) c->cfg.backoff_max_ms = 5000;
    if (c->cfg.backoff_max_ms < c->cfg.backoff_min_ms) c->cfg.backoff_max_ms = c->cfg.backoff_min_ms;
    c->host = strdup(config->host);
    c->password = dup_or_null(config->password);
    c->prefix = strdup(config->prefix ? config->prefix : "live:");
    c->node_id = strdup(config->node_id);
    if (c->host == NULL || c->prefix == NULL || c->node_id == NULL ||
        (config->password && c->password == NULL) || uv_loop_init(&c->loop) != 0) {
        free(c->host), free(c->password), free(c->prefix), free(c->node_id), free(c);
        return -1;
    }
    c->prefix_len = strlen(c->prefix);
    lv_names_seed();
    c->interest.name_offset = offsetof(interest_entry, name);
    pthread_mutex_init(&c->lock, NULL);
    uv_async_init(&c->loop, &c->wake, on_wake);
    c->wake.data = c;
    uv_timer_init(&c->loop, &c->refresh);
    c->refresh.data = c;
    conn *ks[2] = {&c->sub, &c->pub};
    for (int i = 0; i < 2; i++) {
        ks[i]->c = c;
        ks[i]->role = i == 0 ? SUB_CONN : PUB_CONN;
        ks[i]->backoff_ms = c->cfg.backoff_min_ms;
        uv_timer_init(&c->loop, &ks[i]->retry);
        ks[i]->retry.data = ks[i];
    }
    *out = c;
    return 0;
}

static void thread_main(void *arg) {
    lr_client *c = arg;
    conn_connect(&c->sub);
    conn_connect(&c->pub);
    unsigned every = c->cfg.presence_ttl_ms / 3;
    if (every) uv_timer_start(&c->refresh, on_refresh, every, every);
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

int lr_client_start(lr_client *c) {
    if (c->thread_started) return -1;
    srand((unsigned)uv_hrtime());
    if (uv_thread_create(&c->thread, thread_main, c) != 0) return -1;
    c->thread_started = true;
    return 0;
}

void lr_client_stop(lr_client *c) {
    atomic_store(&c->stopping, true);
    if (!c->thread_started || c->thread_joined) return;
    uv_async_send(&c->wake);
    uv_thread_join(&c->thread);
    c->thread_joined = true;
}

void lr_client_free(lr_client *c) {
    if (c == NULL) return;
    if (!c->thread_started) { /* close the handles lr_client_new made */
        uv_close((uv_handle_t *)&c->wake, NULL);
        uv_close((uv_handle_t *)&c->refresh, NULL);
        uv_close((uv_handle_t *)&c->sub.retry, NULL);
        uv_close((uv_handle_t *)&c->pub.retry, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&c->loop);
    for (op *o = c->head, *next; o; o = next) {
        next = o->next;
        if (o->kind == OP_WHO) o->fn(o->ctx, 0, NULL, NULL, 0, 0); /* every question is answered */
        free(o);
    }
    for (uint32_t i = 0; i < c->interest.cap; i++) free(c->interest.slots[i]);
    lv_names_free(&c->interest);
    pthread_mutex_destroy(&c->lock);
    free(c->sub.writing), free(c->pub.writing), free(c->sub.out), free(c->pub.out);
    free(c->sub.replies), free(c->pub.replies);
    free(c->host), free(c->password), free(c->prefix), free(c->node_id);
    free(c);
}

void lr_client_stats(lr_client *c, lr_stats *out) {
    uint64_t since = atomic_load(&c->down_since_ms);
    *out = (lr_stats){
        .connected = atomic_load(&c->connected),
        .sharded = atomic_load(&c->sharded),
        .down_ms = since ? now_ms() - since : 0,
        .outages = atomic_load(&c->outages),
        .published = atomic_load(&c->published),
        .dropped_down = atomic_load(&c->dropped_down),
        .dropped_full = atomic_load(&c->dropped_full),
        .received = atomic_load(&c->received),
        .malformed = atomic_load(&c->malformed),
        .own = atomic_load(&c->own),
        .topics = atomic_load(&c->topics),
    };
}
