/* CLive: the C core of Live, a WebSocket pub/sub server on libuv.
 *
 * Threads. A server runs N event loops, one thread each. A session belongs to one loop
 * for its whole life and all of its socket I/O happens on that loop's thread. Functions
 * marked "any thread" may be called from any thread, including the loop threads and the
 * callbacks; when called off the session's loop they post a command to that loop through
 * a lock-free queue and return without waiting. Callbacks run on the session's loop thread
 * and must not block.
 *
 * Ownership. Handles are opaque and reference-counted where they cross threads:
 * clive_session (clive_session_retain/release) and clive_frame (clive_frame_retain/
 * release). A pointer handed to a callback is valid for the callback's duration; retain
 * it to keep it. Byte arguments are copied before a function returns, unless noted.
 *
 * Errors are negative clive_error values; clive_strerror names them.
 */
#ifndef CLIVE_H
#define CLIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clive_server clive_server;
typedef struct clive_session clive_session;
typedef struct clive_frame clive_frame;
typedef struct clive_tls clive_tls;

typedef enum clive_error {
    CLIVE_OK = 0,
    CLIVE_EINVAL = -1,    /* an argument is out of range */
    CLIVE_ENOMEM = -2,    /* out of memory */
    CLIVE_ECLOSED = -3,   /* the session (or server) is closed or closing */
    CLIVE_EOVERFLOW = -4, /* the session's send queue overflowed; the session is closing */
    CLIVE_ESTATE = -5,    /* not allowed in the current state (e.g. accept twice) */
    CLIVE_EADDR = -6,     /* could not resolve or bind the address */
    CLIVE_ESYS = -7,      /* a system call failed (thread, socket, loop) */
    CLIVE_ELIMIT = -8,    /* a configured limit was reached (topics per session, topics) */
} clive_error;

/* A short English name for an error. Any thread. */
const char *clive_strerror(int error);

/* The private close code sent when a session's send queue overflows ("slow consumer"). */
#define CLIVE_CLOSE_SLOW 4008

/* Why a session closed, as reported to on_close. */
typedef enum clive_close_kind {
    CLIVE_CLOSED_BY_PEER = 1, /* the client sent a close frame (code, reason: its own) */
    CLIVE_CLOSED_BY_SERVER,   /* clive_session_close was called (code, reason: as given) */
    CLIVE_CLOSED_PROTOCOL,    /* the client broke RFC 6455 (code: 1002, 1007 or 1009) */
    CLIVE_CLOSED_OVERFLOW,    /* the send queue overflowed (code: CLIVE_CLOSE_SLOW) */
    CLIVE_CLOSED_IDLE,        /* nothing heard within the idle timeout (code 1001) */
    CLIVE_CLOSED_SHUTDOWN,    /* the server is shutting down (code 1001) */
    CLIVE_CLOSED_ABNORMAL,    /* the TCP connection ended without a close frame (code 1006) */
    CLIVE_CLOSED_NOT_OPENED,  /* the connection ended before the upgrade was accepted */
    CLIVE_CLOSED_RATE_LIMIT,  /* the client stayed over its rate limit past the grace (1008) */
} clive_close_kind;

typedef struct clive_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} clive_header;

/* An HTTP request as received. Valid only during on_request; all pointers point into
 * the connection's buffer and are not NUL-terminated. */
typedef struct clive_request {
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *query; /* after '?', without it; empty when absent */
    size_t query_len;
    const clive_header *headers;
    size_t header_count;
    const char *remote_address; /* "ip:port" or "[ipv6]:port", NUL-terminated */
    int is_upgrade;  /* 1: a valid WebSocket upgrade; 0: a plain HTTP request */
    int subprotocol; /* index into clive_options.subprotocols agreed with the client, or -1 */
} clive_request;

typedef struct clive_callbacks {
    /* A complete request arrived on a new connection. For an upgrade the session waits
     * (reading nothing further, bounded by the handshake timeout) until clive_session_accept
     * or clive_session_respond is called, from any thread, now or later. A plain request
     * must be answered with clive_session_respond. Requests that fail the upgrade checks
     * are answered by the core (400, 426, 431) and never reach this callback. */
    void (*on_request)(clive_session *session, const clive_request *request, void *user);
    /* A complete data message (reassembled from its fragments; text is valid UTF-8). The
     * bytes are valid only during the call. Called in arrival order. */
    void (*on_message)(clive_session *session, int binary, const uint8_t *data, size_t len,
                       void *user);
    /* The session stopped being usable: called exactly once for every session that
     * on_request was called for, after its subscriptions were removed. For kind
     * CLIVE_CLOSED_NOT_OPENED the upgrade was never accepted. code and reason: see
     * clive_close_kind; reason is valid only during the call. */
    void (*on_close)(clive_session *session, clive_close_kind kind, int code,
                     const char *reason, size_t reason_len, void *user);
    /* With options.presence: the sessions that joined and left a topic since the last
     * batch (net changes only), on the loop thread where they happened. The arrays are
     * valid only during the call. */
    void (*on_presence)(const char *topic, size_t topic_len, const uint64_t *joined,
                        size_t joined_count, const uint64_t *left, size_t left_count,
                        void *user);
    /* Optional, for a broker between server processes: this node's first subscriber of a
     * topic appeared on any loop (active 1), or its last one left (active 0). For each
     * topic the calls alternate, starting with active 1, in the order they happened. On
     * the loop thread where the change happened, under a server-wide lock: it must not
     * block and must not subscribe or unsubscribe. */
    void (*on_interest)(const char *topic, size_t topic_len, int active, void *user);
    /* Optional: what the core has to say that is not an error of the server's own, e.g. a
     * failed TLS handshake (level CLIVE_LOG_DEBUG: a client's failure is not the
     * server's). On the loop thread where it happened; message valid only during the
     * call. */
    void (*on_log)(int level, const char *message, void *user);
    void *user;
} clive_callbacks;

typedef enum clive_log_level { CLIVE_LOG_DEBUG = 0, CLIVE_LOG_INFO = 1, CLIVE_LOG_WARNING = 2 } clive_log_level;

/* How the topics that start with `prefix` behave (the first matching policy wins). */
typedef struct clive_topic_policy {
    const char *prefix;
    unsigned throttle_ms; /* at most one publish per interval reaches a loop's subscribers;
                             the newest one held back goes out when the interval ends, so
                             the final state is never lost; 0: no throttle */
    int latest_only;      /* "latest value wins": a publish replaces the one still unsent in a
                             subscriber's queue instead of queueing behind it */
} clive_topic_policy;

typedef struct clive_options {
    unsigned loops;              /* event loops; 0: the number of CPUs this process may use */
    unsigned queue_size;         /* frames queued per session before it overflows; 0: 1024 */
    size_t queue_bytes;          /* bytes queued per session before it overflows; 0: 16 MiB.
                                    One frame is always accepted into an empty queue. */
    size_t max_message;          /* bytes in one received message, else 1009; 0: 16 MiB */
    unsigned max_fragments;      /* frames in one received message, else 1009; 0: 131072 */
    size_t max_request_head;     /* bytes of request line and headers, else 431; 0: 8 KiB */
    unsigned max_sessions;       /* connections at once; more get 503 once their request
                                    is read; 0: no limit */
    unsigned handshake_timeout_ms; /* request + upgrade decision; 0: 10000 */
    unsigned ping_interval_ms;   /* ping a session quiet for this long; 0: 30000 */
    unsigned idle_timeout_ms;    /* close a session silent for this long (1001); 0: 60000 */
    unsigned close_timeout_ms;   /* wait for the peer's close reply, then cut; 0: 3000 */
    const char *const *subprotocols; /* WebSocket subprotocols the server speaks */
    size_t subprotocol_count;
    const char *const *allowed_origins; /* Origin values allowed for upgrades (compared
                                           case-insensitively), else 403; none: any origin.
                                           A request without Origin (not a browser) passes. */
    size_t allowed_origin_count;
    int presence;                /* 1: keep a cross-loop index of topic subscribers for
                                    clive_presence_list and report joins and leaves */
    unsigned presence_interval_ms; /* batch joins and leaves this long; 0: per loop turn */
    const clive_topic_policy *topic_policies; /* copied; none: every topic is plain */
    size_t topic_policy_count;
    unsigned rate_limit;         /* data messages per second a session may send (a token
                                    bucket); over it they are dropped and counted; 0: off */
    unsigned rate_burst;         /* the bucket's size; 0: rate_limit (one second's worth) */
    unsigned rate_grace_ms;      /* dropping continuously this long closes with 1008; 0: 5000 */
    /* What one client can make the server hold. Each is checked where it is asked for:
     * a subscribe over a limit returns CLIVE_ELIMIT (on the session's loop thread; from
     * another thread it is dropped when the loop runs it, counted in refused_subscribes). */
    unsigned max_topics_per_session; /* topics one session may hold; 0: 128 */
    unsigned max_topics;         /* topics registered on all loops together (a topic
                                    subscribed on two loops counts twice); 0: 1,000,000 */
    size_t max_topic_len;        /* bytes in a topic name, up to 65535; else CLIVE_EINVAL;
                                    0: 255 */
    size_t max_queued_total;     /* bytes queued for all sessions together; past it, the
                                    sessions with the largest queues are closed with
                                    CLIVE_CLOSE_SLOW until it is met again; 0: 1 GiB */
    unsigned max_sessions_per_ip; /* connections at once from one IPv4 address or IPv6
                                     /64; more get 429 once their request is read; 0: no
                                     limit (a load balancer or NAT puts many users on one
                                     address) */
    int share_port;              /* 1: other processes may listen on the same port too (the
                                    kernel then splits new connections between them, so
                                    their topics and presence are split); 0: listening
                                    fails when another process holds the port */
    /* permessage-deflate (RFC 7692). Off by default: compression costs CPU on every
     * message and helps only text-heavy traffic over slow links (see CORE.md). */
    int deflate;                 /* 1: accept a client's permessage-deflate offer */
    size_t deflate_min_size;     /* messages with fewer payload bytes go uncompressed;
                                    0: 128 */
    int deflate_level;           /* zlib level 1 (fast) ... 9 (small); 0: 6 */
    unsigned deflate_client_window_bits; /* 0: the client may not keep its compression
                                    context between messages (the answer always says
                                    client_no_context_takeover), so no session holds zlib
                                    state; 9-15: it may, and such a session keeps its own
                                    inflate stream, about 7 KiB + 2^bits bytes, the window
                                    bounded to 2^bits when the client's offer allows */
    clive_callbacks callbacks;
} clive_options;

#define CLIVE_CLOSE_KINDS 10     /* clive_close_kind values are below this */
#define CLIVE_REJECT_STATUSES 11 /* 400 401 403 404 426 429 431 500 503 505, other */
#define CLIVE_TIMING_BUCKETS 17  /* under 1 us, 2 us, 4 us, ... 32.768 ms, and the rest */

/* Counters summed over all loops; a snapshot, each read atomically. Any thread. */
typedef struct clive_stats {
    uint64_t connections;    /* open TCP connections, any state */
    uint64_t sessions;       /* accepted WebSocket sessions not yet closed */
    uint64_t subscriptions;  /* (session, topic) pairs */
    uint64_t topics;         /* topics with at least one subscriber */
    uint64_t queued_frames;  /* frames waiting in send queues */
    uint64_t queued_bytes;   /* bytes waiting in send queues */
    uint64_t overflows;      /* sessions closed for overflowing their queue */
    uint64_t skipped;        /* published deliveries skipped: no frame for the codec */
    uint64_t messages_in;    /* data messages received */
    uint64_t frames_out;     /* frames fully written */
    uint64_t rate_limited;   /* received messages dropped by the rate limit */
    uint64_t budget_closes;  /* sessions closed because max_queued_total was reached
                                (also counted in overflows) */
    uint64_t compressions;   /* messages compressed for permessage-deflate: one per
                                publish (and per direct send) worth compressing, however
                                many subscribers take it */
    uint64_t refused_subscribes; /* subscribes refused by max_topics_per_session or
                                    max_topics */
    uint64_t closed[CLIVE_CLOSE_KINDS]; /* accepted sessions that closed, by clive_close_kind
                                           (index 0 and CLIVE_CLOSED_NOT_OPENED stay 0) */
    uint64_t rejected[CLIVE_REJECT_STATUSES]; /* upgrades answered with an HTTP status instead
                                                 of 101, by the core or the app; the status
                                                 of [i] is clive_reject_status(i) */
    uint64_t published;      /* clive_publish calls accepted */
    uint64_t deliveries;     /* frames queued to subscribers by publish and broadcast (a
                                latest_only replacement included) */
    uint64_t bytes_out;      /* bytes written to sockets */
    uint64_t coalesced;      /* queued frames a latest_only publish replaced: never sent */
    uint64_t throttled;      /* publishes a throttle held back on a loop, then superseded by
                                a newer one: never sent there */
    uint64_t fanouts;        /* publishes a loop queued to its subscribers, each timed from
                                clive_publish to the last local subscriber's queue: */
    uint64_t fanout_ns;      /* their total time */
    uint64_t fanout_hist[CLIVE_TIMING_BUCKETS]; /* by time: [i] took under 2^i microseconds
                                                   (the last holds the rest) */
    uint64_t tls_handshakes; /* TLS handshakes completed */
    uint64_t tls_failures;   /* TLS connections that failed their handshake or a record
                                (plain HTTP on a TLS port included) */
} clive_stats;

/* The HTTP status clive_stats.rejected[index] counts; 0 for the last index (any other
 * status). Any thread. */
int clive_reject_status(unsigned index);

/* --- server ------------------------------------------------------------------------ */

/* Creates a server (not yet listening). options is copied, including the strings it
 * points to. An option out of its range (see CORE.md's table) returns CLIVE_EINVAL and
 * clive_server_error names it. Any thread. On success *out owns the server: free it with
 * clive_server_free. */
int clive_server_new(const clive_options *options, clive_server **out);

/* Replaces options.callbacks.user, for an embedding layer that creates its context after
 * the server. Only before clive_server_start. */
void clive_server_set_callback_user(clive_server *server, void *user);

/* Binds host:port (port 0 picks a free port) on every loop with SO_REUSEPORT, so that the
 * kernel spreads connections across loops. Call once, before clive_server_start. */
int clive_server_listen(clive_server *server, const char *host, uint16_t port);

/* Like clive_server_listen, but the listener speaks TLS (wss://, https://) with the
 * certificate of tls, which the server keeps a reference to. A server may listen once
 * plain and once with TLS (e.g. 8080 for health checks, 8443 for browsers), in either
 * order; the handshake counts against handshake_timeout_ms. Before clive_server_start. */
int clive_server_listen_tls(clive_server *server, const char *host, uint16_t port,
                            clive_tls *tls);

/* What the last failed clive_server_listen (or clive_server_new, through *out's absence:
 * see clive_options_check) was about, in English: e.g. "address 127.0.0.1:8080 already in
 * use". Any thread; valid until the next call on the server. */
const char *clive_server_error(const clive_server *server);

/* Checks options as clive_server_new does; on CLIVE_EINVAL writes a message naming the
 * field and its range into msg (NUL-terminated, cap bytes). Any thread. */
int clive_options_check(const clive_options *options, char *msg, size_t cap);

/* The bound port of the first listener (useful after listening on port 0), or 0. Any
 * thread. */
uint16_t clive_server_port(const clive_server *server);
/* The bound port of the TLS listener, or 0 without one. Any thread. */
uint16_t clive_server_tls_port(const clive_server *server);

/* Starts the loop threads. Returns when they run. Any thread, once. CLIVE_ECLOSED when
 * clive_server_shutdown came first (nothing is started). */
int clive_server_start(clive_server *server);

/* Begins a graceful shutdown: stop accepting, close every session with 1001 (kind
 * CLIVE_CLOSED_SHUTDOWN), wait for the peers' close replies up to close_timeout_ms, then
 * stop the loops. Returns at once; idempotent. Any thread, including callbacks. */
void clive_server_shutdown(clive_server *server);

/* Blocks until the loops have stopped after clive_server_shutdown. Not on a loop thread. */
void clive_server_wait(clive_server *server);

/* Frees a server that was never started, or that clive_server_wait returned for. Sessions
 * still retained by the caller stay valid as handles (their calls return CLIVE_ECLOSED). */
void clive_server_free(clive_server *server);

/* Counters, summed over loops. Any thread. */
void clive_server_stats(const clive_server *server, clive_stats *out);

/* --- TLS ---------------------------------------------------------------------------- */

/* A certificate chain and its private key, from PEM files, for TLS listeners: TLS 1.2 and
 * 1.3, ALPN "http/1.1", no server-side session cache (resumption by tickets). On failure
 * returns CLIVE_EINVAL and writes what is wrong (the file and the reason) into msg (cap
 * bytes, NUL-terminated). Any thread. *out is freed with clive_tls_free. */
int clive_tls_new(const char *cert_file, const char *key_file, clive_tls **out, char *msg,
                  size_t cap);

/* Reads the same two files again (a renewed certificate): new connections get it, open
 * sessions keep theirs, nothing is dropped. On failure (CLIVE_EINVAL, msg says why) the
 * certificate in use stays. Any thread. */
int clive_tls_reload(clive_tls *tls, char *msg, size_t cap);

/* Drops the caller's reference; servers listening with it keep theirs. */
void clive_tls_free(clive_tls *tls);

/* --- sessions ---------------------------------------------------------------------- */

/* Accepts a pending upgrade: the 101 response goes out (with the agreed subprotocol), the
 * session starts reading frames and is published to through frame slot `codec_slot`
 * (see clive_publish). Any thread; at most once, and only after on_request reported an
 * upgrade. A session the handshake timeout already closed returns CLIVE_ECLOSED. */
int clive_session_accept(clive_session *session, unsigned codec_slot);

/* Answers the request with an HTTP response and closes the connection: a rejected upgrade
 * (401, 403, ...) or a plain request's answer. headers: zero or more "Name: value\r\n"
 * lines (may be NULL). Any thread; at most once; copies its arguments. */
int clive_session_respond(clive_session *session, int status, const char *headers,
                          size_t headers_len, const void *body, size_t body_len);

/* Queues a frame to the session. Never blocks: returns CLIVE_ECLOSED when the session is
 * not open, CLIVE_EOVERFLOW when its queue has overflowed (the session then closes with
 * CLIVE_CLOSE_SLOW and every later send fails). A send from another thread is checked
 * against the queue when the session's loop takes it; an overflow found there closes the
 * session and is reported to on_close. Takes its own reference to the frame. Any thread. */
int clive_session_send(clive_session *session, clive_frame *frame);

/* Starts the closing handshake with code (1000-4999 allowed on the wire) and a UTF-8
 * reason of at most 123 bytes. on_close reports CLIVE_CLOSED_BY_SERVER. Any thread. */
int clive_session_close(clive_session *session, uint16_t code, const char *reason,
                        size_t reason_len);

/* A process-unique id, never reused, assigned at accept(2). Any thread. */
uint64_t clive_session_id(const clive_session *session);

/* The subprotocol index agreed in the handshake, or -1. Any thread. */
int clive_session_subprotocol(const clive_session *session);

/* Whether the session is open (accepted and not closing). Any thread; a snapshot. */
int clive_session_is_open(const clive_session *session);

/* An opaque pointer for the embedding layer, stored atomically. Set it before accepting;
 * read it from any thread. clive_session_take_user reads and clears it in one step, so
 * that of two threads racing to release what it points to, exactly one gets it. */
void clive_session_set_user(clive_session *session, void *user);
void *clive_session_user(const clive_session *session);
void *clive_session_take_user(clive_session *session);

/* Reference counting: the server holds one reference while the connection lives; a
 * caller that keeps a session beyond a callback retains it. Any thread. */
void clive_session_retain(clive_session *session);
void clive_session_release(clive_session *session);

/* A snapshot of one session, taken on its loop thread (clive_session_inspect). Valid only
 * during the callback; open == 0 means the session was no longer open (all else zero). */
typedef struct clive_session_info {
    int open;
    uint32_t queued_frames;
    size_t queued_bytes;
    size_t topic_count;
    const char *const *topics; /* names, not NUL-terminated */
    const size_t *topic_lens;
} clive_session_info;

typedef void (*clive_inspect_fn)(clive_session *session, const clive_session_info *info,
                                 void *ctx);

/* Calls fn exactly once, on the session's loop thread, with a snapshot of its queue and its
 * topics: at once when called on that thread, else when the loop takes the request (with
 * open == 0 if the session or its loop has stopped by then). Returns CLIVE_OK, or
 * CLIVE_ENOMEM and fn is not called. Any thread. */
int clive_session_inspect(clive_session *session, clive_inspect_fn fn, void *ctx);

/* --- frames ------------------------------------------------------------------------ */

/* Builds a server frame (header and a copy of the payload) once, to be sent to any number
 * of sessions without further copies. binary: 1 for a binary frame, 0 for text (the
 * caller guarantees valid UTF-8). Returns NULL when out of memory. The caller owns one
 * reference. Any thread. */
clive_frame *clive_frame_new(int binary, const void *payload, size_t len);
void clive_frame_retain(clive_frame *frame);
void clive_frame_release(clive_frame *frame);

/* --- topics ------------------------------------------------------------------------ */

/* Subscribes a session to a topic (any bytes, 1 to max_topic_len of them; else
 * CLIVE_EINVAL). Subscribing twice is a no-op. Takes effect in order with the session's
 * other commands. On the session's loop thread, a subscribe over max_topics_per_session or
 * max_topics returns CLIVE_ELIMIT; from other threads it is checked when the loop runs it
 * (and then dropped and counted). Costs O(1) in the topics the session holds. Any thread. */
int clive_subscribe(clive_session *session, const char *topic, size_t topic_len);

/* Removes a subscription; a no-op when absent. An empty topic disappears. O(1). Any thread. */
int clive_unsubscribe(clive_session *session, const char *topic, size_t topic_len);

/* Sends to every session subscribed to topic, on every loop. frames[i] is what sessions
 * accepted with codec_slot i receive; a NULL slot (or i >= count) skips those sessions
 * and counts them in clive_stats.skipped. Each frame is shared, not copied: the call
 * takes its own references. A subscriber whose queue overflows is closed, not skipped.
 * Publishes from one thread reach each subscriber in the order they were made. Any thread. */
int clive_publish(clive_server *server, const char *topic, size_t topic_len,
                  clive_frame *const *frames, size_t count);

/* Sends to every open session on every loop, as clive_publish does to a topic's
 * subscribers (frames[i] to sessions with codec_slot i). Any thread. */
int clive_broadcast(clive_server *server, clive_frame *const *frames, size_t count);

/* --- presence (options.presence) ---------------------------------------------------- */

/* The ids of the sessions subscribed to a topic, across every loop: fills at most cap
 * of them into ids and returns how many there are (0 when presence is off). Any thread. */
size_t clive_presence_list(clive_server *server, const char *topic, size_t topic_len,
                           uint64_t *ids, size_t cap);

/* --- clients ----------------------------------------------------------------------- */

/* The client side of RFC 6455, ws:// and wss://. One libuv loop thread, started by the first
 * clive_client_connect and kept for the life of the process, serves every client
 * connection of the process. Callbacks run on that thread and must not block; the
 * functions below may be called from any thread: off the loop they post a command and
 * return without waiting; on it (from a callback) they act at once.
 *
 * Ownership. clive_client_connect hands the caller one reference; the loop holds its own
 * until on_close has returned. Release yours with clive_client_release (after which the
 * handle must not be used); the connection lives on until it closes. */
typedef struct clive_client clive_client;

/* Why a client connection ended, as reported to on_close (a failed TLS handshake, e.g. a
 * certificate that does not verify, is CLIVE_CLIENT_HANDSHAKE_FAILED with a reason that
 * starts "TLS: "). */
typedef enum clive_client_close_kind {
    CLIVE_CLIENT_CONNECT_FAILED = 1, /* resolving or connecting failed (code 1006; reason:
                                        the system's words, e.g. "connection refused") */
    CLIVE_CLIENT_HANDSHAKE_FAILED,   /* the server did not accept the upgrade: http_status is
                                        its status (401, 403, ...), or 0 with a reason for a
                                        bad 101 (Sec-WebSocket-Accept, subprotocol, ...) or a
                                        handshake timeout (code 1006) */
    CLIVE_CLIENT_CLOSED_BY_SERVER,   /* the server sent a close frame (its code, 1005 for none,
                                        and its reason) */
    CLIVE_CLIENT_CLOSED_BY_CLIENT,   /* clive_client_close was called (the code and reason
                                        given) */
    CLIVE_CLIENT_PROTOCOL,           /* the server broke RFC 6455; the client sent this close
                                        code (1002, 1007 or 1009) */
    CLIVE_CLIENT_IDLE,               /* nothing heard from the server within idle_timeout_ms,
                                        pings included (code 1006) */
    CLIVE_CLIENT_ABNORMAL,           /* the TCP connection ended without a close frame (1006) */
} clive_client_close_kind;

typedef struct clive_client_callbacks {
    /* The server accepted the upgrade. subprotocol: index into the offered subprotocols,
     * or -1 when the server chose none. */
    void (*on_open)(clive_client *client, int subprotocol, void *user);
    /* A complete data message (text is valid UTF-8); the bytes are valid during the call. */
    void (*on_message)(clive_client *client, int binary, const uint8_t *data, size_t len,
                       void *user);
    /* The connection ended: called exactly once per clive_client_connect that returned
     * CLIVE_OK, after the socket is closed. reason is valid during the call. http_status:
     * the server's status for CLIVE_CLIENT_HANDSHAKE_FAILED, else 0. */
    void (*on_close)(clive_client *client, clive_client_close_kind kind, int code,
                     const char *reason, size_t reason_len, int http_status, void *user);
    void *user;
} clive_client_callbacks;

typedef struct clive_client_options {
    const char *host;        /* a name or an IP address (no brackets) */
    uint16_t port;
    const char *target;      /* the request target: path and query, e.g. "/ws?token=x";
                                NULL: "/" */
    const char *const *subprotocols; /* offered in this order; the server's choice must be
                                        one of them */
    size_t subprotocol_count;
    const char *headers;     /* extra request header lines, each "Name: value\r\n" (may be
                                NULL): authorization, cookies */
    size_t headers_len;
    size_t max_message;      /* bytes in one received message, else 1009; 0: 16 MiB */
    unsigned max_fragments;  /* frames in one received message, else 1009; 0: 131072 */
    size_t max_response_head; /* bytes of the server's response head; 0: 8 KiB */
    size_t max_queued;       /* bytes of sent frames not yet written; 0: 16 MiB */
    unsigned handshake_timeout_ms; /* connect and upgrade; 0: 10000 */
    unsigned ping_interval_ms; /* ping a server quiet for this long; 0: 30000 */
    unsigned idle_timeout_ms;  /* give up on a server silent this long; 0: 60000 */
    unsigned close_timeout_ms; /* wait for the server's close reply, then cut; 0: 3000 */
    int tls;                 /* 1: wss:// (TLS 1.2 or 1.3, SNI, ALPN http/1.1); the TLS
                                handshake counts against handshake_timeout_ms */
    const char *tls_ca_file; /* PEM certificates trusted for the server's chain; NULL: the
                                system's trust store */
    int tls_insecure;        /* 1: the server's certificate is not checked at all (for a
                                development server with a self-signed certificate) */
    clive_client_callbacks callbacks;
} clive_client_options;

/* Starts connecting: resolves host, tries each of its addresses in turn, sends the opening
 * handshake (a fresh random Sec-WebSocket-Key) and checks the answer. Everything that
 * follows is reported through the callbacks. Copies options and the strings they point
 * to. Returns CLIVE_EINVAL for a missing host, a target that does not start with '/', or
 * header lines that are not CRLF-terminated; CLIVE_ENOMEM; CLIVE_ESYS when the client
 * loop cannot start. On CLIVE_OK *out holds the caller's reference. Any thread. */
int clive_client_connect(const clive_client_options *options, clive_client **out);

/* Sends a data message as one frame, masked with a fresh random key. binary: 1 for binary,
 * 0 for text (the caller guarantees valid UTF-8). Returns CLIVE_ESTATE before on_open,
 * CLIVE_ECLOSED once closing, CLIVE_EOVERFLOW when max_queued bytes wait to be written
 * (nothing is sent; the connection stays open). Copies the bytes. Any thread. */
int clive_client_send(clive_client *client, int binary, const void *data, size_t len);

/* Starts the closing handshake with code (1000-4999 allowed on the wire) and a UTF-8
 * reason of at most 123 bytes; before on_open it abandons the attempt. on_close then
 * reports CLIVE_CLIENT_CLOSED_BY_CLIENT. Idempotent: a later call returns CLIVE_ECLOSED.
 * Any thread. */
int clive_client_close(clive_client *client, uint16_t code, const char *reason,
                       size_t reason_len);

/* Reference counting. Any thread. */
void clive_client_retain(clive_client *client);
void clive_client_release(clive_client *client);

#ifdef __cplusplus
}
#endif

#endif
