/* A connection's life on its loop: request head, upgrade decision, frames in, frames out,
 * closing handshake, teardown. Everything here runs on the session's loop thread.
 *
 * Closing. Every close goes the same way: our close frame (or final HTTP response) is
 * queued behind what is already queued; once it is written we shut our side down
 * (SHUT_WR, the server's FIN comes first as RFC 6455 7.1.1 asks) and keep reading and
 * discarding until the peer's EOF or the close timeout, then close the socket. Closing
 * only after the peer is done keeps our last bytes from being destroyed by an RST. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "http.h"
#include "utf8.h"

static atomic_uint_fast64_t next_session_id = 1;

/* One read (up to the loop's 256 KiB buffer) per session per readiness event: a session
 * with more waiting is read again on the next turn, after every other ready session had
 * its read. With 4 reads, 40 clients streaming 1 MiB messages made each turn 40 MiB of
 * work, and a well-behaved client on the loop waited 150 ms (bench/hostile pin); with 1,
 * 80-120 ms on the same busy machine. */
#define READS_PER_EVENT 1
/* Messages (and control frames) one session may have handled per loop turn. A read can
 * hold thousands of small pipelined messages; what is left over waits in the session's
 * backlog for the next turn while its socket is not read, so TCP flow control slows the
 * client down and the loop's other sessions get their turn in between. */
#define MESSAGES_PER_TURN 64

static void enqueue_control(clive_session *s, clive_frame *f);

static const clive_callbacks *callbacks(clive_session *s) {
    return &s->loop->server->options.callbacks;
}

/* The poll events a session wants in its state: reading unless it waits for the app's
 * upgrade decision or has unparsed input left over, writing while a write is blocked. */
static int wanted_events(const clive_session *s) {
    /* Deciding, only a hangup is watched for, so that an app's pending authorisation is
     * told at once when its client leaves (on_close), not at the handshake timeout. */
    int events = s->state == LV_DECIDING ? UV_DISCONNECT : s->in_backlog ? 0 : UV_READABLE;
    return events | (s->blocked ? UV_WRITABLE : 0);
}

static void set_polling(clive_session *s, int events) {
    if (events == s->polling || s->state == LV_DONE) return;
    lv_poller_modify(&s->loop->poller, s->fd, s, events);
    s->polling = (uint8_t)events;
}

/* Keeps the loop's queue counters in step with a change to s->q. */
static void account_queue(clive_session *s, uint32_t count_before, size_t bytes_before) {
    lv_counters *c = &s->loop->counters;
    lv_count(&c->queued_frames, (int64_t)s->q.count - (int64_t)count_before);
    lv_count(&c->queued_bytes, (int64_t)s->q.bytes - (int64_t)bytes_before);
}

static void free_head(clive_session *s) {
    free(s->head);
    s->head = NULL;
    s->head_len = s->head_cap = 0;
    s->head_scanned = 0;
}

/* --- opening ----------------------------------------------------------------------- */

/* The loop's buffer for decrypted input, made with its first TLS session. */
static bool ensure_tls_buffers(lv_loop *l) {
    if (l->tls_plain == NULL) l->tls_plain = malloc(l->rbuf_cap);
    return l->tls_plain != NULL;
}

void lv_session_open_fd(lv_loop *l, int fd, clive_tls *tls) {
    clive_server *srv = l->server;
    unsigned n = atomic_fetch_add(&srv->connections, 1) + 1;
    clive_session *s = calloc(1, sizeof *s);
    if (s && tls) s->tls = ensure_tls_buffers(l) ? lv_tls_conn_new(tls, &l->tls_io) : NULL;
    if (s == NULL || (tls && s->tls == NULL) || lv_poller_add(&l->poller, fd, s, UV_READABLE) != 0) {
        if (s) lv_tls_conn_free(s->tls);
        free(s);
        close(fd);
        atomic_fetch_sub(&srv->connections, 1);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->polling = UV_READABLE; /* lv_poller_add */
    s->loop = l;
    atomic_init(&s->refs, 1); /* the loop's, dropped when the socket is closed */
    atomic_init(&s->shared_state, LV_SHARED_PENDING);
    atomic_fetch_add(&srv->refs, 1); /* the server outlives every session handle */
    s->id = atomic_fetch_add(&next_session_id, 1);
    s->fd = fd;
    s->subprotocol = -1;
    s->state = LV_READING_REQUEST;
    s->last_heard_ms = lv_now(l);
    s->deadline_ms = s->last_heard_ms + srv->options.handshake_timeout_ms;
    lv_frame_parser_init(&s->parser, srv->options.max_message, srv->options.max_fragments);
    s->next = l->sessions;
    if (l->sessions) l->sessions->prev = s;
    l->sessions = s;
    lv_count(&l->counters.connections, 1);
    /* Over the cap, the request is still read, so the client gets a real 503 rather than
     * a reset of a request it was still sending. */
    s->over_limit = srv->options.max_sessions && n > srv->options.max_sessions;
    if (srv->options.max_sessions_per_ip) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        bool over = false;
        if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
            s->peer = lv_peers_add(&srv->peers, &ss, srv->options.max_sessions_per_ip, &over);
        s->over_ip_limit = over;
    }
}

static void format_remote(int fd, char *out, size_t cap) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    out[0] = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    }
}

/* Tells the app's on_log, if any, about this connection. */
static void log_session(clive_session *s, int level, const char *fmt, ...) {
    const clive_callbacks *cb = &s->loop->server->options.callbacks;
    if (cb->on_log == NULL) return;
    char remote[INET6_ADDRSTRLEN + 16], what[256], line[sizeof what + sizeof remote + 16];
    format_remote(s->fd, remote, sizeof remote);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s (from %s)", what, remote[0] ? remote : "?");
    cb->on_log(level, line, cb->user);
}

/* Browsers always send Origin; a request without one comes from a program that cannot be
 * tricked into a cross-site WebSocket hijack, so it passes. */
static int origin_allowed(const clive_options *o, const lv_upgrade *up) {
    if (o->allowed_origin_count == 0 || up->origin == NULL) return 1;
    for (size_t i = 0; i < o->allowed_origin_count; i++) {
        const char *a = o->allowed_origins[i];
        if (strlen(a) == up->origin_len && strncasecmp(a, up->origin, up->origin_len) == 0)
            return 1;
    }
    return 0;
}

static void reject(clive_session *s, int status, const char *reason) {
    static const char version[] = "Sec-WebSocket-Version: 13\r\n";
    lv_count_rejected(s->loop, status);
    char body[128];
    int n = snprintf(body, sizeof body, "%s\n", reason ? reason : lv_http_status_text(status));
    lv_session_do_respond(s, status, status == 426 ? version : NULL,
                          status == 426 ? sizeof version - 1 : 0, body, (size_t)n);
}

/* Answers a permessage-deflate offer, if the request makes one we accept: the extension's
 * line goes before the blank line that ends the 101 response of n bytes. Returns the new
 * length (n unchanged when declined, 0 when it does not fit). */
static size_t add_deflate(clive_session *s, const lv_http_request *req, char *reply, size_t n,
                          size_t cap) {
    const clive_options *o = &s->loop->server->options;
    char line[192];
    size_t k = lv_pmd_negotiate(req->headers, req->header_count, o->deflate_client_window_bits,
                                &s->pmd, line, sizeof line);
    if (k == 0) return n;
    if (n + k > cap) return 0;
    memcpy(reply + n - 2, line, k); /* over the final CRLF, written again after it */
    memcpy(reply + n - 2 + k, "\r\n", 2);
    s->parser.rsv1_ok = 1;
    /* twins are compressed with a 2^15 window; a client that asked us for a smaller one
     * is sent plain frames, which the extension allows */
    s->deflate_out = s->pmd.server_bits == 15;
    return n + k;
}

/* A complete head of `end` bytes sits at s->head. */
static void handle_request(clive_session *s, size_t end) {
    const clive_options *o = &s->loop->server->options;
    lv_http_request req;
    lv_upgrade up;
    const char *reason = NULL;
    int status = lv_http_parse(s->head, end, &req, &reason);
    if (status == 0)
        status = lv_upgrade_check(&req, o->subprotocols, o->subprotocol_count, &up, &reason);
    if (status == 0 && up.is_upgrade && !origin_allowed(o, &up)) {
        status = 403;
        reason = "origin not allowed";
    }
    if (status == 0 && s->over_limit) {
        status = 503;
        reason = "too many connections";
    }
    if (status == 0 && s->over_ip_limit) {
        status = 429;
        reason = "too many connections from this address";
    }
    if (status != 0) {
        reject(s, status, reason);
        return;
    }
    if (up.is_upgrade) {
        char reply[512];
        const char *proto = up.subprotocol >= 0 ? o->subprotocols[up.subprotocol] : NULL;
        size_t n = lv_upgrade_response(reply, sizeof reply, &up, proto);
        if (n && o->deflate) n = add_deflate(s, &req, reply, n, sizeof reply);
        s->upgrade_reply = n ? lv_frame_raw(reply, n, NULL, 0) : NULL;
        if (s->upgrade_reply == NULL) {
            reject(s, 500, "out of memory");
            return;
        }
        s->subprotocol = (int8_t)up.subprotocol;
    }
    s->head_scanned = end; /* from here on: where pipelined bytes after the head start */
    char remote[INET6_ADDRSTRLEN + 16];
    format_remote(s->fd, remote, sizeof remote);
    clive_request r = {
        .method = req.method,
        .method_len = req.method_len,
        .path = req.path,
        .path_len = req.path_len,
        .query = req.query,
        .query_len = req.query_len,
        .headers = req.headers,
        .header_count = req.header_count,
        .remote_address = remote,
        .is_upgrade = up.is_upgrade,
        .subprotocol = up.is_upgrade ? up.subprotocol : -1,
    };
    s->state = LV_DECIDING;
    s->request_seen = true;
    set_polling(s, wanted_events(s)); /* read nothing more until the app decides; the
                                         deadline still runs */
    const clive_callbacks *cb = callbacks(s);
    if (cb->on_request)
        cb->on_request(s, &r, cb->user);
    else if (up.is_upgrade)
        lv_session_do_accept(s, 0);
    else
        reject(s, 426, "this endpoint speaks WebSocket");
}

static void on_request_bytes(clive_session *s, const uint8_t *data, size_t n) {
    size_t cap = s->loop->server->options.max_request_head;
    if (s->head_len + n > s->head_cap) {
        size_t want = s->head_cap ? s->head_cap : 1024;
        while (want < s->head_len + n) want *= 2;
        char *p = realloc(s->head, want);
        if (p == NULL) {
            reject(s, 500, "out of memory");
            return;
        }
        s->head = p;
        s->head_cap = (uint32_t)want;
    }
    memcpy(s->head + s->head_len, data, n);
    s->head_len += (uint32_t)n;
    /* RFC 9112 2.2: ignore empty lines before the request line (some clients send a CRLF
     * after a previous request). The buffer then restarts, so scanning does too. */
    while (s->head_len >= 2 && s->head[0] == '\r' && s->head[1] == '\n') {
        memmove(s->head, s->head + 2, s->head_len - 2);
        s->head_len -= 2;
        s->head_scanned = 0;
    }
    size_t scanned = s->head_scanned;
    size_t end = lv_http_head_end(s->head, s->head_len, &scanned);
    s->head_scanned = (uint32_t)scanned; /* within head_len */
    if (end == 0 ? s->head_len >= cap : end > cap) {
        reject(s, 431, "request head too large");
        return;
    }
    if (end) handle_request(s, end);
}

void lv_session_do_accept(clive_session *s, unsigned codec_slot) {
    if (s->state != LV_DECIDING || s->upgrade_reply == NULL) return;
    lv_loop *l = s->loop;
    s->state = LV_OPEN;
    int pending = LV_SHARED_PENDING;
    atomic_compare_exchange_strong(&s->shared_state, &pending, LV_SHARED_OPEN);
    s->codec_slot = (uint8_t)codec_slot;
    s->last_heard_ms = lv_now(l);
    uint32_t c0 = s->q.count;
    size_t b0 = s->q.bytes;
    if (lv_sendq_push_force(&s->q, s->upgrade_reply) != 0) {
        lv_session_finish(s);
        return;
    }
    s->upgrade_reply = NULL;
    account_queue(s, c0, b0);
    lv_count(&l->counters.sessions, 1);
    lv_loop_mark_dirty(s);
    /* Frames the client sent right behind its request are parsed from the backlog on the
     * loop's next pass, so that no on_message runs inside the on_request that accepted. */
    if (s->head_len > s->head_scanned)
        lv_loop_backlog(s);
    else
        free_head(s);
    set_polling(s, wanted_events(s));
}

void lv_session_do_respond(clive_session *s, int status, const char *headers, size_t hlen,
                           const void *body, size_t blen) {
    if (s->state != LV_READING_REQUEST && s->state != LV_DECIDING) return;
    /* the app refusing an upgrade (the core's refusals are counted by reject) */
    if (s->upgrade_reply) lv_count_rejected(s->loop, status);
    size_t cap = hlen + 256;
    char *head = malloc(cap);
    size_t n = head ? lv_http_response_head(head, cap, status, headers, hlen, blen) : 0;
    clive_frame *f = n ? lv_frame_raw(head, n, body, blen) : NULL;
    free(head);
    free_head(s);
    clive_frame_release(s->upgrade_reply);
    s->upgrade_reply = NULL;
    if (s->request_seen) s->close_kind = CLIVE_CLOSED_NOT_OPENED;
    atomic_store(&s->shared_state, LV_SHARED_CLOSED);
    if (f == NULL || lv_sendq_push_force(&s->q, f) != 0) {
        clive_frame_release(f);
        lv_session_finish(s);
        return;
    }
    account_queue(s, 0, 0);
    s->state = LV_CLOSING;
    s->close_queued = true;
    s->deadline_ms = lv_now(s->loop) + s->loop->server->options.close_timeout_ms;
    set_polling(s, UV_READABLE);
    lv_loop_mark_dirty(s);
}

/* --- frames in --------------------------------------------------------------------- */

/* The inbound token bucket, in thousandths of a message so that integer arithmetic keeps
 * rates below one per millisecond exact. Returns whether the message may pass. */
static bool within_rate(clive_session *s) {
    const clive_options *o = &s->loop->server->options;
    if (!o->rate_limit) return true;
    uint64_t now = lv_now(s->loop), cap = (uint64_t)o->rate_burst * 1000;
    if (s->tokens_ms == 0) s->tokens = cap; /* a new session starts with a full bucket */
    s->tokens += (now - s->tokens_ms) * o->rate_limit;
    if (s->tokens > cap) s->tokens = cap;
    s->tokens_ms = now;
    if (s->tokens >= 1000) {
        /* Over the limit ends once the bucket has refilled halfway: a client sending at
         * five times the rate gets a message through now and then, yet stays over. */
        if (s->tokens * 2 >= cap) s->over_since_ms = 0;
        s->tokens -= 1000;
        return true;
    }
    lv_count(&s->loop->counters.rate_limited, 1);
    if (s->over_since_ms == 0)
        s->over_since_ms = now;
    else if (now - s->over_since_ms >= o->rate_grace_ms)
        lv_session_start_close(s, CLIVE_CLOSED_RATE_LIMIT, LV_CLOSE_POLICY, "rate limit", 10);
    return false;
}

static void deliver(clive_session *s, int opcode, const uint8_t *data, size_t len) {
    if (!within_rate(s)) return;
    lv_count(&s->loop->counters.messages_in, 1);
    const clive_callbacks *cb = callbacks(s);
    if (cb->on_message) cb->on_message(s, opcode == LV_OP_BINARY, data, len, cb->user);
}

/* A compressed message, complete: inflated within max_message, then delivered. The
 * inflated bytes live in the loop's buffer until the next message of any session. */
static void deliver_compressed(clive_session *s, int opcode, const uint8_t *data, size_t len) {
    lv_loop *l = s->loop;
    const clive_options *o = &l->server->options;
    uint8_t *out = NULL;
    size_t n = 0;
    int rc = lv_inflate_message(&l->zlib, s->pmd.client_takeover ? &s->zin : NULL,
                                s->pmd.client_bits, data, len, o->max_message, &out, &n);
    if (rc == 0 && opcode == LV_OP_TEXT && !lv_utf8_valid(out, n)) rc = LV_CLOSE_INVALID_DATA;
    if (rc != 0) {
        lv_session_start_close(s, CLIVE_CLOSED_PROTOCOL, (uint16_t)rc, "", 0);
        return;
    }
    deliver(s, opcode, out, n);
    lv_inflate_trim(l->zlib);
}

static int hook_data(void *user, int opcode, uint8_t *data, size_t len, int last) {
    clive_session *s = user;
    if (s->state != LV_OPEN) return 1;
    if (last && s->msg_len == 0) {
        /* the common case: straight from the read buffer */
        if (s->parser.msg_compressed)
            deliver_compressed(s, opcode, data, len);
        else
            deliver(s, opcode, data, len);
    } else {
        if (s->msg_len + len > s->msg_cap) {
            size_t want = s->msg_cap ? s->msg_cap : 4096;
            while (want < s->msg_len + len) want *= 2;
            uint8_t *p = realloc(s->msg, want);
            if (p == NULL) {
                lv_session_start_close(s, CLIVE_CLOSED_BY_SERVER, LV_CLOSE_INTERNAL,
                                       "out of memory", 13);
                return 1;
            }
            s->msg = p;
            s->msg_cap = want;
        }
        if (len) memcpy(s->msg + s->msg_len, data, len);
        s->msg_len += len;
        if (!last) return 0;
        /* The buffer goes with the message (idle sessions keep no reassembly memory), but
         * only after the callback: a handler that closes its own session must still be
         * able to read the bytes it was handed. */
        uint8_t *msg = s->msg;
        size_t msg_len = s->msg_len;
        s->msg = NULL;
        s->msg_len = s->msg_cap = 0;
        if (s->parser.msg_compressed)
            deliver_compressed(s, opcode, msg, msg_len);
        else
            deliver(s, opcode, msg, msg_len);
        free(msg);
    }
    if (s->state != LV_OPEN) return 1;
    return --s->budget == 0; /* the turn's budget is spent: the rest waits */
}

static int hook_control(void *user, int opcode, uint8_t *data, size_t len) {
    clive_session *s = user;
    if (s->state != LV_OPEN) return 1;
    if (opcode == LV_OP_PING) {
        clive_frame *pong = lv_frame_control(LV_OP_PONG, data, len);
        if (pong) {
            enqueue_control(s, pong);
            clive_frame_release(pong);
        }
    } else if (opcode == LV_OP_CLOSE) {
        uint16_t code = len >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : LV_CLOSE_NO_STATUS;
        const char *reason = len > 2 ? (const char *)data + 2 : "";
        lv_session_start_close(s, CLIVE_CLOSED_BY_PEER, code, reason, len > 2 ? len - 2 : 0);
        return 1;
    }
    /* a pong needs nothing: hearing from the peer already reset its timers; a ping costs
     * a pong, so both count against the turn's budget */
    return s->state != LV_OPEN || --s->budget == 0;
}

static const lv_frame_hooks frame_hooks = {hook_data, hook_control};

/* Parses received bytes; returns how many it consumed: all of them, unless the turn's
 * budget ran out first (the session is still open and the rest must wait). */
static size_t on_frame_bytes(clive_session *s, uint8_t *data, size_t n) {
    size_t used = n;
    int r = lv_frame_parse(&s->parser, data, n, &used, &frame_hooks, s);
    if (r > 0) lv_session_start_close(s, CLIVE_CLOSED_PROTOCOL, (uint16_t)r, "", 0);
    return r == LV_FRAME_STOPPED && s->state == LV_OPEN ? used : n;
}

/* Parses the backlog (bytes behind the request head, or left over by a previous turn)
 * within this turn's budget; what still remains stays for the next turn. */
static void drain_backlog(clive_session *s) {
    if (s->head == NULL) return;
    if (s->state == LV_OPEN && s->head_len > s->head_scanned) {
        s->head_scanned += on_frame_bytes(s, (uint8_t *)s->head + s->head_scanned,
                                          s->head_len - s->head_scanned);
        if (s->state == LV_OPEN && s->head_scanned < s->head_len) {
            lv_loop_backlog(s);
            return;
        }
    }
    free_head(s);
}

/* Keeps the n bytes a read's budget left unparsed as the backlog. */
static void keep_backlog(clive_session *s, const uint8_t *rest, size_t n) {
    s->head = malloc(n);
    if (s->head == NULL) {
        lv_session_start_close(s, CLIVE_CLOSED_BY_SERVER, LV_CLOSE_INTERNAL, "out of memory", 13);
        return;
    }
    memcpy(s->head, rest, n);
    s->head_len = s->head_cap = (uint32_t)n;
    s->head_scanned = 0;
    lv_loop_backlog(s);
    set_polling(s, wanted_events(s));
}

void lv_session_run_backlog(clive_session *s) {
    if (s->state == LV_OPEN) {
        s->budget = MESSAGES_PER_TURN;
        drain_backlog(s);
    } else {
        free_head(s);
    }
    set_polling(s, wanted_events(s));
}

/* Appends newly read bytes behind a backlog that has not been parsed yet. */
static void keep_after_backlog(clive_session *s, const uint8_t *data, size_t n) {
    size_t have = s->head_len - s->head_scanned;
    char *p = malloc(have + n);
    if (p == NULL) {
        lv_session_start_close(s, CLIVE_CLOSED_BY_SERVER, LV_CLOSE_INTERNAL, "out of memory", 13);
        return;
    }
    memcpy(p, s->head + s->head_scanned, have);
    memcpy(p + have, data, n);
    free(s->head);
    s->head = p;
    s->head_len = s->head_cap = (uint32_t)(have + n);
    s->head_scanned = 0;
    lv_loop_backlog(s);
    set_polling(s, wanted_events(s));
}

/* The connection ended under us (EOF or a socket error). */
static void lost(clive_session *s) { lv_session_finish(s); }

/* One read into the loop's buffer: how many bytes came, or 0 when none did (EAGAIN) or
 * the connection ended (the session is finished then). Hearing anything resets the
 * keepalive. */
static size_t read_some(clive_session *s) {
    lv_loop *l = s->loop;
    ssize_t n;
    do n = read(s->fd, l->rbuf, l->rbuf_cap);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n <= 0) {
        lost(s);
        return 0;
    }
    s->last_heard_ms = lv_now(l);
    s->ping_outstanding = false;
    return (size_t)n;
}

static void send_tls_output(clive_session *s);

/* Bytes behind a request head that a TLS read decrypted while the app decides on the
 * upgrade: kept with the head, as a plain connection leaves them in the kernel. */
static void keep_pipelined(clive_session *s, const uint8_t *p, size_t n) {
    if (s->head_len + n > s->head_cap) {
        char *q = realloc(s->head, s->head_len + n);
        if (q == NULL) {
            lost(s);
            return;
        }
        s->head = q;
        s->head_cap = (uint32_t)(s->head_len + n);
    }
    memcpy(s->head + s->head_len, p, n);
    s->head_len += (uint32_t)n;
}

/* Bytes read (or decrypted from a TLS record), by state: the request head, pipelined bytes
 * behind it, frames (what the turn's budget leaves over waits in the backlog), or nothing
 * while closing. Over TLS, what SSL wrote so far (tickets, a KeyUpdate answer) is this
 * session's and goes out first: handling the bytes may reach other TLS sessions (a publish
 * flushes a subscriber's queue), and the loop's output buffer must then be empty. */
static void take_bytes(void *ctx, uint8_t *p, size_t n) {
    clive_session *s = ctx;
    if (s->tls) send_tls_output(s);
    switch ((lv_state)s->state) {
    case LV_READING_REQUEST:
        on_request_bytes(s, p, n);
        break;
    case LV_DECIDING:
        keep_pipelined(s, p, n);
        break;
    case LV_OPEN:
        if (s->head) {
            keep_after_backlog(s, p, n);
        } else {
            size_t used = on_frame_bytes(s, p, n);
            if (used < n) keep_backlog(s, p + used, n - used);
        }
        break;
    default: /* closing: discarded */
        break;
    }
}

static void on_readable(clive_session *s) {
    lv_loop *l = s->loop;
    if (s->in_backlog) return; /* not polled for reading then; a stale event */
    s->budget = MESSAGES_PER_TURN;
    for (int i = 0; i < READS_PER_EVENT && s->state != LV_DONE; i++) {
        size_t n = read_some(s);
        if (n == 0) return;
        take_bytes(s, l->rbuf, n);
        /* deciding, reading stops; with a backlog, so does reading until it is parsed */
        if (s->state == LV_DECIDING || s->in_backlog || n < l->rbuf_cap) return;
    }
}

/* --- TLS input ------------------------------------------------------------------------ */

/* One read, decrypted whole: what a turn's message budget leaves over waits in the
 * backlog as plaintext, so that nothing stays buffered inside OpenSSL while the socket is
 * not polled. */
static void on_readable_tls(clive_session *s) {
    lv_loop *l = s->loop;
    if (s->in_backlog) return;
    size_t n = read_some(s);
    if (n == 0 || s->state == LV_CLOSING) return; /* lingering: the bytes are discarded */
    if (lv_tls_fresh(s->tls) && lv_tls_looks_like_http(l->rbuf, (size_t)n)) {
        /* http:// to a TLS port: a readable answer, in plain text, then the close */
        lv_count(&l->counters.tls_failures, 1);
        log_session(s, CLIVE_LOG_DEBUG, "plain HTTP on a TLS port");
        lv_tls_conn_free(s->tls);
        s->tls = NULL;
        reject(s, 400, "this port speaks TLS: use https:// or wss://");
        return;
    }
    s->budget = MESSAGES_PER_TURN;
    bool was_ready = lv_tls_ready(s->tls), done = false;
    char reason[160] = "";
    lv_tls_result r = lv_tls_feed(s->tls, l->rbuf, (size_t)n, l->tls_plain, l->rbuf_cap,
                                  take_bytes, s, &done, reason, sizeof reason);
    if (done) lv_count(&l->counters.tls_handshakes, 1);
    send_tls_output(s); /* handshake records, tickets, alerts */
    if (s->state == LV_DONE) return;
    if (r == LV_TLS_FAILED) {
        /* a client's failure, not the server's: counted, and logged at debug level only */
        lv_count(&l->counters.tls_failures, 1);
        log_session(s, CLIVE_LOG_DEBUG, "TLS %s failed: %s",
                    was_ready || done ? "record" : "handshake", reason);
        lost(s);
    } else if (r == LV_TLS_EOF) {
        lost(s); /* close_notify: the peer is done */
    }
}

void lv_session_on_poll(clive_session *s, int status, int events) {
    if (status < 0) {
        lost(s);
        return;
    }
    if ((events & UV_DISCONNECT) && s->state == LV_DECIDING) {
        lost(s); /* the client hung up while its upgrade was being decided */
        return;
    }
    if (events & UV_WRITABLE) lv_session_flush(s);
    if ((events & UV_READABLE) && s->state != LV_DONE) {
        if (s->tls)
            on_readable_tls(s);
        else
            on_readable(s);
    }
}

/* --- frames out -------------------------------------------------------------------- */

/* Queues a frame whose reference the caller already counted for this session. Returns
 * whether the session took it. An overflow drops the queue and defers the close, so a
 * fanout in progress never sees its subscriber list change. */
static int enqueue_owned(clive_session *s, clive_frame *f, bool control) {
    if (s->state != LV_OPEN || s->overflowed || s->broken) return 0;
    const clive_options *o = &s->loop->server->options;
    /* Half full and the socket not known to be blocked: write now rather than at the end
     * of the loop turn, so that a burst queued within one turn (a pipelining client, a
     * publish storm) is limited by what the peer fails to read, not by the turn. */
    if (!s->blocked && (s->q.count >= o->queue_size / 2 || s->q.bytes >= o->queue_bytes / 2)) {
        lv_session_flush(s);
        if (s->broken) return 0;
    }
    uint32_t c0 = s->q.count;
    size_t b0 = s->q.bytes;
    /* Control frames (pongs) count against the frame limit only: a pong must not
     * overflow a queue that holds one maximal message. */
    if (lv_sendq_push(&s->q, f, o->queue_size, control ? SIZE_MAX : o->queue_bytes) != 0) {
        lv_session_overflow(s);
        return 0;
    }
    account_queue(s, c0, b0);
    if (!s->in_dirty) lv_loop_mark_dirty(s);
    return 1;
}

void lv_session_overflow(clive_session *s) {
    if (s->overflowed || s->state != LV_OPEN) return;
    s->overflowed = true;
    atomic_store(&s->shared_state, LV_SHARED_OVERFLOWED);
    uint32_t c0 = s->q.count;
    size_t b0 = s->q.bytes;
    lv_sendq_drop(&s->q);
    account_queue(s, c0, b0);
    lv_count(&s->loop->counters.overflows, 1);
    lv_loop_defer(s);
}

/* What a session is sent for frame f: its compressed twin when the session negotiated
 * permessage-deflate and f is worth compressing, else f. */
static clive_frame *frame_for(clive_session *s, clive_frame *f) {
    if (!s->deflate_out) return f;
    const clive_options *o = &s->loop->server->options;
    uint64_t made = 0;
    clive_frame *twin = lv_deflate_twin(&s->loop->zlib, f, o->deflate_min_size, o->deflate_level,
                                        &made);
    if (made) lv_count(&s->loop->counters.compressions, (int64_t)made);
    return twin ? twin : f;
}

void lv_session_enqueue(clive_session *s, clive_frame *f) {
    f = frame_for(s, f);
    clive_frame_retain(f);
    if (!enqueue_owned(s, f, false)) clive_frame_release(f);
}

static void enqueue_control(clive_session *s, clive_frame *f) {
    clive_frame_retain(f);
    if (!enqueue_owned(s, f, true)) clive_frame_release(f);
}

/* How far ahead a fanout prefetches: a session's first two cache lines, and (once those
 * have arrived) the ring slot its frame will go to. At 10,000 subscribers nearly every
 * session is cold, and without this each delivery waited on three misses in a row. */
#define PREFETCH_SESSIONS_AHEAD 16
#define PREFETCH_SLOTS_AHEAD 8

static inline void prefetch_session(const clive_session *s) {
    __builtin_prefetch(s, 1);
    __builtin_prefetch((const char *)s + 64, 1);
}

static inline void prefetch_ring_slot(const clive_session *s) {
    const lv_sendq *q = &s->q;
    if (q->cap) __builtin_prefetch(&q->slots[(q->head + q->count) & (q->cap - 1)], 1);
}

void lv_topic_deliver(lv_loop *l, lv_topic *tp, clive_frame *const *frames, size_t count) {
    uint32_t n = tp->count;
    const lv_member *members = tp->members;
    uint32_t used[256] = {0};
    /* compressed twins, found when the first subscriber with permessage-deflate needs one
     * (NULL: not looked for yet, LV_NO_TWIN: none) and counted like the frames */
    clive_frame *twins[256];
    uint32_t twin_used[256];
    bool any_twin = false;
    uint64_t skipped = 0, replaced = 0;
    /* One reference count update per frame, not per subscriber: count every subscriber
     * up front, hand back the unused ones after. The caller's own reference keeps each
     * frame alive in between. */
    for (size_t i = 0; i < count; i++)
        if (frames[i]) atomic_fetch_add_explicit(&frames[i]->refs, n, memory_order_relaxed);
    for (uint32_t k = 0; k < n && k < PREFETCH_SESSIONS_AHEAD; k++) prefetch_session(members[k].session);
    for (uint32_t k = 0; k < n; k++) {
        if (k + PREFETCH_SESSIONS_AHEAD < n) prefetch_session(members[k + PREFETCH_SESSIONS_AHEAD].session);
        if (k + PREFETCH_SLOTS_AHEAD < n) prefetch_ring_slot(members[k + PREFETCH_SLOTS_AHEAD].session);
        clive_session *s = members[k].session;
        lv_sub *sub = members[k].sub;
        unsigned slot = s->codec_slot;
        clive_frame *f = slot < count ? frames[slot] : NULL;
        if (f == NULL) {
            skipped++;
            continue;
        }
        uint32_t *use = &used[slot];
        if (s->deflate_out) {
            if (!any_twin) {
                memset(twins, 0, sizeof twins[0] * (count < 256 ? count : 256));
                memset(twin_used, 0, sizeof twin_used[0] * (count < 256 ? count : 256));
                any_twin = true;
            }
            if (twins[slot] == NULL) {
                clive_frame *t = frame_for(s, f);
                twins[slot] = t == f ? LV_NO_TWIN : t;
                if (t != f) atomic_fetch_add_explicit(&t->refs, n, memory_order_relaxed);
            }
            if (twins[slot] != LV_NO_TWIN) {
                f = twins[slot];
                use = &twin_used[slot];
            }
        }
        if (tp->latest_only && sub->unsent_seq && s->state == LV_OPEN && !s->overflowed) {
            /* latest value wins: overwrite this topic's frame still waiting in the ring */
            uint32_t c0 = s->q.count;
            size_t b0 = s->q.bytes;
            if (lv_sendq_replace(&s->q, sub->unsent_seq - 1, f)) {
                account_queue(s, c0, b0);
                (*use)++;
                replaced++;
                continue;
            }
        }
        if (enqueue_owned(s, f, false)) {
            (*use)++;
            if (tp->latest_only) sub->unsent_seq = lv_sendq_next_seq(&s->q); /* its seq + 1 */
        }
    }
    uint64_t delivered = 0;
    for (size_t i = 0; i < count; i++) {
        delivered += used[i];
        if (frames[i] && n > used[i])
            atomic_fetch_sub_explicit(&frames[i]->refs, n - used[i], memory_order_release);
    }
    /* a twin is owned by its frame, which the caller still holds: none drops to zero here */
    for (size_t i = 0; any_twin && i < count && i < 256; i++) {
        if (twins[i] == NULL || twins[i] == LV_NO_TWIN) continue;
        delivered += twin_used[i];
        if (n > twin_used[i])
            atomic_fetch_sub_explicit(&twins[i]->refs, n - twin_used[i], memory_order_release);
    }
    if (skipped) lv_count(&l->counters.skipped, (int64_t)skipped);
    if (replaced) lv_count(&l->counters.coalesced, (int64_t)replaced);
    lv_count(&l->counters.deliveries, (int64_t)delivered);
}

/* A fanout's time from clive_publish to the last local subscriber's queue: a sum and a
 * log2 histogram, one clock read per publish per loop, none per delivery. */
static void time_fanout(lv_loop *l, uint64_t published_ns) {
    uint64_t ns = uv_hrtime() - published_ns, us = ns / 1000;
    unsigned bucket = us ? 64 - (unsigned)__builtin_clzll(us) : 0;
    if (bucket >= CLIVE_TIMING_BUCKETS) bucket = CLIVE_TIMING_BUCKETS - 1;
    lv_count(&l->counters.fanouts, 1);
    lv_count(&l->counters.fanout_ns, (int64_t)ns);
    lv_count(&l->counters.fanout_hist[bucket], 1);
}

void lv_loop_fanout(lv_loop *l, const char *topic, size_t len, clive_frame *const *frames,
                    size_t count, uint64_t published_ns) {
    lv_topic *tp = lv_topics_find(&l->topics, topic, len);
    if (tp == NULL || tp->count == 0) return;
    if (tp->throttle_ms) {
        uint64_t now = lv_now(l);
        if (now - tp->last_sent_ms < tp->throttle_ms) {
            lv_loop_hold_back(l, tp, frames, count);
            return;
        }
        tp->last_sent_ms = now; /* a held-back older publish is superseded by this one */
        lv_loop_hold_back(l, tp, NULL, 0);
    }
    lv_topic_deliver(l, tp, frames, count);
    time_fanout(l, published_ns);
}

/* --- TLS output ----------------------------------------------------------------------- */

/* A send that never blocks: the bytes taken (0 when the socket is full), or -1 when the
 * connection broke; the session is then finished on the deferred pass, since a flush can
 * run inside a fanout, whose subscriber list must not change under it. */
static ssize_t send_some(clive_session *s, const void *p, size_t n) {
    ssize_t w;
    do w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w >= 0) {
        lv_count(&s->loop->counters.bytes_out, w);
        return w;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    s->broken = true;
    lv_loop_defer(s);
    return -1;
}

/* Sends what SSL left in the loop's output buffer, or holds it behind what is held. */
static void send_tls_output(clive_session *s) {
    lv_tls_io *io = &s->loop->tls_io;
    size_t n = io->out_len;
    io->out_len = 0;
    if (n == 0 || s->state == LV_DONE || s->broken || s->tls == NULL) return;
    const uint8_t *held;
    ssize_t w = 0;
    if (lv_tls_held(s->tls, &held) == 0) {
        if ((w = send_some(s, io->out, n)) < 0) return;
        if ((size_t)w == n) return;
    }
    if (lv_tls_hold(s->tls, io->out + w, n - (size_t)w) != 0) {
        s->broken = true;
        lv_loop_defer(s);
        return;
    }
    s->blocked = true;
    set_polling(s, wanted_events(s));
}

/* The TLS twin of the plain flush below: the same queue of shared plaintext frames, taken
 * up to 64 KiB at a time (gathered as in the plain path), encrypted into records of up to
 * 16 KiB and sent with one send. Ciphertext the socket does not take is held by the
 * session and goes first next time; nothing more is encrypted until it is gone, so a
 * session holds at most one chunk of ciphertext. */
static void tls_flush(clive_session *s) {
    lv_loop *l = s->loop;
    lv_tls_io *io = &l->tls_io;
    bool blocked = false;
    assert(io->out_len == 0); /* every TLS call's output is sent or held before others run */
    while (s->state != LV_DONE && !s->broken) {
        const uint8_t *held;
        size_t h = lv_tls_held(s->tls, &held);
        if (h) {
            ssize_t w = send_some(s, held, h);
            if (w < 0) return;
            lv_tls_held_sent(s->tls, (size_t)w);
            if ((size_t)w < h) {
                blocked = true;
                break;
            }
        }
        if (s->q.count == 0 || !lv_tls_ready(s->tls)) break;
        struct iovec iov[64];
        int n = lv_sendq_iov(&s->q, iov, 64);
        const uint8_t *src = iov[0].iov_base;
        size_t len = iov[0].iov_len < l->gather_cap ? iov[0].iov_len : l->gather_cap;
        if (n > 1 && iov[0].iov_len < l->gather_cap) {
            len = 0;
            for (int i = 0; i < n && len + iov[i].iov_len <= l->gather_cap; i++) {
                memcpy(l->gather + len, iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
            }
            src = l->gather;
        }
        if (lv_tls_encrypt(s->tls, src, len) != 0) {
            io->out_len = 0;
            s->broken = true;
            lv_loop_defer(s);
            return;
        }
        uint32_t c0 = s->q.count;
        size_t b0 = s->q.bytes;
        uint32_t done = lv_sendq_consume(&s->q, len);
        account_queue(s, c0, b0);
        lv_count(&l->counters.frames_out, done);
        send_tls_output(s);
        if (s->broken) return;
        if (lv_tls_held(s->tls, &held)) {
            blocked = true;
            break;
        }
    }
    if (s->state == LV_DONE || s->broken) return;
    s->blocked = blocked;
    if (!blocked && s->q.count == 0 && s->close_queued && !s->write_shut) {
        /* close_notify, then our FIN, once everything before it is out */
        lv_tls_close_notify(s->tls);
        send_tls_output(s);
        const uint8_t *held;
        if (!s->broken && lv_tls_held(s->tls, &held) == 0) {
            shutdown(s->fd, SHUT_WR);
            s->write_shut = true;
        }
    }
    if (s->state != LV_DONE && !s->broken) set_polling(s, wanted_events(s));
}

void lv_session_flush(clive_session *s) {
    if (s->tls) {
        tls_flush(s);
        return;
    }
    struct iovec iov[IOV_MAX];
    bool blocked = false;
    while (s->state != LV_DONE && !s->broken && s->q.count > 0) {
        int n = lv_sendq_iov(&s->q, iov, IOV_MAX);
        size_t total = 0;
        for (int i = 0; i < n; i++) total += iov[i].iov_len;
        /* Many small frames: gather them into one buffer first. The kernel copies each
         * iovec separately at a high fixed cost (a 32-frame write of 64-byte messages
         * spent more time there than a user-space memcpy of the same bytes takes). */
        lv_loop *l = s->loop;
        if (n > 1 && total <= l->gather_cap) {
            size_t at = 0;
            for (int i = 0; i < n; i++) {
                memcpy(l->gather + at, iov[i].iov_base, iov[i].iov_len);
                at += iov[i].iov_len;
            }
            iov[0] = (struct iovec){.iov_base = l->gather, .iov_len = total};
            n = 1;
        }
        /* send/sendmsg rather than write/writev: MSG_NOSIGNAL keeps a vanished peer from
         * raising SIGPIPE in the embedding process. One buffer goes by send, which spares
         * the kernel importing a message header and an iovec array. */
        ssize_t w;
        if (n == 1) {
            w = send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                blocked = true;
                break;
            }
            /* Not finished here: a flush can run inside a fanout, whose subscriber list
             * must not change under it. The deferred pass finishes the session. */
            s->broken = true;
            lv_loop_defer(s);
            return;
        }
        uint32_t c0 = s->q.count;
        size_t b0 = s->q.bytes;
        uint32_t done = lv_sendq_consume(&s->q, (size_t)w);
        account_queue(s, c0, b0);
        lv_count(&s->loop->counters.frames_out, done);
        lv_count(&s->loop->counters.bytes_out, w);
        if ((size_t)w < total) {
            blocked = true;
            break;
        }
    }
    if (s->state == LV_DONE || s->broken) return;
    s->blocked = blocked;
    if (s->q.count == 0 && s->close_queued && !s->write_shut) {
        shutdown(s->fd, SHUT_WR);
        s->write_shut = true;
    }
    set_polling(s, wanted_events(s));
}

/* --- closing ----------------------------------------------------------------------- */

static void record_close(clive_session *s, clive_close_kind kind, uint16_t code,
                         const char *reason, size_t reason_len) {
    if (reason_len > 123) reason_len = 123; /* what fits a close frame */
    lv_count(&s->loop->counters.closed[kind], 1); /* only open sessions get here, once */
    s->close_kind = (uint8_t)kind;
    s->close_code = code;
    free(s->close_reason);
    s->close_reason = reason_len ? malloc(reason_len) : NULL;
    if (s->close_reason == NULL) reason_len = 0;
    s->close_reason_len = (uint8_t)reason_len;
    if (reason_len) memcpy(s->close_reason, reason, reason_len);
}

/* An open session stops being one: no subscriptions, no more sends. */
static void leave_open(clive_session *s) {
    lv_loop *l = s->loop;
    s->state = LV_CLOSING;
    if (!s->overflowed) atomic_store(&s->shared_state, LV_SHARED_CLOSED);
    uint64_t before = l->topics.subscriptions;
    uint32_t topics_before = l->topics.names.count;
    lv_topics_remove_all(&l->topics, &s->subs);
    lv_count(&l->counters.subscriptions, -(int64_t)(before - l->topics.subscriptions));
    lv_count(&l->counters.topics, (int64_t)l->topics.names.count - (int64_t)topics_before);
    lv_count(&l->counters.sessions, -1);
    /* A message being reassembled is dropped here, but one being delivered right now was
     * taken off the session first (hook_data), so its handler can still read it. */
    free(s->msg);
    s->msg = NULL;
    s->msg_len = s->msg_cap = 0;
    free_head(s); /* unparsed input of a closing session is never parsed */
}

void lv_session_start_close(clive_session *s, clive_close_kind kind, uint16_t code,
                            const char *reason, size_t reason_len) {
    if (s->state != LV_OPEN) return;
    leave_open(s);
    record_close(s, kind, code, reason, reason_len);
    /* Answer a peer's close with its own code (none if it sent none). */
    uint8_t payload[125];
    size_t plen = 0;
    if (code != LV_CLOSE_NO_STATUS) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        plen = 2 + s->close_reason_len;
        if (s->close_reason_len) memcpy(payload + 2, s->close_reason, s->close_reason_len);
    }
    clive_frame *f = lv_frame_control(LV_OP_CLOSE, payload, plen);
    uint32_t c0 = s->q.count;
    size_t b0 = s->q.bytes;
    if (f == NULL || lv_sendq_push_force(&s->q, f) != 0) {
        clive_frame_release(f);
        lv_session_finish(s);
        return;
    }
    account_queue(s, c0, b0);
    s->close_queued = true;
    s->deadline_ms = lv_now(s->loop) + s->loop->server->options.close_timeout_ms;
    s->notify_close = true;
    lv_loop_defer(s); /* on_close runs outside the callback that may have caused this */
    lv_loop_mark_dirty(s);
}

static void notify_close(clive_session *s) {
    s->notify_close = false;
    if (!s->request_seen || s->close_notified) return;
    s->close_notified = true;
    const clive_callbacks *cb = callbacks(s);
    if (cb->on_close)
        cb->on_close(s, (clive_close_kind)s->close_kind, s->close_code,
                     s->close_reason ? s->close_reason : "", s->close_reason_len, cb->user);
}

void lv_session_run_deferred(clive_session *s) {
    if (s->broken) {
        lost(s);
        return;
    }
    if (s->state == LV_OPEN && s->overflowed)
        lv_session_start_close(s, CLIVE_CLOSED_OVERFLOW, CLIVE_CLOSE_SLOW, "slow", 4);
    if (s->notify_close) notify_close(s);
}

/* A deadline passed (handshake, or the close timeout after our close frame): the peer is
 * not answering, and often not reading either. Closing normally would leave the socket in
 * FIN-WAIT-1 with our unsent bytes for as long as the peer keeps its window shut, holding
 * kernel memory, and the peer would never learn the connection ended. An abort (RST, by
 * SO_LINGER 0) frees it at once and tells the peer. */
static void abort_connection(clive_session *s) {
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    lv_session_finish(s);
}

void lv_session_sweep(clive_session *s, uint64_t now) {
    const clive_options *o = &s->loop->server->options;
    switch ((lv_state)s->state) {
    case LV_READING_REQUEST:
    case LV_DECIDING:
    case LV_CLOSING:
        if (now >= s->deadline_ms) abort_connection(s);
        break;
    case LV_OPEN: {
        uint64_t quiet = now - s->last_heard_ms;
        if (quiet >= o->idle_timeout_ms) {
            lv_session_start_close(s, CLIVE_CLOSED_IDLE, LV_CLOSE_GOING_AWAY, "idle timeout",
                                   12);
        } else if (quiet >= o->ping_interval_ms && !s->ping_outstanding) {
            clive_frame *ping = lv_frame_control(LV_OP_PING, NULL, 0);
            if (ping) {
                enqueue_control(s, ping);
                clive_frame_release(ping);
            }
            s->ping_outstanding = true;
        }
        break;
    }
    case LV_DONE:
        break;
    }
}

void lv_session_closed(clive_session *s) {
    close(s->fd);
    /* freed here, not in lv_session_finish: a finish can happen inside an SSL call */
    lv_tls_conn_free(s->tls);
    s->tls = NULL;
    if (s->in_dirty)
        s->release_after_flush = true; /* the flush list still points here: it releases */
    else
        clive_session_release(s); /* the loop's reference */
}

void lv_session_finish(clive_session *s) {
    if (s->state == LV_DONE) return;
    lv_loop *l = s->loop;
    if (s->state == LV_OPEN) {
        leave_open(s);
        record_close(s, CLIVE_CLOSED_ABNORMAL, LV_CLOSE_ABNORMAL, "", 0);
    } else if (s->state != LV_CLOSING) {
        s->close_kind = CLIVE_CLOSED_NOT_OPENED;
    }
    int pending = LV_SHARED_PENDING, open = LV_SHARED_OPEN;
    atomic_compare_exchange_strong(&s->shared_state, &pending, LV_SHARED_CLOSED);
    atomic_compare_exchange_strong(&s->shared_state, &open, LV_SHARED_CLOSED);
    if (s->request_seen && !s->close_notified) notify_close(s);
    s->state = LV_DONE;
    if (s->prev)
        s->prev->next = s->next;
    else
        l->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    lv_poller_remove(&l->poller, s); /* the socket is closed when reaped: lv_session_closed */
    lv_count(&l->counters.connections, -1);
    atomic_fetch_sub(&l->server->connections, 1);
    if (s->peer) lv_peers_remove(&l->server->peers, s->peer);
    s->peer = NULL;
    uint32_t c0 = s->q.count;
    size_t b0 = s->q.bytes;
    lv_sendq_free(&s->q);
    account_queue(s, c0, b0);
    free_head(s);
    free(s->msg);
    s->msg = NULL;
    lv_frame_parser_free(&s->parser);
    lv_inflate_free(s->zin);
    s->zin = NULL;
    clive_frame_release(s->upgrade_reply);
    s->upgrade_reply = NULL;
    lv_loop_maybe_stop(l);
}
