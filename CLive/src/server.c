/* The server: options and their defaults, listening sockets, loop threads, shutdown. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"

const char *clive_strerror(int error) {
    switch (error) {
    case CLIVE_OK: return "ok";
    case CLIVE_EINVAL: return "invalid argument";
    case CLIVE_ENOMEM: return "out of memory";
    case CLIVE_ECLOSED: return "session or server closed";
    case CLIVE_EOVERFLOW: return "send queue overflowed";
    case CLIVE_ESTATE: return "not allowed in this state";
    case CLIVE_EADDR: return "cannot bind address";
    case CLIVE_ESYS: return "system call failed";
    case CLIVE_ELIMIT: return "limit reached";
    default: return "unknown error";
    }
}

/* CPUs this process may run on: under `taskset -c 0` that is 1, not the machine's count. */
static unsigned usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Defaults, each with its reason. */
static void apply_defaults(clive_options *o) {
    if (!o->loops) o->loops = usable_cpus();
    /* 1024 frames: deep enough for bursts of 256 publishes in flight, small enough that a
     * full ring is 8 KiB of pointers. */
    if (!o->queue_size) o->queue_size = 1024;
    if (!o->max_message) o->max_message = 16u << 20;
    /* one maximal message (with its header) and 1 MiB of others behind it */
    if (!o->queue_bytes) o->queue_bytes = o->max_message + (1u << 20);
    /* 4 MiB in 64-byte fragments (65,536, as conformance suites send) fits twice over */
    if (!o->max_fragments) o->max_fragments = 131072;
    if (!o->max_request_head) o->max_request_head = 8192;
    if (!o->handshake_timeout_ms) o->handshake_timeout_ms = 10000;
    if (!o->ping_interval_ms) o->ping_interval_ms = 30000; /* under most proxies' 60 s idle */
    if (!o->idle_timeout_ms) o->idle_timeout_ms = 60000;
    if (!o->close_timeout_ms) o->close_timeout_ms = 3000;
    if (o->rate_limit && !o->rate_burst) o->rate_burst = o->rate_limit;
    if (!o->rate_grace_ms) o->rate_grace_ms = 5000; /* a burst that outlasts this is abuse */
    /* Centrifugo allows 128 channels per client; an app that needs more says so. */
    if (!o->max_topics_per_session) o->max_topics_per_session = 128;
    /* about 0.3 KiB each with a short name: a bound in the hundreds of MiB at worst */
    if (!o->max_topics) o->max_topics = 1000000;
    /* names are keys, not payloads (Centrifugo: 255); 65535 is the protocol's ceiling */
    if (!o->max_topic_len) o->max_topic_len = 255;
    /* a bound on what slow readers together can pin, well above any healthy load */
    if (!o->max_queued_total) o->max_queued_total = (size_t)1 << 30;
    /* below about 128 bytes deflate saves a few bytes at best, and often adds some */
    if (!o->deflate_min_size) o->deflate_min_size = 128;
    if (!o->deflate_level) o->deflate_level = 6; /* zlib's default balance */
}

/* Ranges, checked after defaults: each bound keeps a size inside the type that holds it
 * (the request head's capacity is 32-bit, a ring's count is 32-bit) or a value that
 * makes sense at all. */
static bool outside(uint64_t v, uint64_t lo, uint64_t hi) { return v < lo || v > hi; }

static int check_ranges(const clive_options *o, char *msg, size_t cap) {
#define RANGE(field, lo, hi)                                                                \
    if (outside((uint64_t)o->field, (uint64_t)(lo), (uint64_t)(hi))) {                    \
        snprintf(msg, cap, "%s must be %llu...%llu, got %llu", #field,                     \
                 (unsigned long long)(lo), (unsigned long long)(hi),                        \
                 (unsigned long long)o->field);                                             \
        return CLIVE_EINVAL;                                                                \
    }
    RANGE(loops, 1, 1024);
    RANGE(queue_size, 1, 1u << 24);
    RANGE(queue_bytes, 1, (uint64_t)1 << 40);
    RANGE(max_message, 1, (uint64_t)1 << 31);
    RANGE(max_fragments, 1, 1u << 30);
    RANGE(max_request_head, 64, 1u << 20);
    RANGE(handshake_timeout_ms, 1, 86400000u);
    RANGE(ping_interval_ms, 1, 86400000u);
    RANGE(idle_timeout_ms, 1, 86400000u);
    RANGE(close_timeout_ms, 1, 86400000u);
    RANGE(subprotocol_count, 0, 127);
    RANGE(topic_policy_count, 0, 256);
    RANGE(presence_interval_ms, 0, 3600000u);
    RANGE(rate_grace_ms, 1, 86400000u);
    RANGE(max_topic_len, 1, 65535);
    RANGE(max_queued_total, 1, (uint64_t)1 << 50);
    RANGE(deflate_level, 1, 9);
    RANGE(deflate_min_size, 1, (uint64_t)1 << 31);
#undef RANGE
    if (o->deflate_client_window_bits &&
        outside(o->deflate_client_window_bits, 9, 15)) {
        snprintf(msg, cap, "deflate_client_window_bits must be 0 or 9...15, got %u",
                 o->deflate_client_window_bits);
        return CLIVE_EINVAL;
    }
    if (o->rate_limit && o->rate_burst > 1000000) {
        snprintf(msg, cap, "rate_burst must be 1...1000000, got %u", o->rate_burst);
        return CLIVE_EINVAL;
    }
    return CLIVE_OK;
}

int clive_options_check(const clive_options *options, char *msg, size_t cap) {
    clive_options o = *options;
    apply_defaults(&o);
    char scratch[8];
    if (msg == NULL || cap == 0) {
        msg = scratch;
        cap = sizeof scratch;
    }
    msg[0] = 0;
    return check_ranges(&o, msg, cap);
}

static char **copy_strings(clive_server *srv, const char *const *src, size_t n) {
    if (n == 0) return NULL;
    char **dst = calloc(n, sizeof *dst);
    if (dst == NULL) return NULL;
    char **owned = realloc(srv->owned_strings, sizeof *owned * (srv->owned_count + n + 1));
    if (owned == NULL) {
        free(dst);
        return NULL;
    }
    srv->owned_strings = owned;
    owned[srv->owned_count++] = (char *)dst; /* the array itself is owned too */
    for (size_t i = 0; i < n; i++) {
        dst[i] = strdup(src[i] ? src[i] : "");
        if (dst[i] == NULL) return NULL;
        owned[srv->owned_count++] = dst[i];
    }
    return dst;
}

int clive_server_new(const clive_options *options, clive_server **out) {
    *out = NULL;
    clive_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) return CLIVE_ENOMEM;
    srv->options = *options;
    apply_defaults(&srv->options);
    atomic_init(&srv->refs, 1);
    lv_names_seed();
    lv_presence_init(&srv->presence);
    lv_peers_init(&srv->peers);
    lv_interest_init(&srv->interest, options->callbacks.on_interest != NULL);
    int err = CLIVE_OK;
    clive_options *o = &srv->options;
    if (o->subprotocol_count) {
        o->subprotocols = (const char *const *)copy_strings(srv, options->subprotocols,
                                                            options->subprotocol_count);
        if (o->subprotocols == NULL) err = CLIVE_ENOMEM;
    }
    if (o->allowed_origin_count && err == CLIVE_OK) {
        o->allowed_origins = (const char *const *)copy_strings(srv, options->allowed_origins,
                                                               options->allowed_origin_count);
        if (o->allowed_origins == NULL) err = CLIVE_ENOMEM;
    }
    if (o->topic_policy_count && err == CLIVE_OK) {
        clive_topic_policy *policies = calloc(o->topic_policy_count, sizeof *policies);
        const char **prefixes = calloc(o->topic_policy_count, sizeof *prefixes);
        char **copies = NULL;
        if (policies && prefixes) {
            for (size_t i = 0; i < o->topic_policy_count; i++) prefixes[i] = options->topic_policies[i].prefix;
            copies = copy_strings(srv, prefixes, o->topic_policy_count);
        }
        free(prefixes);
        if (copies == NULL) {
            free(policies);
            err = CLIVE_ENOMEM;
        } else {
            for (size_t i = 0; i < o->topic_policy_count; i++) {
                policies[i] = options->topic_policies[i];
                policies[i].prefix = copies[i];
            }
            o->topic_policies = policies;
            srv->owned_policies = policies;
        }
    }
    if (err == CLIVE_OK) err = check_ranges(o, srv->error, sizeof srv->error);
    if (err == CLIVE_OK) {
        srv->nloops = o->loops;
        srv->loops = calloc(srv->nloops, sizeof *srv->loops);
        if (srv->loops == NULL) err = CLIVE_ENOMEM;
        for (unsigned i = 0; err == CLIVE_OK && i < srv->nloops; i++)
            err = lv_loop_init(&srv->loops[i], srv, i);
    }
    if (err != CLIVE_OK) {
        lv_server_release(srv);
        return err;
    }
    *out = srv;
    return CLIVE_OK;
}

void clive_server_set_callback_user(clive_server *srv, void *user) {
    if (!atomic_load(&srv->started)) srv->options.callbacks.user = user;
}

/* Binds one listening socket. The first loop's socket is bound without SO_REUSEPORT (unless
 * the port is to be shared), so that a port another process holds fails here instead of
 * quietly splitting the clients between two servers; the option is then set on it before
 * listen, and the other loops' sockets join it. Linux lets a socket join a port only
 * when every socket on it, the first included, has SO_REUSEPORT and the same owner. */
static int bind_one(const struct addrinfo *ai, uint16_t port, bool first, bool share) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!first || share) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (first && !share) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void describe_bind_error(clive_server *srv, const char *host, uint16_t port, int e) {
    const char *h = host && *host ? host : "*";
    bool v6 = strchr(h, ':') != NULL;
    const char *why = e == EADDRINUSE ? "already in use"
                      : e == EACCES ? "not permitted (ports below 1024 need privileges)"
                      : e == EADDRNOTAVAIL ? "not an address of this machine"
                                           : strerror(e);
    snprintf(srv->error, sizeof srv->error, "address %s%s%s:%u %s", v6 ? "[" : "", h,
             v6 ? "]" : "", port, why);
}

/* Adds listener number srv->nlisteners on every loop. */
static int add_listener(clive_server *srv, const char *host, uint16_t port, clive_tls *tls) {
    if (atomic_load(&srv->started) || srv->nlisteners == LV_MAX_LISTENERS) return CLIVE_ESTATE;
    for (unsigned k = 0; k < srv->nlisteners; k++)
        if ((srv->tls[k] != NULL) == (tls != NULL)) return CLIVE_ESTATE; /* one of each kind */
    unsigned k = srv->nlisteners;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int gai = getaddrinfo(host && *host ? host : NULL, service, &hints, &res);
    if (gai != 0 || res == NULL) {
        snprintf(srv->error, sizeof srv->error, "cannot resolve host %s: %s", host ? host : "",
                 gai ? gai_strerror(gai) : "no address");
        return CLIVE_EADDR;
    }
    int err = CLIVE_OK;
    uint16_t asked = port;
    for (unsigned i = 0; i < srv->nloops; i++) {
        int fd = bind_one(res, port, i == 0, srv->options.share_port != 0);
        if (fd < 0) {
            describe_bind_error(srv, host, asked ? asked : port, errno);
            err = CLIVE_EADDR;
            break;
        }
        srv->loops[i].listeners[k].fd = fd;
        srv->loops[i].listeners[k].tls = tls;
        if (port == 0) { /* the others join the port the kernel picked for the first */
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &len);
            port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    freeaddrinfo(res);
    if (err != CLIVE_OK) {
        for (unsigned i = 0; i < srv->nloops; i++) {
            lv_listener *li = &srv->loops[i].listeners[k];
            if (li->fd >= 0) close(li->fd);
            li->fd = -1;
            li->tls = NULL;
        }
        return err;
    }
    if (k == 0) srv->port = port;
    if (tls) {
        lv_tls_retain(tls);
        srv->tls[k] = tls;
        srv->tls_port = port;
    }
    srv->nlisteners = k + 1;
    for (unsigned i = 0; i < srv->nloops; i++) srv->loops[i].nlisteners = k + 1;
    return CLIVE_OK;
}

int clive_server_listen(clive_server *srv, const char *host, uint16_t port) {
    return add_listener(srv, host, port, NULL);
}

int clive_server_listen_tls(clive_server *srv, const char *host, uint16_t port, clive_tls *tls) {
    if (tls == NULL) return CLIVE_EINVAL;
    return add_listener(srv, host, port, tls);
}

uint16_t clive_server_port(const clive_server *srv) { return srv->port; }

uint16_t clive_server_tls_port(const clive_server *srv) { return srv->tls_port; }

const char *clive_server_error(const clive_server *srv) { return srv->error; }

static unsigned running_loops(const clive_server *srv);

static void post_shutdown(clive_server *srv) {
    unsigned n = running_loops(srv);
    for (unsigned i = 0; i < n; i++) {
        lv_cmd *c = calloc(1, sizeof *c);
        if (c == NULL) abort(); /* a shutdown that cannot be delivered would hang wait() */
        c->kind = LV_CMD_SHUTDOWN;
        lv_loop_post(&srv->loops[i], c);
    }
}

int clive_server_start(clive_server *srv) {
    if (atomic_load(&srv->shutting_down)) { /* shut down before it ran: stop listening */
        for (unsigned i = 0; i < srv->nloops; i++) {
            for (unsigned k = 0; k < srv->loops[i].nlisteners; k++) {
                lv_listener *li = &srv->loops[i].listeners[k];
                if (li->fd >= 0) close(li->fd);
                li->fd = -1;
            }
        }
        return CLIVE_ECLOSED;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&srv->started, &expected, 1)) return CLIVE_ESTATE;
    for (unsigned i = 0; i < srv->nloops; i++) {
        int err = lv_loop_start(&srv->loops[i]);
        if (err != CLIVE_OK) {
            atomic_store(&srv->started, 2 + (int)i); /* loops [0, i) run */
            clive_server_shutdown(srv);
            post_shutdown(srv);
            return err;
        }
    }
    atomic_store(&srv->started, 2 + (int)srv->nloops);
    /* A shutdown that raced with this start may have seen fewer loops running: tell them
     * all (a second shutdown command is a no-op for a loop). */
    if (atomic_load(&srv->shutting_down)) post_shutdown(srv);
    return CLIVE_OK;
}

static unsigned running_loops(const clive_server *srv) {
    int st = atomic_load(&srv->started);
    return st >= 2 ? (unsigned)(st - 2) : 0;
}

void clive_server_shutdown(clive_server *srv) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&srv->shutting_down, &expected, 1)) return;
    post_shutdown(srv);
}

void clive_server_wait(clive_server *srv) {
    unsigned n = running_loops(srv);
    for (unsigned i = 0; i < n; i++) {
        lv_loop *l = &srv->loops[i];
        if (l->thread_joined) continue;
        uv_thread_join(&l->thread);
        l->thread_joined = true;
    }
}

void lv_server_release(clive_server *srv) {
    if (atomic_fetch_sub(&srv->refs, 1) != 1) return;
    for (unsigned i = 0; srv->loops && i < srv->nloops; i++) lv_loop_free(&srv->loops[i]);
    free(srv->loops);
    lv_presence_free(&srv->presence);
    lv_peers_free(&srv->peers);
    lv_interest_free(&srv->interest);
    for (unsigned k = 0; k < srv->nlisteners; k++) lv_tls_release(srv->tls[k]);
    for (size_t i = 0; i < srv->owned_count; i++) free(srv->owned_strings[i]);
    free(srv->owned_strings);
    free(srv->owned_policies);
    free(srv);
}

void clive_server_free(clive_server *srv) {
    if (srv == NULL) return;
    if (running_loops(srv)) {
        clive_server_shutdown(srv);
        clive_server_wait(srv);
    }
    lv_server_release(srv);
}

size_t clive_presence_list(clive_server *srv, const char *topic, size_t len, uint64_t *ids,
                           size_t cap) {
    if (!srv->options.presence) return 0;
    return lv_presence_list(&srv->presence, topic, len, ids, cap);
}

void clive_server_stats(const clive_server *srv, clive_stats *out) {
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < srv->nloops; i++) {
        const lv_counters *c = &srv->loops[i].counters;
#define SUM(field) out->field += atomic_load_explicit(&c->field, memory_order_relaxed)
        SUM(connections);
        SUM(sessions);
        SUM(subscriptions);
        SUM(topics);
        SUM(queued_frames);
        SUM(queued_bytes);
        SUM(overflows);
        SUM(skipped);
        SUM(messages_in);
        SUM(frames_out);
        SUM(rate_limited);
        SUM(budget_closes);
        SUM(refused_subscribes);
        SUM(deliveries);
        SUM(bytes_out);
        SUM(coalesced);
        SUM(throttled);
        SUM(fanouts);
        SUM(fanout_ns);
        for (unsigned k = 0; k < CLIVE_CLOSE_KINDS; k++) SUM(closed[k]);
        for (unsigned k = 0; k < CLIVE_REJECT_STATUSES; k++) SUM(rejected[k]);
        for (unsigned k = 0; k < CLIVE_TIMING_BUCKETS; k++) SUM(fanout_hist[k]);
        SUM(compressions);
        SUM(tls_handshakes);
        SUM(tls_failures);
#undef SUM
    }
    out->published = atomic_load_explicit(&srv->published, memory_order_relaxed);
}

static const int reject_statuses[CLIVE_REJECT_STATUSES] = {400, 401, 403, 404, 426, 429,
                                                           431, 500, 503, 505, 0};

int clive_reject_status(unsigned index) {
    return index < CLIVE_REJECT_STATUSES ? reject_statuses[index] : 0;
}

void lv_count_rejected(lv_loop *l, int status) {
    unsigned k = 0;
    while (k < CLIVE_REJECT_STATUSES - 1 && reject_statuses[k] != status) k++;
    lv_count(&l->counters.rejected[k], 1);
}
