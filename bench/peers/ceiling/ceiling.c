/* live-ceiling: the least a fanout server can do on this machine, to calibrate the race.
 *
 * One thread, one epoll loop, no library. It does nothing but what a fanout must: each
 * publish becomes one frame, built once and appended to every subscriber's output buffer,
 * and each connection with output gets one write per loop turn. No limits, no validation
 * beyond what the load generator needs, no close handshake, no timeouts: not a server
 * anyone should run, only the floor under what Live's core costs.
 *
 *   live-ceiling [--port N]      prints "PORT <n>" once listening
 *
 * It speaks as much of the live-server conventions as live-load's fanout and echo
 * scenarios use: join (every join subscribes to the one topic there is), publish (the
 * frame {"type":"message","topic":T,"body":B} to every subscriber, then a reply), echo.
 * Replies are {"type":"reply","ref":R}. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sha1.h" /* the core's Sec-WebSocket-Accept */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

typedef struct conn {
    int fd;
    int open;   /* upgraded */
    int queued; /* on the dirty list */
    buf in, out;
} conn;

static conn **subscribers;
static size_t nsubscribers, subscribers_cap;
static conn **dirty;
static size_t ndirty, dirty_cap;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void reserve(buf *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    if ((b->p = realloc(b->p, cap)) == NULL) die("realloc");
    b->cap = cap;
}

static void append(buf *b, const void *p, size_t n) {
    reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void mark_dirty(conn *c) {
    if (c->queued) return;
    if (ndirty == dirty_cap) {
        dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
        if ((dirty = realloc(dirty, dirty_cap * sizeof *dirty)) == NULL) die("realloc");
    }
    c->queued = 1;
    dirty[ndirty++] = c;
}

/* A server text frame (header + payload) into b. */
static void append_frame(buf *b, const char *payload, size_t n) {
    uint8_t h[4];
    size_t hl = 2;
    h[0] = 0x81;
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    }
    reserve(b, hl + n);
    memcpy(b->p + b->len, h, hl);
    memcpy(b->p + b->len + hl, payload, n);
    b->len += hl + n;
}

/* The raw value after "key": in a JSON object (a string without its quotes, or an object
 * or a number as it stands), found by a plain scan: enough for what live-load sends. */
static int field(const char *p, size_t n, const char *key, const char **v, size_t *vn) {
    char pat[32];
    int k = snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = memmem(p, n, pat, (size_t)k);
    if (at == NULL) return 0;
    const char *s = at + k, *end = p + n;
    if (s < end && *s == '"') {
        const char *q = memchr(s + 1, '"', (size_t)(end - s - 1));
        if (q == NULL) return 0;
        *v = s + 1;
        *vn = (size_t)(q - s - 1);
        return 1;
    }
    const char *e = s;
    if (e < end && *e == '{') { /* an object: to its matching brace (no braces in strings) */
        for (int depth = 0; e < end; e++) {
            if (*e == '{') depth++;
            else if (*e == '}' && --depth == 0) {
                e++;
                break;
            }
        }
    } else {
        while (e < end && *e != ',' && *e != '}') e++;
    }
    *v = s;
    *vn = (size_t)(e - s);
    return 1;
}

static void reply(conn *c, const char *ref, size_t refn) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"reply\",\"ref\":\"%.*s\"}", (int)refn, ref);
    append_frame(&c->out, msg, (size_t)n);
    mark_dirty(c);
}

static void on_text(conn *c, const char *p, size_t n) {
    const char *type, *ref = "", *topic = "", *body = "null";
    size_t typen, refn = 0, topicn = 0, bodyn = 4;
    if (!field(p, n, "type", &type, &typen)) return;
    field(p, n, "ref", &ref, &refn);
    if (typen == 4 && memcmp(type, "echo", 4) == 0) {
        append_frame(&c->out, p, n);
        mark_dirty(c);
    } else if (typen == 4 && memcmp(type, "join", 4) == 0) {
        if (nsubscribers == subscribers_cap) {
            subscribers_cap = subscribers_cap ? subscribers_cap * 2 : 1024;
            if ((subscribers = realloc(subscribers, subscribers_cap * sizeof *subscribers)) == NULL)
                die("realloc");
        }
        subscribers[nsubscribers++] = c;
        reply(c, ref, refn);
    } else if (typen == 7 && memcmp(type, "publish", 7) == 0) {
        field(p, n, "topic", &topic, &topicn);
        field(p, n, "body", &body, &bodyn);
        /* the frame, built once */
        static buf frame;
        frame.len = 0;
        char head[160];
        int hn = snprintf(head, sizeof head, "{\"type\":\"message\",\"topic\":\"%.*s\",\"body\":",
                          (int)topicn, topic);
        buf payload = {0};
        append(&payload, head, (size_t)hn);
        append(&payload, body, bodyn);
        append(&payload, "}", 1);
        append_frame(&frame, (const char *)payload.p, payload.len);
        free(payload.p);
        for (size_t i = 0; i < nsubscribers; i++) {
            append(&subscribers[i]->out, frame.p, frame.len);
            mark_dirty(subscribers[i]);
        }
        reply(c, ref, refn);
    }
}

static void upgrade(conn *c) {
    uint8_t *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (end == NULL) return;
    const char *key = memmem(c->in.p, (size_t)(end - c->in.p), "Sec-WebSocket-Key: ", 19);
    if (key == NULL) die("no Sec-WebSocket-Key");
    key += 19;
    const char *key_end = memchr(key, '\r', (size_t)((const char *)end + 2 - key));
    char accept[29];
    lv_websocket_accept(key, (size_t)(key_end - key), accept);
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: live.v1.json\r\n\r\n",
                     accept);
    append(&c->out, resp, (size_t)n);
    mark_dirty(c);
    size_t used = (size_t)(end + 4 - c->in.p);
    memmove(c->in.p, c->in.p + used, c->in.len - used);
    c->in.len -= used;
    c->open = 1;
}

/* Whole masked client frames from c->in; a close frame (or anything odd) drops the
 * connection. Returns 0 to drop it. */
static int frames(conn *c) {
    size_t off = 0;
    while (c->in.len - off >= 6) {
        uint8_t *f = c->in.p + off;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            return 0;
        }
        if (c->in.len - off < h + 4 + len) break;
        uint8_t *mask = f + h, *p = f + h + 4;
        for (uint64_t i = 0; i < len; i++) p[i] ^= mask[i & 3];
        int opcode = f[0] & 0x0f;
        if (opcode == 8) return 0;
        if (opcode == 1) on_text(c, (const char *)p, (size_t)len);
        off += h + 4 + (size_t)len;
    }
    memmove(c->in.p, c->in.p + off, c->in.len - off);
    c->in.len -= off;
    return 1;
}

static void drop(conn *c) {
    for (size_t i = 0; i < nsubscribers; i++)
        if (subscribers[i] == c) subscribers[i--] = subscribers[--nsubscribers];
    close(c->fd);
    c->fd = -1; /* freed never: a calibration run ends with the process */
}

static void readable(conn *c) {
    for (;;) {
        reserve(&c->in, 65536);
        ssize_t r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            drop(c);
            return;
        }
        c->in.len += (size_t)r;
        if (!c->open) upgrade(c);
        if (c->open && !frames(c)) {
            drop(c);
            return;
        }
        if ((size_t)r < 65536) return;
    }
}

/* One write per connection with output; what does not fit waits for the next turn
 * (level-triggered EPOLLOUT would be the full answer; the load generator reads). */
static void flush_dirty(void) {
    for (size_t i = 0; i < ndirty; i++) {
        conn *c = dirty[i];
        c->queued = 0;
        if (c->fd < 0 || c->out.len == 0) continue;
        ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN) drop(c);
            w = 0;
        }
        memmove(c->out.p, c->out.p + w, c->out.len - (size_t)w);
        c->out.len -= (size_t)w;
    }
    size_t keep = 0; /* connections left with output stay dirty */
    for (size_t i = 0; i < ndirty; i++)
        if (dirty[i]->fd >= 0 && dirty[i]->out.len > 0) {
            dirty[i]->queued = 1;
            dirty[keep++] = dirty[i];
        }
    ndirty = keep;
}

int main(int argc, char **argv) {
    int port = 8080;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0) die("listen");
    socklen_t al = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &al);
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, ndirty ? 0 : -1);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (c->fd >= 0) readable(c);
        }
        flush_dirty();
    }
}
