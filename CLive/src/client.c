/* The client side of RFC 6455 (ws:// and wss://): the opening handshake, masked frames, ping/pong
 * and the closing handshake, on one process-wide libuv loop thread. See clive.h.
 *
 * Every socket operation happens on the client loop thread. Other threads reach it through
 * a mutex-guarded command list and a uv_async wake-up: clients are few (an app, an agent,
 * a CLI), so a lock is simpler than the servers' lock-free inbox and costs nothing that
 * shows. A frame to send is built and masked by the caller's thread, so the loop only
 * writes it. */
#define _GNU_SOURCE
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <uv.h>

#include "clive.h"
#include "frame.h"
#include "http.h"
#include "sha1.h"
#include "tls.h"
#include "utf8.h"

#define DEFAULT_MAX_MESSAGE (16u << 20)
#define DEFAULT_MAX_FRAGMENTS 131072u
#define DEFAULT_MAX_HEAD 8192u
#define DEFAULT_MAX_QUEUED (16u << 20)
#define DEFAULT_HANDSHAKE_MS 10000u
#define DEFAULT_PING_MS 30000u
#define DEFAULT_IDLE_MS 60000u
#define DEFAULT_CLOSE_MS 3000u
#define READ_BUFFER (64 * 1024)

/* RETRYING: an address failed and its socket is closing before the next is tried. */
enum state { RESOLVING, CONNECTING, RETRYING, HANDSHAKE, OPEN, CLOSING, DONE };
/* What the caller's threads may read: before open, open, closing or closed. */
enum public_state { P_CONNECTING, P_OPEN, P_CLOSED };

struct clive_client {
    atomic_int refs;
    atomic_int public_state;
    atomic_size_t queued; /* bytes handed to send and not yet written */
    clive_client_callbacks cb;
    char *host;
    char port[8];
    char *request; /* the whole opening handshake, ready to write */
    size_t request_len;
    char accept[29];
    char **protocols;
    size_t protocol_count;
    size_t max_head, max_queued;
    unsigned handshake_ms, ping_ms, idle_ms, close_ms;
    int tls_on, tls_insecure; /* wss://; and whether the server's certificate goes unchecked */
    char *tls_ca_file;

    /* loop thread only */
    enum state state;
    uv_getaddrinfo_t gai;
    struct addrinfo *addrs, *next_addr;
    uv_tcp_t tcp;
    int tcp_open; /* tcp initialised and not yet closed */
    uv_timer_t timer;
    uv_connect_t connect;
    lv_tls_conn *tls; /* wss://: from the TCP connection on */
    char *head; /* the response head as it arrives */
    size_t head_len, head_scanned;
    lv_frame_parser parser;
    uint8_t *msg; /* the data message being reassembled */
    size_t msg_len, msg_cap;
    uint64_t last_heard;
    int reading;    /* frames are parsed: from open until a close frame or a violation */
    int close_sent;
    /* the outcome, decided once, reported by on_close when the socket is gone */
    int decided;
    clive_client_close_kind kind;
    int code, http_status;
    char reason[256];
    size_t reason_len;
};

/* ---- the loop thread and its commands ---- */

enum cmd_kind { CMD_START, CMD_WRITE, CMD_CLOSE };

typedef struct cmd {
    struct cmd *next;
    enum cmd_kind kind;
    clive_client *client; /* holds a reference */
    uint8_t *data;        /* CMD_WRITE: a complete masked frame */
    size_t len;
    int opcode;
    uint16_t code;
    char reason[124];
    size_t reason_len;
} cmd;

static pthread_once_t loop_once = PTHREAD_ONCE_INIT;
static int loop_failed;
static uv_loop_t loop;
static uv_async_t wake;
static pthread_mutex_t cmd_mu = PTHREAD_MUTEX_INITIALIZER;
static cmd *cmd_head, *cmd_tail;
static pthread_t loop_thread;
/* 1 on the client loop thread: calls made there (from a callback) act at once, so that a
 * message echoed from on_message goes out before anything read after it is acted on. */
static _Thread_local int on_loop;

static void run_commands(uv_async_t *h);

static void *loop_main(void *arg) {
    (void)arg;
    on_loop = 1;
    uv_run(&loop, UV_RUN_DEFAULT); /* the async handle keeps it running for good */
    return NULL;
}

static void start_loop(void) {
    if (uv_loop_init(&loop) != 0 || uv_async_init(&loop, &wake, run_commands) != 0) {
        loop_failed = 1;
        return;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&loop_thread, &attr, loop_main, NULL) != 0)
        loop_failed = 1;
    pthread_attr_destroy(&attr);
}

static void post(cmd *c) {
    c->next = NULL;
    pthread_mutex_lock(&cmd_mu);
    if (cmd_tail)
        cmd_tail->next = c;
    else
        cmd_head = c;
    cmd_tail = c;
    pthread_mutex_unlock(&cmd_mu);
    uv_async_send(&wake);
}

void clive_client_retain(clive_client *c) { atomic_fetch_add(&c->refs, 1); }

void clive_client_release(clive_client *c) {
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i < c->protocol_count; i++)
        free(c->protocols[i]);
    free(c->protocols);
    free(c->host);
    free(c->tls_ca_file);
    lv_tls_conn_free(c->tls);
    free(c->request);
    free(c->head);
    free(c->msg);
    lv_frame_parser_free(&c->parser);
    if (c->addrs)
        uv_freeaddrinfo(c->addrs);
    free(c);
}

/* ---- randomness: masking keys and the handshake key ---- */

/* Bytes from getrandom(2), drawn a block at a time per thread: a frame's key must not be
 * predictable to the page that might have chosen its payload (RFC 6455 10.3). */
static void random_bytes(uint8_t *out, size_t n) {
    static _Thread_local uint8_t pool[256];
    static _Thread_local size_t pos = sizeof pool;
    while (n) {
        if (pos == sizeof pool) {
            size_t got = 0;
            while (got < sizeof pool) {
                ssize_t k = getrandom(pool + got, sizeof pool - got, 0);
                if (k > 0)
                    got += (size_t)k;
            }
            pos = 0;
        }
        size_t take = sizeof pool - pos < n ? sizeof pool - pos : n;
        memcpy(out, pool + pos, take);
        pos += take;
        out += take;
        n -= take;
    }
}

/* A client frame: FIN, the opcode, MASK and a fresh key, the masked payload. */
static uint8_t *build_frame(int opcode, const void *payload, size_t len, size_t *out_len) {
    uint8_t *f = malloc(14 + len);
    if (f == NULL)
        return NULL;
    size_t h = lv_frame_header(f, opcode, len);
    f[1] |= 0x80;
    random_bytes(f + h, 4);
    if (len)
        memcpy(f + h + 4, payload, len);
    lv_mask(f + h + 4, len, f + h, 0);
    *out_len = h + 4 + len;
    return f;
}

/* ---- ending ---- */

static void decide(clive_client *c, clive_client_close_kind kind, int code, const char *reason,
                   size_t reason_len, int http_status) {
    if (c->decided)
        return;
    c->decided = 1;
    c->kind = kind;
    c->code = code;
    c->http_status = http_status;
    if (reason_len > sizeof c->reason)
        reason_len = sizeof c->reason;
    if (reason_len)
        memcpy(c->reason, reason, reason_len);
    c->reason_len = reason_len;
    atomic_store(&c->public_state, P_CLOSED);
}

static void decide_str(clive_client *c, clive_client_close_kind kind, int code, const char *why) {
    decide(c, kind, code, why, strlen(why), 0);
}

static void on_timer_closed(uv_handle_t *h) {
    clive_client *c = h->data;
    if (c->cb.on_close)
        c->cb.on_close(c, c->kind, c->code, c->reason, c->reason_len, c->http_status,
                       c->cb.user);
    clive_client_release(c); /* the loop's reference */
}

static void on_tcp_closed(uv_handle_t *h) {
    clive_client *c = h->data;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* Closes the socket (pending writes are cancelled) and, once it is gone, reports. */
static void finish(clive_client *c) {
    if (c->state == DONE)
        return;
    c->state = DONE;
    atomic_store(&c->public_state, P_CLOSED);
    uv_timer_stop(&c->timer);
    if (c->tcp_open) {
        c->tcp_open = 0;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    } else {
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
}

/* ---- writing ---- */

typedef struct write_req {
    uv_write_t req;
    clive_client *client;
    uint8_t *data;
    size_t len;
    size_t counted; /* bytes to take off client->queued once written */
} write_req;

/* The loop's TLS buffers: what SSL reads from and writes into (tls.h), and the decrypted
 * input; one loop thread, so one of each. */
static lv_tls_io tls_io;
static uint8_t tls_plain[READ_BUFFER];

static void on_written(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    (void)status; /* a failed write shows as a read error or EOF */
    if (w->counted)
        atomic_fetch_sub(&w->client->queued, w->counted);
    clive_client_release(w->client);
    free(w->data);
    free(w);
}

static void write_raw(clive_client *c, uint8_t *data, size_t len, size_t counted);

/* Sends the records SSL left in the loop's output buffer (a handshake flight, or the
 * encryption of a frame). */
static void send_tls_output(clive_client *c) {
    size_t n = tls_io.out_len;
    tls_io.out_len = 0;
    if (n == 0 || !c->tcp_open)
        return;
    uint8_t *copy = malloc(n);
    if (copy == NULL)
        return; /* the stream is broken now: the server will notice and close */
    memcpy(copy, tls_io.out, n);
    write_raw(c, copy, n, 0);
}

/* Writes bytes the request owns (data is freed once written); over TLS they are encrypted
 * first. counted: whether they are in client->queued. */
static void write_owned(clive_client *c, uint8_t *data, size_t len, int counted) {
    if (c->tls == NULL) {
        write_raw(c, data, len, counted ? len : 0);
        return;
    }
    assert(tls_io.out_len == 0); /* every TLS call's output is sent before others run */
    int failed = lv_tls_encrypt(c->tls, data, len);
    free(data);
    if (counted)
        atomic_fetch_sub(&c->queued, len);
    if (failed)
        tls_io.out_len = 0;
    else
        send_tls_output(c);
}

static void write_raw(clive_client *c, uint8_t *data, size_t len, size_t counted) {
    write_req *w = malloc(sizeof *w);
    if (w == NULL) {
        free(data);
        if (counted)
            atomic_fetch_sub(&c->queued, counted);
        return;
    }
    w->client = c;
    w->data = data;
    w->len = len;
    w->counted = counted;
    clive_client_retain(c);
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        on_written(&w->req, -1);
}

static void write_control(clive_client *c, int opcode, const void *payload, size_t len) {
    size_t n;
    uint8_t *f = build_frame(opcode, payload, len, &n);
    if (f)
        write_owned(c, f, n, 0);
}

/* Sends our close frame once and waits close_timeout_ms for the server's. */
static void send_close(clive_client *c, int code, const char *reason, size_t reason_len) {
    if (c->close_sent)
        return;
    c->close_sent = 1;
    uint8_t p[125];
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (reason_len > 123)
        reason_len = 123;
    memcpy(p + 2, reason, reason_len);
    write_control(c, LV_OP_CLOSE, p, 2 + reason_len);
}

static void on_close_timeout(uv_timer_t *t) { finish(t->data); }

static void start_closing(clive_client *c) {
    c->state = CLOSING;
    atomic_store(&c->public_state, P_CLOSED);
    uv_timer_start(&c->timer, on_close_timeout, c->close_ms, 0);
}

/* ---- reading frames ---- */

static int on_data(void *user, int opcode, uint8_t *data, size_t len, int last) {
    clive_client *c = user;
    if (last && c->msg_len == 0) { /* the usual case: the whole message in one chunk */
        if (c->state == OPEN && c->cb.on_message)
            c->cb.on_message(c, opcode == LV_OP_BINARY, data, len, c->cb.user);
        return 0;
    }
    if (c->msg_len + len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < c->msg_len + len)
            cap *= 2;
        uint8_t *m = realloc(c->msg, cap);
        if (m == NULL) {
            decide_str(c, CLIVE_CLIENT_PROTOCOL, LV_CLOSE_INTERNAL, "out of memory");
            send_close(c, LV_CLOSE_INTERNAL, "", 0);
            c->reading = 0;
            if (c->state != CLOSING)
                start_closing(c);
            return 1;
        }
        c->msg = m;
        c->msg_cap = cap;
    }
    if (len)
        memcpy(c->msg + c->msg_len, data, len);
    c->msg_len += len;
    if (last) {
        size_t n = c->msg_len;
        c->msg_len = 0;
        if (c->state == OPEN && c->cb.on_message)
            c->cb.on_message(c, opcode == LV_OP_BINARY, c->msg, n, c->cb.user);
    }
    return 0;
}

static int on_control(void *user, int opcode, uint8_t *data, size_t len) {
    clive_client *c = user;
    if (opcode == LV_OP_PING) {
        if (!c->close_sent)
            write_control(c, LV_OP_PONG, data, len);
        return 0;
    }
    if (opcode == LV_OP_PONG)
        return 0;
    /* close: the server's own, or its reply to ours; nothing after it is read */
    c->reading = 0;
    int code = len >= 2 ? (data[0] << 8 | data[1]) : LV_CLOSE_NO_STATUS;
    const char *reason = len > 2 ? (const char *)data + 2 : "";
    size_t reason_len = len > 2 ? len - 2 : 0;
    decide(c, CLIVE_CLIENT_CLOSED_BY_SERVER, code, reason, reason_len, 0);
    if (!c->close_sent) {
        /* echo its code (RFC 6455 5.5.1); a close without one is answered without one */
        c->close_sent = 1;
        write_control(c, LV_OP_CLOSE, data, len >= 2 ? 2 : 0);
    }
    /* the server closes TCP first (RFC 6455 7.1.1); we wait for it, bounded */
    if (c->state != CLOSING)
        start_closing(c);
    return 1;
}

static const lv_frame_hooks hooks = {on_data, on_control};

static void feed_frames(clive_client *c, uint8_t *data, size_t len) {
    while (len && c->reading) {
        size_t used = 0;
        int rc = lv_frame_parse(&c->parser, data, len, &used, &hooks, c);
        if (rc == 0)
            return;
        if (rc == LV_FRAME_STOPPED) {
            data += used;
            len -= used;
            continue;
        }
        /* the server broke the protocol: say so with the code, and stop reading */
        const char *why = rc == LV_CLOSE_INVALID_DATA ? "invalid UTF-8"
                          : rc == LV_CLOSE_TOO_BIG    ? "message too big"
                                                      : "protocol error";
        decide_str(c, CLIVE_CLIENT_PROTOCOL, rc, why);
        send_close(c, rc, why, strlen(why));
        c->reading = 0;
        if (c->state != CLOSING)
            start_closing(c);
        return;
    }
}

static void on_ping_timer(uv_timer_t *t);

/* ---- the handshake's answer ---- */

static const char *find_header(const char *head, size_t len, const char *name, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len); /* skip the status line */
    const char *end = head + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && (size_t)(colon - line) == nlen && strncasecmp(line, name, nlen) == 0) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Checks a complete response head; on success the connection is open. Returns 0, or
 * fails the attempt (decided and finished) and returns -1. */
static int check_response(clive_client *c, const char *h, size_t len) {
    int status = 0;
    if (len < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ' || sscanf(h + 9, "%3d", &status) != 1) {
        decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "not an HTTP response");
        return -1;
    }
    if (status != 101) {
        /* the status line's words, e.g. "401 Unauthorized" */
        const char *eol = memchr(h, '\r', len);
        size_t n = eol ? (size_t)(eol - (h + 9)) : 3;
        decide(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, h + 9, n, status);
        return -1;
    }
    size_t n;
    const char *v = find_header(h, len, "Upgrade", &n);
    if (v == NULL || !lv_http_list_has(v, n, "websocket")) {
        decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "101 without Upgrade: websocket");
        return -1;
    }
    v = find_header(h, len, "Connection", &n);
    if (v == NULL || !lv_http_list_has(v, n, "upgrade")) {
        decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "101 without Connection: upgrade");
        return -1;
    }
    v = find_header(h, len, "Sec-WebSocket-Accept", &n);
    if (v == NULL || n != 28 || memcmp(v, c->accept, 28) != 0) {
        decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "wrong Sec-WebSocket-Accept");
        return -1;
    }
    if (find_header(h, len, "Sec-WebSocket-Extensions", &n)) {
        decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "an extension that was not offered");
        return -1;
    }
    int chosen = -1;
    v = find_header(h, len, "Sec-WebSocket-Protocol", &n);
    if (v) {
        for (size_t i = 0; i < c->protocol_count; i++)
            if (strlen(c->protocols[i]) == n && memcmp(c->protocols[i], v, n) == 0)
                chosen = (int)i;
        if (chosen < 0) {
            decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "a subprotocol that was not offered");
            return -1;
        }
    }
    c->state = OPEN;
    c->reading = 1;
    int connecting = P_CONNECTING; /* unless clive_client_close came first */
    atomic_compare_exchange_strong(&c->public_state, &connecting, P_OPEN);
    c->last_heard = uv_now(&loop);
    /* from now on the timer pings, at the smaller of the ping interval and the idle limit */
    unsigned every = c->ping_ms < c->idle_ms ? c->ping_ms : c->idle_ms;
    uv_timer_start(&c->timer, on_ping_timer, every, every);
    if (c->cb.on_open)
        c->cb.on_open(c, chosen, c->cb.user);
    return 0;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    (void)hint;
    static uint8_t buffer[READ_BUFFER]; /* one loop thread; a read is handled before the next */
    *buf = uv_buf_init((char *)buffer, sizeof buffer);
}

static void ended(clive_client *c, const char *why) {
    if (c->state == HANDSHAKE)
        decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL,
                   "the connection ended during the handshake");
    else
        decide_str(c, CLIVE_CLIENT_ABNORMAL, LV_CLOSE_ABNORMAL, why);
    finish(c);
}

/* Bytes from the server (decrypted, over TLS): the response head, then frames. */
static void on_bytes(clive_client *c, uint8_t *data, size_t len) {
    if (c->state == HANDSHAKE) {
        size_t room = c->max_head - c->head_len;
        size_t take = len < room ? len : room;
        memcpy(c->head + c->head_len, data, take);
        c->head_len += take;
        size_t end = lv_http_head_end(c->head, c->head_len, &c->head_scanned);
        if (end == 0) {
            if (c->head_len == c->max_head) {
                decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL,
                           "response head too large");
                finish(c);
            }
            return;
        }
        if (check_response(c, c->head, end) != 0) {
            finish(c);
            return;
        }
        /* frames that came with the head: what of them is in head, then the rest of data */
        size_t extra = c->head_len - end;
        uint8_t *rest = (uint8_t *)c->head + end;
        size_t from_data = len - take;
        c->head_len = 0;
        feed_frames(c, rest, extra);
        data += take;
        len = from_data;
    }
    feed_frames(c, data, len);
}

/* Plaintext from a record. What SSL wrote before it is this connection's and goes out
 * first: the callbacks it leads to may write to other connections of the loop. */
static void take_plain(void *ctx, uint8_t *p, size_t n) {
    clive_client *c = ctx;
    send_tls_output(c);
    if (c->state != DONE)
        on_bytes(c, p, n);
}

static void on_read_tls(clive_client *c, uint8_t *data, size_t len) {
    bool ready = false;
    char why[200] = "";
    lv_tls_result r = lv_tls_feed(c->tls, data, len, tls_plain, sizeof tls_plain, take_plain, c,
                                  &ready, why, sizeof why);
    send_tls_output(c);
    if (c->state == DONE)
        return;
    if (ready && c->request) { /* the TLS handshake is done: now the HTTP one */
        write_owned(c, (uint8_t *)c->request, c->request_len, 0);
        c->request = NULL;
    }
    if (r == LV_TLS_FAILED) {
        char reason[256];
        snprintf(reason, sizeof reason, "TLS: %s", why);
        decide_str(c, c->state == HANDSHAKE ? CLIVE_CLIENT_HANDSHAKE_FAILED : CLIVE_CLIENT_ABNORMAL,
                   LV_CLOSE_ABNORMAL, reason);
        finish(c);
    } else if (r == LV_TLS_EOF) {
        ended(c, "the connection ended without a close frame");
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    clive_client *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        ended(c, nread == UV_EOF ? "the connection ended without a close frame"
                                 : uv_strerror((int)nread));
        return;
    }
    c->last_heard = uv_now(&loop);
    if (c->tls)
        on_read_tls(c, (uint8_t *)buf->base, (size_t)nread);
    else
        on_bytes(c, (uint8_t *)buf->base, (size_t)nread);
}

/* ---- timers: handshake timeout, then pings and the idle limit ---- */

static void on_handshake_timeout(uv_timer_t *t) {
    clive_client *c = t->data;
    decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, "handshake timed out");
    finish(c);
}

static void on_ping_timer(uv_timer_t *t) {
    clive_client *c = t->data;
    if (c->state != OPEN)
        return;
    uint64_t quiet = uv_now(&loop) - c->last_heard;
    if (quiet >= c->idle_ms) {
        decide_str(c, CLIVE_CLIENT_IDLE, LV_CLOSE_ABNORMAL, "the server went silent");
        finish(c);
    } else if (quiet >= c->ping_ms) {
        write_control(c, LV_OP_PING, NULL, 0);
    }
}

/* ---- connecting ---- */

static void try_next_address(clive_client *c, const char *last_error);

/* The failed attempt's socket is closed: try the next address, unless the attempt was
 * closed or timed out meanwhile. */
static void on_attempt_closed(uv_handle_t *h) {
    clive_client *c = h->data;
    if (c->state == RETRYING)
        try_next_address(c, c->reason);
    else
        finish(c);
    clive_client_release(c);
}

/* An address failed: its handle must be closed before the next attempt reuses it. */
static void retry(clive_client *c, int status) {
    c->state = RETRYING;
    c->tcp_open = 0;
    /* the last error, kept in reason until an outcome is decided */
    snprintf(c->reason, sizeof c->reason, "%s", uv_strerror(status));
    clive_client_retain(c);
    uv_close((uv_handle_t *)&c->tcp, on_attempt_closed);
}

static void on_connected(uv_connect_t *req, int status) {
    clive_client *c = req->data;
    if (c->state != CONNECTING) /* closed meanwhile; finish() closes the handle */
        return;
    if (status != 0) {
        retry(c, status);
        return;
    }
    c->state = HANDSHAKE;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->tls_on) { /* the request waits for the TLS handshake (on_read_tls) */
        char why[200] = "";
        c->tls = lv_tls_client_new(c->host, c->tls_ca_file, c->tls_insecure, &tls_io, why, sizeof why);
        if (c->tls == NULL) {
            decide_str(c, CLIVE_CLIENT_HANDSHAKE_FAILED, LV_CLOSE_ABNORMAL, why);
            finish(c);
            return;
        }
        on_read_tls(c, NULL, 0); /* the ClientHello */
        return;
    }
    write_owned(c, (uint8_t *)c->request, c->request_len, 0);
    c->request = NULL; /* the write owns it now */
}

static void try_next_address(clive_client *c, const char *last_error) {
    while (c->next_addr) {
        struct addrinfo *a = c->next_addr;
        c->next_addr = a->ai_next;
        if (uv_tcp_init(&loop, &c->tcp) != 0)
            break;
        c->tcp.data = c;
        c->tcp_open = 1;
        c->connect.data = c;
        c->state = CONNECTING;
        int rc = uv_tcp_connect(&c->connect, &c->tcp, a->ai_addr, on_connected);
        if (rc == 0)
            return;
        retry(c, rc);
        return;
    }
    char why[256];
    snprintf(why, sizeof why, "%s", last_error);
    decide_str(c, CLIVE_CLIENT_CONNECT_FAILED, LV_CLOSE_ABNORMAL, why);
    finish(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    clive_client *c = req->data;
    if (c->state != RESOLVING) { /* closed meanwhile */
        if (res)
            uv_freeaddrinfo(res);
        finish(c);
        clive_client_release(c); /* the resolver's reference */
        return;
    }
    clive_client_release(c);
    if (status != 0) {
        decide_str(c, CLIVE_CLIENT_CONNECT_FAILED, LV_CLOSE_ABNORMAL, uv_strerror(status));
        finish(c);
        return;
    }
    c->addrs = c->next_addr = res;
    try_next_address(c, "no address");
}

static void start(clive_client *c) {
    uv_timer_init(&loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_handshake_timeout, c->handshake_ms, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    c->state = RESOLVING;
    clive_client_retain(c); /* for on_resolved, which always runs */
    int rc = uv_getaddrinfo(&loop, &c->gai, on_resolved, c->host, c->port, &hints);
    if (rc != 0) {
        clive_client_release(c);
        decide_str(c, CLIVE_CLIENT_CONNECT_FAILED, LV_CLOSE_ABNORMAL, uv_strerror(rc));
        finish(c);
    }
}

static void close_now(clive_client *c, cmd *k) {
    switch (c->state) {
    case RETRYING: /* on_attempt_closed finishes */
        decide(c, CLIVE_CLIENT_CLOSED_BY_CLIENT, k->code, k->reason, k->reason_len, 0);
        c->state = CLOSING;
        break;
    case RESOLVING:
        /* uv_cancel may fail once the lookup runs; on_resolved then sees the state */
        decide(c, CLIVE_CLIENT_CLOSED_BY_CLIENT, k->code, k->reason, k->reason_len, 0);
        c->state = CLOSING;
        uv_cancel((uv_req_t *)&c->gai);
        break;
    case CONNECTING:
    case HANDSHAKE:
        decide(c, CLIVE_CLIENT_CLOSED_BY_CLIENT, k->code, k->reason, k->reason_len, 0);
        finish(c);
        break;
    case OPEN:
        decide(c, CLIVE_CLIENT_CLOSED_BY_CLIENT, k->code, k->reason, k->reason_len, 0);
        send_close(c, k->code, k->reason, k->reason_len);
        start_closing(c);
        break;
    default:
        break;
    }
}

static void run_commands(uv_async_t *h) {
    (void)h;
    pthread_mutex_lock(&cmd_mu);
    cmd *list = cmd_head;
    cmd_head = cmd_tail = NULL;
    pthread_mutex_unlock(&cmd_mu);
    while (list) {
        cmd *k = list;
        list = k->next;
        clive_client *c = k->client;
        switch (k->kind) {
        case CMD_START:
            start(c);
            break;
        case CMD_WRITE:
            if (c->state == OPEN) {
                write_owned(c, k->data, k->len, 1);
                k->data = NULL;
            } else {
                atomic_fetch_sub(&c->queued, k->len);
            }
            break;
        case CMD_CLOSE:
            close_now(c, k);
            break;
        }
        free(k->data);
        clive_client_release(c);
        free(k);
    }
}

/* ---- the public functions ---- */

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

/* Header lines must each end in CRLF and hold no other CR or LF, nor NUL. */
static int headers_ok(const char *h, size_t n) {
    if (n == 0)
        return 1;
    if (n < 2 || h[n - 2] != '\r' || h[n - 1] != '\n')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == 0)
            return 0;
        if (h[i] == '\r' && (i + 1 >= n || h[i + 1] != '\n'))
            return 0;
        if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r'))
            return 0;
    }
    return 1;
}

static int build_request(clive_client *c, const clive_client_options *o) {
    uint8_t raw[16];
    random_bytes(raw, sizeof raw);
    char key[25];
    lv_base64_encode(raw, sizeof raw, key);
    lv_websocket_accept(key, 24, c->accept);
    const char *target = o->target ? o->target : "/";
    int v6 = strchr(o->host, ':') != NULL;
    size_t cap = strlen(target) + strlen(o->host) + o->headers_len + 256;
    for (size_t i = 0; i < o->subprotocol_count; i++)
        cap += strlen(o->subprotocols[i]) + 2;
    char *r = malloc(cap);
    if (r == NULL)
        return CLIVE_ENOMEM;
    int k = snprintf(r, cap,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n",
                     target, v6 ? "[" : "", o->host, v6 ? "]" : "", (unsigned)o->port, key);
    size_t len = (size_t)k;
    if (o->subprotocol_count) {
        len += (size_t)snprintf(r + len, cap - len, "Sec-WebSocket-Protocol: ");
        for (size_t i = 0; i < o->subprotocol_count; i++)
            len += (size_t)snprintf(r + len, cap - len, "%s%s", i ? ", " : "", o->subprotocols[i]);
        len += (size_t)snprintf(r + len, cap - len, "\r\n");
    }
    if (o->headers_len) {
        memcpy(r + len, o->headers, o->headers_len);
        len += o->headers_len;
    }
    memcpy(r + len, "\r\n", 2);
    len += 2;
    c->request = r;
    c->request_len = len;
    return 0;
}

static int token_ok(const char *s) {
    if (s == NULL || *s == 0)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s))
            return 0;
    return 1;
}

int clive_client_connect(const clive_client_options *o, clive_client **out) {
    *out = NULL;
    if (o == NULL || o->host == NULL || o->host[0] == 0 || strpbrk(o->host, "\r\n /") ||
        (o->target && (o->target[0] != '/' || strpbrk(o->target, "\r\n "))) ||
        (o->headers_len && o->headers == NULL) || !headers_ok(o->headers, o->headers_len))
        return CLIVE_EINVAL;
    for (size_t i = 0; i < o->subprotocol_count; i++)
        if (!token_ok(o->subprotocols[i]))
            return CLIVE_EINVAL;
    pthread_once(&loop_once, start_loop);
    if (loop_failed)
        return CLIVE_ESYS;
    clive_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return CLIVE_ENOMEM;
    atomic_init(&c->refs, 1);
    atomic_init(&c->public_state, P_CONNECTING);
    atomic_init(&c->queued, 0);
    c->cb = o->callbacks;
    c->max_head = o->max_response_head ? o->max_response_head : DEFAULT_MAX_HEAD;
    c->max_queued = o->max_queued ? o->max_queued : DEFAULT_MAX_QUEUED;
    c->handshake_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
    c->ping_ms = o->ping_interval_ms ? o->ping_interval_ms : DEFAULT_PING_MS;
    c->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : DEFAULT_IDLE_MS;
    c->close_ms = o->close_timeout_ms ? o->close_timeout_ms : DEFAULT_CLOSE_MS;
    c->tls_on = o->tls != 0;
    c->tls_insecure = o->tls_insecure != 0;
    c->tls_ca_file = dup_str(o->tls_ca_file);
    lv_frame_parser_init(&c->parser, o->max_message ? o->max_message : DEFAULT_MAX_MESSAGE,
                         o->max_fragments ? o->max_fragments : DEFAULT_MAX_FRAGMENTS);
    lv_frame_parser_client(&c->parser);
    snprintf(c->port, sizeof c->port, "%u", (unsigned)o->port);
    c->host = dup_str(o->host);
    c->head = malloc(c->max_head);
    c->protocols = o->subprotocol_count ? calloc(o->subprotocol_count, sizeof(char *)) : NULL;
    int bad = c->host == NULL || c->head == NULL || (o->subprotocol_count && !c->protocols) ||
              (o->tls_ca_file && c->tls_ca_file == NULL);
    for (size_t i = 0; !bad && i < o->subprotocol_count; i++) {
        c->protocols[i] = dup_str(o->subprotocols[i]);
        c->protocol_count = i + 1;
        bad = c->protocols[i] == NULL;
    }
    if (bad || build_request(c, o) != 0) {
        clive_client_release(c);
        return CLIVE_ENOMEM;
    }
    cmd *k = calloc(1, sizeof *k);
    if (k == NULL) {
        clive_client_release(c);
        return CLIVE_ENOMEM;
    }
    k->kind = CMD_START;
    k->client = c;
    atomic_fetch_add(&c->refs, 2); /* the loop's, and the command's */
    *out = c;
    post(k);
    return CLIVE_OK;
}

int clive_client_send(clive_client *c, int binary, const void *data, size_t len) {
    int st = atomic_load(&c->public_state);
    if (st == P_CONNECTING)
        return CLIVE_ESTATE;
    if (st == P_CLOSED)
        return CLIVE_ECLOSED;
    size_t before = atomic_fetch_add(&c->queued, len);
    if (before > 0 && before + len > c->max_queued) {
        atomic_fetch_sub(&c->queued, len);
        return CLIVE_EOVERFLOW;
    }
    cmd *k = calloc(1, sizeof *k);
    size_t n = 0;
    uint8_t *f = k ? build_frame(binary ? LV_OP_BINARY : LV_OP_TEXT, data, len, &n) : NULL;
    if (f == NULL) {
        free(k);
        atomic_fetch_sub(&c->queued, len);
        return CLIVE_ENOMEM;
    }
    /* queued counts the frame's bytes from here on, as on_written subtracts them */
    atomic_fetch_add(&c->queued, n - len);
    if (on_loop) {
        free(k);
        if (c->state != OPEN) {
            free(f);
            atomic_fetch_sub(&c->queued, n);
            return CLIVE_ECLOSED;
        }
        write_owned(c, f, n, 1);
        return CLIVE_OK;
    }
    k->kind = CMD_WRITE;
    k->client = c;
    k->data = f;
    k->len = n;
    clive_client_retain(c);
    post(k);
    return CLIVE_OK;
}

int clive_client_close(clive_client *c, uint16_t code, const char *reason, size_t reason_len) {
    if (!lv_close_code_valid(code) || reason_len > 123 || (reason_len && reason == NULL) ||
        !lv_utf8_valid((const uint8_t *)reason, reason_len))
        return CLIVE_EINVAL;
    if (atomic_exchange(&c->public_state, P_CLOSED) == P_CLOSED)
        return CLIVE_ECLOSED;
    cmd *k = calloc(1, sizeof *k);
    if (k == NULL)
        return CLIVE_ENOMEM;
    k->kind = CMD_CLOSE;
    k->client = c;
    k->code = code;
    if (reason_len)
        memcpy(k->reason, reason, reason_len);
    k->reason_len = reason_len;
    if (on_loop) {
        close_now(c, k);
        free(k);
        return CLIVE_OK;
    }
    clive_client_retain(c);
    post(k);
    return CLIVE_OK;
}
