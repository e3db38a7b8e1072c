/* A server for the end-to-end tests, written against the public C API only, so that the
 * core can be built and run under AddressSanitizer, UBSan and ThreadSanitizer without the
 * Swift toolchain's sanitizer builds.
 *
 * WebSocket: echoes every message (text as text, binary as binary), except text commands:
 *   "/sub T"          subscribe to topic T            -> "ok sub T", or "err sub <error>"
 *   "/unsub T"        unsubscribe                     -> "ok unsub T"
 *   "/pub T payload"  publish payload (text) to T     -> "ok pub T"
 *   "/pubbin T n"     publish n zero bytes, binary, to T
 *   "/flood n size"   send n binary messages of size bytes to this session at once
 *   "/close code reason"  the server closes the session
 *   "/id"             -> the session id
 *   "/mtsend n"       4 threads (not loop threads) each send n text frames "t<k>:<i>" to
 *                     this session at once, through clive_session_send
 *   "/who T"          -> "who T id,id,..." (with --presence)
 *   "/closeread"      (sent fragmented) the handler closes its own session with 1000, then
 *                     reads every byte it was handed (AddressSanitizer checks they are live)
 *   "/seq"            -> "seq N": N counts the messages the server has handled, over all
 *                     sessions, so a test can tell in which order two sessions were served
 *   "/nop"            nothing
 *   "/inspect"        a thread (not the loop) asks clive_session_inspect; the answer comes
 *                     as "inspect open=1 frames=F bytes=B topics=a,b"
 *   "/broadcast text" clive_broadcast of text to every session
 * With --presence (and --presence-ms), joins and leaves are published to their topic as
 * "presence T +id,id -id,id".
 * The path "/reject401" rejects the upgrade with 401 and a body; "/wait" leaves the
 * upgrade undecided (the handshake timeout then ends it).
 * Plain HTTP: GET /stats -> the clive_stats counters and the on_close count as JSON;
 * anything else 404.
 *
 * Topic policies: "--throttle PREFIX:MS" and "--latest PREFIX" (repeatable).
 * permessage-deflate: "--deflate", with "--deflate-min N" and "--deflate-client-bits B".
 *
 * TLS: "--tls-cert FILE --tls-key FILE" makes the --port listener speak TLS, or, with
 * "--tls-port P", adds a TLS listener on P beside the plain one (its port is "tls_port" in
 * /stats). SIGHUP reloads the certificate files. on_log lines go to stderr as
 * "log <level>: <message>".
 *
 * Prints "PORT <n>" once listening; SIGINT/SIGTERM shut it down gracefully, and the exit
 * status is 0 only if every on_close was called exactly once. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clive.h"

static clive_server *server;
static atomic_long opened, closed, double_closed, handled;

static int starts_with(const uint8_t *d, size_t n, const char *prefix) {
    size_t k = strlen(prefix);
    return n >= k && memcmp(d, prefix, k) == 0;
}

/* snprintf's return value is the length it wanted; never send more than was written. */
static size_t written(int k, size_t cap) { return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1; }

/* --interest: on_interest's calls in order (see on_interest) */
static pthread_mutex_t interest_lock = PTHREAD_MUTEX_INITIALIZER;
static char interest_log[4096]; /* "+T -T ..." in call order, for /interestlog (the broadcasts
                                   of two loops may reach a session in either order) */
static size_t interest_log_len;


static void send_text(clive_session *s, const char *text, size_t len) {
    clive_frame *f = clive_frame_new(0, text, len);
    if (f == NULL) return;
    clive_session_send(s, f);
    clive_frame_release(f);
}

/* Sends prefix + bytes, however long (topics go up to 64 KiB). */
static void send_joined(clive_session *s, const char *prefix, const uint8_t *d, size_t n) {
    size_t k = strlen(prefix);
    char *text = malloc(k + n + 1);
    if (text == NULL) return;
    memcpy(text, prefix, k);
    memcpy(text + k, d, n);
    send_text(s, text, k + n);
    free(text);
}

typedef struct sender {
    clive_session *session;
    int thread, count;
} sender;

/* A non-loop thread sending to a session: exercises the inbox path under ThreadSanitizer. */
static void *send_from_thread(void *arg) {
    sender *w = arg;
    char text[32];
    for (int i = 0; i < w->count; i++) {
        int k = snprintf(text, sizeof text, "t%d:%d", w->thread, i);
        clive_frame *f = clive_frame_new(0, text, (size_t)k);
        int rc = f ? clive_session_send(w->session, f) : CLIVE_ENOMEM;
        clive_frame_release(f);
        if (rc != CLIVE_OK) break;
    }
    clive_session_release(w->session);
    free(w);
    return NULL;
}

/* The rest of /stats: "closes" by clive_close_kind, "rejected" by status, the byte and
 * policy counters, and the fanout timing; then the closing brace. */
static int append_stats_more(char *p, size_t cap, const clive_stats *st) {
    size_t at = 0;
#define PUT(...) at += written(snprintf(p + at, cap - at, __VA_ARGS__), cap - at)
    PUT("\"closes\":[");
    for (unsigned k = 0; k < CLIVE_CLOSE_KINDS; k++) PUT("%s%lu", k ? "," : "", (unsigned long)st->closed[k]);
    PUT("],\"rejected\":{");
    for (unsigned k = 0; k < CLIVE_REJECT_STATUSES; k++)
        PUT("%s\"%d\":%lu", k ? "," : "", clive_reject_status(k), (unsigned long)st->rejected[k]);
    PUT("},\"published\":%lu,\"deliveries\":%lu,\"bytes_out\":%lu,\"coalesced\":%lu,"
        "\"throttled\":%lu,\"fanouts\":%lu,\"fanout_ns\":%lu,\"fanout_hist\":[",
        (unsigned long)st->published, (unsigned long)st->deliveries, (unsigned long)st->bytes_out,
        (unsigned long)st->coalesced, (unsigned long)st->throttled, (unsigned long)st->fanouts,
        (unsigned long)st->fanout_ns);
    for (unsigned k = 0; k < CLIVE_TIMING_BUCKETS; k++) PUT("%s%lu", k ? "," : "", (unsigned long)st->fanout_hist[k]);
    PUT("],\"tls_handshakes\":%lu,\"tls_failures\":%lu,\"tls_port\":%u}\n",
        (unsigned long)st->tls_handshakes, (unsigned long)st->tls_failures,
        clive_server_tls_port(server));
#undef PUT
    return (int)at;
}

static void on_request(clive_session *s, const clive_request *r, void *user) {
    (void)user;
    if (!r->is_upgrade) {
        if (r->path_len == 6 && memcmp(r->path, "/stats", 6) == 0) {
            clive_stats st;
            clive_server_stats(server, &st);
            char body[4096];
            int n = snprintf(body, sizeof body,
                             "{\"connections\":%lu,\"sessions\":%lu,\"subscriptions\":%lu,"
                             "\"topics\":%lu,\"queued_frames\":%lu,\"queued_bytes\":%lu,"
                             "\"overflows\":%lu,\"skipped\":%lu,\"messages_in\":%lu,"
                             "\"frames_out\":%lu,\"rate_limited\":%lu,\"budget_closes\":%lu,"
                             "\"refused_subscribes\":%lu,\"compressions\":%lu,"
                             "\"opened\":%ld,\"closed\":%ld,"
                             "\"double_closed\":%ld,",
                             (unsigned long)st.connections, (unsigned long)st.sessions,
                             (unsigned long)st.subscriptions, (unsigned long)st.topics,
                             (unsigned long)st.queued_frames, (unsigned long)st.queued_bytes,
                             (unsigned long)st.overflows, (unsigned long)st.skipped,
                             (unsigned long)st.messages_in, (unsigned long)st.frames_out,
                             (unsigned long)st.rate_limited, (unsigned long)st.budget_closes,
                             (unsigned long)st.refused_subscribes,
                             (unsigned long)st.compressions,
                             atomic_load(&opened), atomic_load(&closed),
                             atomic_load(&double_closed));
            n += append_stats_more(body + n, sizeof body - (size_t)n, &st);
            static const char type[] = "Content-Type: application/json\r\n";
            clive_session_respond(s, 200, type, sizeof type - 1, body, (size_t)n);
        } else {
            clive_session_respond(s, 404, NULL, 0, "not found\n", 10);
        }
        return;
    }
    if (r->path_len == 10 && memcmp(r->path, "/reject401", 10) == 0) {
        clive_session_respond(s, 401, NULL, 0, "who are you\n", 12);
        return;
    }
    if (r->path_len == 5 && memcmp(r->path, "/wait", 5) == 0) return;
    /* any allocation: LeakSanitizer then proves on_close ran for the session */
    clive_session_set_user(s, malloc(1));
    atomic_fetch_add(&opened, 1);
    clive_session_accept(s, 0);
}

static void on_inspected(clive_session *s, const clive_session_info *info, void *ctx) {
    (void)ctx;
    char text[4096];
    int k = snprintf(text, sizeof text, "inspect open=%d frames=%u bytes=%zu topics=", info->open,
                     info->queued_frames, info->queued_bytes);
    for (size_t i = 0; i < info->topic_count && k < (int)sizeof text - 300; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "%s%.*s", i ? "," : "",
                      (int)info->topic_lens[i], info->topics[i]);
    send_text(s, text, written(k, sizeof text));
    clive_session_release(s);
}

static void *inspect_from_thread(void *arg) {
    clive_session *s = arg;
    if (clive_session_inspect(s, on_inspected, NULL) != CLIVE_OK) clive_session_release(s);
    return NULL;
}

static void on_message(clive_session *s, int binary, const uint8_t *d, size_t n, void *user) {
    (void)user;
    char reply[512];
    long seq = atomic_fetch_add(&handled, 1) + 1;
    if (!binary && n == 4 && memcmp(d, "/nop", 4) == 0) {
        return;
    } else if (!binary && n == 4 && memcmp(d, "/seq", 4) == 0) {
        int k = snprintf(reply, sizeof reply, "seq %ld", seq);
        send_text(s, reply, written(k, sizeof reply));
    } else if (!binary && starts_with(d, n, "/closeread")) {
        clive_session_close(s, 1000, NULL, 0);
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < n; i++) sum ^= d[i]; /* after the close: must still be live */
        (void)sum;
    } else if (!binary && n == 8 && memcmp(d, "/inspect", 8) == 0) {
        clive_session_retain(s);
        pthread_t th;
        if (pthread_create(&th, NULL, inspect_from_thread, s) == 0)
            pthread_detach(th);
        else
            inspect_from_thread(s);
    } else if (!binary && starts_with(d, n, "/broadcast ")) {
        clive_frame *f = clive_frame_new(0, d + 11, n - 11);
        clive_broadcast(server, &f, 1);
        clive_frame_release(f);
    } else if (!binary && starts_with(d, n, "/sub ")) {
        int rc = clive_subscribe(s, (const char *)d + 5, n - 5);
        if (rc == CLIVE_OK) {
            send_joined(s, "ok sub ", d + 5, n - 5);
        } else {
            int k = snprintf(reply, sizeof reply, "err sub %s", clive_strerror(rc));
            send_text(s, reply, written(k, sizeof reply));
        }
    } else if (!binary && starts_with(d, n, "/unsub ")) {
        clive_unsubscribe(s, (const char *)d + 7, n - 7);
        send_joined(s, "ok unsub ", d + 7, n - 7);
    } else if (!binary && (starts_with(d, n, "/pub ") || starts_with(d, n, "/pubbin "))) {
        int bin = starts_with(d, n, "/pubbin ");
        const char *t = (const char *)d + (bin ? 8 : 5);
        const char *end = (const char *)d + n;
        const char *sp = memchr(t, ' ', (size_t)(end - t));
        if (sp == NULL) return;
        clive_frame *f;
        if (bin) {
            char digits[24]; /* the message is not NUL-terminated: parse a bounded copy */
            snprintf(digits, sizeof digits, "%.*s", (int)(end - sp - 1), sp + 1);
            size_t size = strtoul(digits, NULL, 10);
            void *zeros = calloc(1, size + 1);
            f = clive_frame_new(1, zeros, size);
            free(zeros);
        } else {
            f = clive_frame_new(0, sp + 1, (size_t)(end - sp - 1));
        }
        clive_publish(server, t, (size_t)(sp - t), &f, 1);
        clive_frame_release(f);
        send_joined(s, "ok pub ", (const uint8_t *)t, (size_t)(sp - t));
    } else if (!binary && starts_with(d, n, "/flood ")) {
        char args[64];
        snprintf(args, sizeof args, "%.*s", (int)(n - 7), d + 7);
        unsigned long count = 0, size = 0;
        sscanf(args, "%lu %lu", &count, &size);
        void *zeros = calloc(1, size + 1);
        clive_frame *f = clive_frame_new(1, zeros, size);
        free(zeros);
        for (unsigned long i = 0; i < count; i++)
            if (clive_session_send(s, f) != CLIVE_OK) break;
        clive_frame_release(f);
    } else if (!binary && starts_with(d, n, "/close ")) {
        char args[160];
        snprintf(args, sizeof args, "%.*s", (int)(n - 7), d + 7);
        char *reason = strchr(args, ' ');
        const char *r = reason ? reason + 1 : "";
        clive_session_close(s, (uint16_t)atoi(args), r, strlen(r));
    } else if (!binary && starts_with(d, n, "/who ")) {
        uint64_t ids[64];
        size_t total = clive_presence_list(server, (const char *)d + 5, n - 5, ids, 64);
        int k = (int)written(snprintf(reply, sizeof reply, "who %.*s ", (int)(n - 5), d + 5), sizeof reply);
        for (size_t i = 0; i < total && i < 64 && k < (int)sizeof reply - 24; i++)
            k += snprintf(reply + k, sizeof reply - (size_t)k, "%s%llu", i ? "," : "",
                          (unsigned long long)ids[i]);
        send_text(s, reply, written(k, sizeof reply));
    } else if (!binary && starts_with(d, n, "/mtsend ")) {
        char digits[16];
        snprintf(digits, sizeof digits, "%.*s", (int)(n - 8), d + 8);
        int count = atoi(digits);
        for (int t = 0; t < 4; t++) {
            sender *w = malloc(sizeof *w);
            *w = (sender){s, t, count};
            clive_session_retain(s);
            pthread_t th;
            if (pthread_create(&th, NULL, send_from_thread, w) == 0)
                pthread_detach(th);
            else
                send_from_thread(w);
        }
    } else if (!binary && n == 12 && memcmp(d, "/interestlog", 12) == 0) {
        char log[sizeof interest_log + 16];
        pthread_mutex_lock(&interest_lock);
        int k = snprintf(log, sizeof log, "log %s", interest_log);
        pthread_mutex_unlock(&interest_lock);
        send_text(s, log, written(k, sizeof log));
    } else if (!binary && n == 3 && memcmp(d, "/id", 3) == 0) {
        int k = snprintf(reply, sizeof reply, "%llu",
                         (unsigned long long)clive_session_id(s));
        send_text(s, reply, (size_t)k);
    } else {
        clive_frame *f = clive_frame_new(binary, d, n);
        if (f == NULL) return;
        clive_session_send(s, f);
        clive_frame_release(f);
    }
}

static void on_close(clive_session *s, clive_close_kind kind, int code, const char *reason,
                     size_t reason_len, void *user) {
    (void)kind, (void)code, (void)reason, (void)reason_len, (void)user;
    static char closed_marker;
    void *mark = clive_session_user(s);
    if (mark == NULL) return; /* never accepted */
    if (mark == &closed_marker) {
        atomic_fetch_add(&double_closed, 1);
        return;
    }
    free(mark);
    clive_session_set_user(s, &closed_marker);
    atomic_fetch_add(&closed, 1);
}

static void append_ids(char *out, size_t cap, int *k, char sign, const uint64_t *ids, size_t n) {
    *k += snprintf(out + *k, cap - (size_t)*k, " %c", sign);
    for (size_t i = 0; i < n && *k < (int)cap - 24; i++)
        *k += snprintf(out + *k, cap - (size_t)*k, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
}

static void on_presence(const char *topic, size_t len, const uint64_t *joined, size_t nj,
                        const uint64_t *left, size_t nl, void *user) {
    (void)user;
    char text[8192];
    int k = snprintf(text, sizeof text, "presence %.*s", (int)len, topic);
    append_ids(text, sizeof text, &k, '+', joined, nj);
    append_ids(text, sizeof text, &k, '-', left, nl);
    clive_frame *f = clive_frame_new(0, text, (size_t)k);
    clive_publish(server, topic, len, &f, 1);
    clive_frame_release(f);
}

/* --interest: every open session hears the node's interest changes as "interest +T" and
 * "interest -T" (a broadcast does not subscribe, so it is allowed under on_interest). */
static void on_interest(const char *topic, size_t len, int active, void *user) {
    (void)user;
    pthread_mutex_lock(&interest_lock);
    int w = snprintf(interest_log + interest_log_len, sizeof interest_log - interest_log_len,
                     "%s%c%.*s", interest_log_len ? " " : "", active ? '+' : '-', (int)len, topic);
    interest_log_len += written(w, sizeof interest_log - interest_log_len);
    pthread_mutex_unlock(&interest_lock);
    char text[512];
    int k = snprintf(text, sizeof text, "interest %c%.*s", active ? '+' : '-', (int)len, topic);
    clive_frame *f = clive_frame_new(0, text, written(k, sizeof text));
    clive_broadcast(server, &f, 1);
    clive_frame_release(f);
}

static unsigned opt(int argc, char **argv, const char *name, unsigned dflt) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return (unsigned)strtoul(argv[i + 1], NULL, 10);
    return dflt;
}

static int flag(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

static void on_log(int level, const char *message, void *user) {
    (void)user;
    static const char *const names[] = {"debug", "info", "warning"};
    fprintf(stderr, "log %s: %s\n", level >= 0 && level <= 2 ? names[level] : "?", message);
}

static const char *text_opt(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* loop threads inherit it; main waits below */

    const char *origin = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--origin") == 0) origin = argv[i + 1];
    static const char *const protocols[] = {"live.v1.json", "live.v1.msgpack"};
    clive_topic_policy policies[8];
    static char prefixes[8][128];
    size_t npolicies = 0;
    for (int i = 1; i + 1 < argc && npolicies < 8; i++) {
        if (strcmp(argv[i], "--throttle") == 0) {
            const char *colon = strrchr(argv[i + 1], ':');
            if (colon == NULL) continue;
            snprintf(prefixes[npolicies], sizeof prefixes[0], "%.*s", (int)(colon - argv[i + 1]), argv[i + 1]);
            policies[npolicies] = (clive_topic_policy){prefixes[npolicies], (unsigned)atoi(colon + 1), 0};
            npolicies++;
        } else if (strcmp(argv[i], "--latest") == 0) {
            policies[npolicies++] = (clive_topic_policy){argv[i + 1], 0, 1};
        }
    }
    clive_options o = {
        .loops = opt(argc, argv, "--loops", 2),
        .queue_size = opt(argc, argv, "--queue-size", 0),
        .queue_bytes = opt(argc, argv, "--queue-bytes", 0),
        .max_message = opt(argc, argv, "--max-message", 0),
        .max_fragments = opt(argc, argv, "--max-fragments", 0),
        .max_sessions = opt(argc, argv, "--max-sessions", 0),
        .handshake_timeout_ms = opt(argc, argv, "--handshake-ms", 0),
        .ping_interval_ms = opt(argc, argv, "--ping-ms", 0),
        .idle_timeout_ms = opt(argc, argv, "--idle-ms", 0),
        .close_timeout_ms = opt(argc, argv, "--close-ms", 0),
        .subprotocols = protocols,
        .subprotocol_count = 2,
        .allowed_origins = origin ? &origin : NULL,
        .allowed_origin_count = origin ? 1 : 0,
        .presence = flag(argc, argv, "--presence"),
        .presence_interval_ms = opt(argc, argv, "--presence-ms", 0),
        .topic_policies = npolicies ? policies : NULL,
        .topic_policy_count = npolicies,
        .rate_limit = opt(argc, argv, "--rate-limit", 0),
        .rate_burst = opt(argc, argv, "--rate-burst", 0),
        .rate_grace_ms = opt(argc, argv, "--rate-grace-ms", 0),
        .max_topics_per_session = opt(argc, argv, "--max-topics-per-session", 0),
        .max_topics = opt(argc, argv, "--max-topics", 0),
        .max_topic_len = opt(argc, argv, "--max-topic-len", 0),
        .max_queued_total = opt(argc, argv, "--max-queued-total", 0),
        .max_sessions_per_ip = opt(argc, argv, "--max-per-ip", 0),
        .share_port = flag(argc, argv, "--share-port"),
        .deflate = flag(argc, argv, "--deflate"),
        .deflate_min_size = opt(argc, argv, "--deflate-min", 0),
        .deflate_client_window_bits = opt(argc, argv, "--deflate-client-bits", 0),
        .callbacks = {.on_request = on_request, .on_message = on_message,
                      .on_close = on_close, .on_presence = on_presence,
                      .on_interest = flag(argc, argv, "--interest") ? on_interest : NULL,
                      .on_log = on_log},
    };
    char why[192];
    int err = clive_options_check(&o, why, sizeof why);
    if (err != CLIVE_OK) {
        fprintf(stderr, "test_server: %s\n", why);
        return 2;
    }
    const char *cert = text_opt(argc, argv, "--tls-cert"), *key = text_opt(argc, argv, "--tls-key");
    clive_tls *tls = NULL;
    if (cert && key && (err = clive_tls_new(cert, key, &tls, why, sizeof why)) != CLIVE_OK) {
        fprintf(stderr, "test_server: %s\n", why);
        return 2;
    }
    uint16_t port = (uint16_t)opt(argc, argv, "--port", 0);
    int tls_port = text_opt(argc, argv, "--tls-port") ? (int)opt(argc, argv, "--tls-port", 0) : -1;
    err = clive_server_new(&o, &server);
    if (err == CLIVE_OK && (tls == NULL || tls_port >= 0))
        err = clive_server_listen(server, "127.0.0.1", port);
    if (err == CLIVE_OK && tls)
        err = clive_server_listen_tls(server, "127.0.0.1", tls_port >= 0 ? (uint16_t)tls_port : port, tls);
    if (err == CLIVE_OK) err = clive_server_start(server);
    if (err != CLIVE_OK) {
        fprintf(stderr, "test_server: %s: %s\n", clive_strerror(err),
                server ? clive_server_error(server) : "");
        return 2;
    }
    printf("PORT %u\n", clive_server_port(server));
    fflush(stdout);
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        err = tls ? clive_tls_reload(tls, why, sizeof why) : CLIVE_OK;
        fprintf(stderr, "test_server: reload %s%s\n", err == CLIVE_OK ? "ok" : "failed: ",
                err == CLIVE_OK ? "" : why);
    }
    clive_server_shutdown(server);
    clive_server_wait(server);
    long o_ = atomic_load(&opened), c_ = atomic_load(&closed), d_ = atomic_load(&double_closed);
    clive_server_free(server);
    clive_tls_free(tls);
    fprintf(stderr, "test_server: opened %ld closed %ld double %ld\n", o_, c_, d_);
    return (o_ == c_ && d_ == 0) ? 0 : 1;
}
