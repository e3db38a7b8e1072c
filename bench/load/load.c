/* live-load: a WebSocket load generator for servers that speak the live-server
 * conventions (join, publish, echo, replies by ref; JSON codec). One epoll loop, one
 * thread, nonblocking sockets, no allocation per message.
 *
 * Scenarios:
 *   connect  open N connections (bounded concurrency): handshakes/s, and with --pid the
 *            server's RSS per idle connection
 *   echo     C connections in closed loop (window 1 each): round trips/s and latency
 *   fanout   S subscribers on one topic, one publisher; at max rate with a window W of
 *            publishes in flight (a publish leaves the window once its reply is back and
 *            every subscriber has it), or at a fixed --rate; deliveries/s, lost, latency
 *   topics   N connections each subscribed to its own topic, each publishing to it in
 *            closed loop: deliveries/s and latency
 *   presence N connections join one topic at once, with presence events on: how many
 *            presence events they receive in all (one event per join per member would be
 *            N*N/2; batching makes it a few per member)
 *
 * Latency is end to end, from a timestamp the publisher puts in the body. Output: a
 * readable summary and one machine-readable line starting with "RESULT".
 * Connections come from source addresses 127.0.0.1-127.0.0.250 in turn, so that large
 * counts do not run out of ephemeral ports, and --workers W spreads them over W processes
 * (one process may hold 20,000 descriptors here). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "histogram.h"

typedef struct conn {
    int fd;
    int index;
    int state; /* 0 connecting, 1 handshake sent, 2 open, 3 dead */
    int role;  /* 0 subscriber/echoer, 1 publisher */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_cap;
    int in_flight; /* requests waiting for their reply */
    int joined;
    int queued; /* on the pending-output list */
    int want_out; /* EPOLLOUT requested */
    int paused;   /* --slow: a subscriber that stopped reading */
    int close_code;
    uint64_t last_s; /* the last publish sequence number it received */
    uint64_t received;
} conn;

#define MAX_BODY 16384 /* --body's limit: bodies are built on the stack */

static struct {
    const char *scenario, *host, *path, *label;
    int port, connections, subscribers, window, body, pid, concurrency, slow, workers;
    double duration, rate, warmup;
} opt = {.host = "127.0.0.1", .path = "/ws", .label = "server", .port = 8080,
         .connections = 100, .subscribers = 1000, .window = 32, .body = 64, .concurrency = 256,
         .duration = 10, .rate = 0, .warmup = 1, .workers = 1};

/* --sub-port: subscribers connect to these ports in turn (nodes sharing topics through a
 * broker), the publisher to --port */
#define MAX_SUB_PORTS 16
static int sub_ports[MAX_SUB_PORTS], nsub_ports;
static int publisher_index = -1; /* conns[] index of the fanout publisher, or -1 */

static int ep;
static conn *conns;
static int nconns;
static conn **pending; /* connections with output to write after this epoll batch */
static int npending;
static histogram lat;
static uint64_t deliveries, replies, published, round_trips, presence_events;
static uint64_t recvs; /* recv calls that returned data while measuring */
static uint64_t *seen;      /* per publish sequence: subscribers that got it (fanout) */
static uint8_t *replied;    /* per publish sequence: reply back (fanout) */
static uint64_t seen_cap;
static uint64_t completed;  /* fanout publishes fully delivered */
static uint64_t next_seq;
static int measuring;
static uint64_t t_measure_start;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void ensure(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    *buf = realloc(*buf, c);
    if (*buf == NULL) die("realloc");
    *cap = c;
}

static void watch(conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) != 0) die("epoll_ctl");
}

static void flush_out(conn *c) {
    while (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            c->state = 3;
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    int want = c->out_len > 0;
    if (want != c->want_out) { /* an epoll_ctl only when the interest changes */
        c->want_out = want;
        watch(c, EPOLLIN | (want ? EPOLLOUT : 0), EPOLL_CTL_MOD);
    }
}

/* Appends a masked text frame (clients must mask; a zero key keeps it cheap). */
static void send_text(conn *c, const char *text, size_t len) {
    ensure(&c->out, &c->out_cap, c->out_len + len + 14);
    uint8_t *p = c->out + c->out_len;
    size_t h = 0;
    p[h++] = 0x81;
    if (len < 126) {
        p[h++] = 0x80 | (uint8_t)len;
    } else if (len < 65536) {
        p[h++] = 0x80 | 126;
        p[h++] = (uint8_t)(len >> 8);
        p[h++] = (uint8_t)len;
    } else {
        p[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) p[h++] = (uint8_t)(len >> (8 * i));
    }
    memset(p + h, 0, 4); /* mask key 0: XOR leaves the payload as is */
    h += 4;
    memcpy(p + h, text, len);
    c->out_len += h + len;
    if (!c->queued) {
        c->queued = 1;
        pending[npending++] = c;
    }
}

/* A body of about opt.body bytes: {"s":SEQ,"t":NS,"p":"xxx..."} */
static int make_body(char *out, size_t cap, uint64_t seq) {
    int n = snprintf(out, cap, "{\"s\":%llu,\"t\":%llu,\"p\":\"", (unsigned long long)seq,
                     (unsigned long long)now_ns());
    while (n < opt.body - 2 && (size_t)n < cap - 3) out[n++] = 'x';
    out[n++] = '"';
    out[n++] = '}';
    return n;
}

static void send_publish(conn *c, const char *topic) {
    char body[MAX_BODY + 64], msg[MAX_BODY + 256];
    uint64_t seq = next_seq++;
    int b = make_body(body, sizeof body, seq);
    int n = snprintf(msg, sizeof msg, "{\"type\":\"publish\",\"topic\":\"%s\",\"ref\":\"%llu\",\"body\":%.*s}",
                     topic, (unsigned long long)seq, b, body);
    send_text(c, msg, (size_t)n);
    c->in_flight++;
    published++;
}

static void send_echo(conn *c) {
    char body[MAX_BODY + 64], msg[MAX_BODY + 256];
    int b = make_body(body, sizeof body, next_seq++);
    int n = snprintf(msg, sizeof msg, "{\"type\":\"echo\",\"ref\":\"e\",\"body\":%.*s}", b, body);
    send_text(c, msg, (size_t)n);
    c->in_flight++;
}

static void send_join(conn *c, const char *topic) {
    char msg[256];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"join\",\"topic\":\"%s\",\"ref\":\"j\"}", topic);
    send_text(c, msg, (size_t)n);
}

/* The fields the load generator reads from a server message, found in one pass. */
typedef struct fields {
    char type[16];
    uint64_t ref, s, t;
} fields;

/* Reads the value after a key's colon at p[*j]: the number in it (bare or quoted, 0 if
 * none), leaving *j on the value's last byte (a string's closing quote). */
static uint64_t value_at(const uint8_t *p, size_t n, size_t *j) {
    while (*j < n && (p[*j] == ':' || p[*j] == ' ')) (*j)++;
    int quoted = *j < n && p[*j] == '"';
    if (quoted) (*j)++;
    uint64_t v = 0;
    while (*j < n && p[*j] >= '0' && p[*j] <= '9') v = v * 10 + (uint64_t)(p[(*j)++] - '0');
    if (quoted)
        while (*j < n && p[*j] != '"') *j += p[*j] == '\\' ? 2 : 1;
    else if (*j > 0)
        (*j)--;
    return v;
}

/* One pass over the JSON text: every quoted string is either a key we want (type, ref, s,
 * t: read its value) or something to skip whole. Per delivery, so it must stay cheap; it
 * is not a validating parser (the server under test is not what is being checked). */
static void scan_fields(const uint8_t *p, size_t n, fields *f) {
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '"') continue;
        size_t k = i + 1;
        while (k < n && p[k] != '"') k += p[k] == '\\' ? 2 : 1;
        size_t klen = k - i - 1;
        const uint8_t *key = p + i + 1;
        size_t j = k + 1;
        i = k;
        if (j >= n || p[j] != ':') continue; /* a string value, not a key */
        if (klen == 4 && memcmp(key, "type", 4) == 0) {
            while (j < n && p[j] != '"') j++;
            size_t m = 0;
            for (j++; j < n && p[j] != '"' && m < 15; j++) f->type[m++] = (char)p[j];
            f->type[m] = 0;
            i = j;
        } else if (klen == 3 && memcmp(key, "ref", 3) == 0) {
            f->ref = value_at(p, n, &j);
            i = j;
        } else if (klen == 1 && key[0] == 's') {
            f->s = value_at(p, n, &j);
            i = j;
        } else if (klen == 1 && key[0] == 't') {
            f->t = value_at(p, n, &j);
            i = j;
        }
    }
}

/* The time the current read arrived: every frame in one read arrived together, so one clock
 * read per read, not per frame. */
static uint64_t read_time;

static void record_latency(uint64_t t) {
    if (measuring && t && read_time > t) histogram_record(&lat, read_time - t);
}

/* Subscribers that read: --slow ones stop reading and do not hold the window. */
static uint64_t readers(void) { return (uint64_t)(opt.subscribers - opt.slow); }

static void fanout_progress(uint64_t seq) {
    if (seq < seen_cap && replied[seq] && seen[seq] == readers()) completed++;
}

static int is_fanout(void) { return strcmp(opt.scenario, "fanout") == 0; }
static int is_topics(void) { return strcmp(opt.scenario, "topics") == 0; }

/* The common case, measured in millions a second, read without a scan: a delivery laid
 * out as live-server and Node write it, {"type":"message",...,"body":{"s":S,"t":T,...}},
 * with the body the first nested object. Returns 0 to fall back to the full scan. */
static int fast_message(const uint8_t *p, size_t n, fields *f) {
    static const char head[] = "{\"type\":\"message\"";
    if (n < sizeof head + 16 || memcmp(p, head, sizeof head - 1) != 0) return 0;
    const uint8_t *b = memchr(p + 1, '{', n - 1);
    if (b == NULL || (size_t)(p + n - b) < 12 || memcmp(b, "{\"s\":", 5) != 0) return 0;
    size_t j = (size_t)(b - p) + 5;
    f->type[0] = 0;
    memcpy(f->type, "message", 8);
    f->ref = 0;
    f->s = value_at(p, n, &j);
    j++;
    if (j + 5 > n || memcmp(p + j, ",\"t\":", 5) != 0) return 0;
    j += 5;
    f->t = value_at(p, n, &j);
    return 1;
}

static void on_message(conn *c, const uint8_t *p, size_t n) {
    fields f;
    if (!fast_message(p, n, &f)) scan_fields(p, n, &f);
    const char *type = f.type;
    c->received++;
    if (strcmp(type, "presence") == 0) {
        presence_events++;
    } else if (strcmp(type, "message") == 0) {
        if (measuring) deliveries++;
        record_latency(f.t);
        if (is_fanout()) {
            uint64_t s = f.s;
            c->last_s = s;
            if (c->paused) return; /* a slow subscriber read at the end: not a delivery */
            if (s < seen_cap) {
                seen[s]++;
                fanout_progress(s);
            }
        }
    } else if (strcmp(type, "reply") == 0) {
        if (!c->joined) {
            c->joined = 1;
            return;
        }
        c->in_flight--;
        if (measuring) replies++;
        if (is_fanout()) {
            uint64_t s = f.ref;
            if (s < seen_cap) {
                replied[s] = 1;
                fanout_progress(s);
            }
        }
    } else if (strcmp(type, "echo") == 0) {
        c->in_flight--;
        if (measuring) round_trips++;
        record_latency(f.t);
    }
}

/* Parses complete server frames (unmasked) from c->in. */
static void parse_frames(conn *c) {
    size_t off = 0;
    while (c->in_len - off >= 2) {
        uint8_t *f = c->in + off;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (c->in_len - off < 4) break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (c->in_len - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
            h = 10;
        }
        if (c->in_len - off < h + len) break;
        int opcode = f[0] & 0x0f;
        if (opcode == 1 || opcode == 2) on_message(c, f + h, (size_t)len);
        if (opcode == 8) {
            c->state = 3;
            c->close_code = len >= 2 ? (f[h] << 8 | f[h + 1]) : 1005;
        }
        off += h + (size_t)len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

static void on_readable(conn *c) {
    for (;;) {
        ensure(&c->in, &c->in_cap, c->in_len + 65536);
        ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            c->state = 3;
            return;
        }
        if (r == 0) {
            c->state = 3;
            return;
        }
        c->in_len += (size_t)r;
        if (measuring) recvs++;
        read_time = now_ns();
        if (c->state == 1) {
            uint8_t *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (end == NULL) continue;
            if (memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
                fprintf(stderr, "handshake refused: %.40s\n", c->in);
                c->state = 3;
                return;
            }
            size_t used = (size_t)(end + 4 - c->in);
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
            c->state = 2;
        }
        if (c->state == 2) parse_frames(c);
        if ((size_t)r < 65536) return;
    }
}

static void start_connect(conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->index % 250));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) die("bind source address");
    int port = opt.port;
    if (nsub_ports && c - conns != publisher_index) port = sub_ports[c->index % nsub_ports];
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, opt.host, &dst.sin_addr);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) die("connect");
    c->fd = fd;
    c->state = 0;
    c->want_out = 1;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void send_handshake(conn *c) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: live.v1.json\r\n\r\n",
                     opt.path, opt.host, opt.port);
    ensure(&c->out, &c->out_cap, c->out_len + (size_t)n);
    memcpy(c->out + c->out_len, req, (size_t)n);
    c->out_len += (size_t)n;
    c->state = 1;
    flush_out(c);
}

/* Runs the event loop until `until` (ns) or until done() says so. */
static void run_until(uint64_t until, int (*done)(void), void (*tick)(void)) {
    struct epoll_event evs[512];
    while (now_ns() < until && !(done && done())) {
        int n = epoll_wait(ep, evs, 512, 5);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->state == 3) continue;
            if (c->state == 0 && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    c->state = 3;
                    continue;
                }
                send_handshake(c);
                continue;
            }
            if (evs[i].events & EPOLLIN) on_readable(c);
            if (c->state != 3 && (evs[i].events & EPOLLOUT)) flush_out(c);
        }
        if (tick) tick();
        /* write only what this batch queued: a pass over every connection per batch would
         * cost more than the messages themselves at 10,000 connections */
        for (int i = 0; i < npending; i++) {
            conn *c = pending[i];
            c->queued = 0;
            if (c->out_len && c->state == 2) flush_out(c);
        }
        npending = 0;
    }
}

static int open_count(void) {
    int k = 0;
    for (int i = 0; i < nconns; i++) k += conns[i].state == 2;
    return k;
}

static int dead_count(void) {
    int k = 0;
    for (int i = 0; i < nconns; i++) k += conns[i].state == 3;
    return k;
}

/* Opens every connection, at most opt.concurrency handshakes at once. */
static double connect_all(void) {
    uint64_t t0 = now_ns();
    int started = 0;
    while (open_count() + dead_count() < nconns) {
        int pending = started - open_count() - dead_count();
        while (started < nconns && pending < opt.concurrency) {
            start_connect(&conns[started++]);
            pending++;
        }
        run_until(now_ns() + 5000000ull, NULL, NULL);
        if (now_ns() - t0 > 120000000000ull) break;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    if (dead_count()) fprintf(stderr, "warning: %d connections failed\n", dead_count());
    return secs;
}

static int all_joined(void) {
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == 2 && conns[i].role == 0 && !conns[i].joined) return 0;
    return 1;
}

static long rss_kib(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
    fclose(f);
    return v;
}

static conn *publisher;
static uint64_t rate_next_ns, rate_step_ns;

static void fanout_tick(void) {
    if (publisher == NULL || publisher->state != 2) return;
    if (opt.rate > 0) {
        uint64_t now = now_ns();
        while (now >= rate_next_ns && next_seq < seen_cap) {
            send_publish(publisher, "bench");
            rate_next_ns += rate_step_ns;
        }
        return;
    }
    /* window: publishes not yet fully delivered */
    while ((int64_t)(next_seq - completed) < opt.window && next_seq < seen_cap)
        send_publish(publisher, "bench");
}

static void echo_tick(void) {
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == 2 && conns[i].in_flight == 0) send_echo(&conns[i]);
}

static void topics_tick(void) {
    char topic[32];
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->state == 2 && c->joined && c->in_flight < opt.window) {
            snprintf(topic, sizeof topic, "t%d", c->index);
            while (c->in_flight < opt.window) send_publish(c, topic);
        }
    }
}

/* CPU seconds this process has used (user + system): with the wall time of a run, whether
 * the generator itself was the limit. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds a process (the server, given --pid) has used, or -1. */
static double process_cpu_seconds(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long utime, stime;
    /* after ") ": state, then 10 fields, then utime and stime (fields 14 and 15) */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double measured_cpu;        /* the generator's CPU seconds over the measured interval */
static double measured_server_cpu; /* the server's (with --pid), or -1 */

/* --- worker processes ---------------------------------------------------------------
 * The hard limit here is 20,000 descriptors per process, so --workers W forks W processes,
 * each opening its share of the connections (with their global indexes, so source
 * addresses and topic names stay distinct). The parent opens none: it lets them all start
 * at one moment, measures the server meanwhile, and adds their reports up into one RESULT
 * line, merging the latency histograms. A window of publishes in flight needs every
 * subscriber's progress in one process, so workers serve connect, echo, topics, and fanout
 * at a fixed --rate (the publisher lives in worker 0; every worker knows which sequence
 * numbers fall in the measured interval from the publish schedule, which starts at the
 * common moment). */

typedef struct report {
    uint64_t deliveries, replies, round_trips, recvs, expected, got, published;
    int open, dead, subscribers, readers; /* readers: subscribers that read (not --slow) */
    double secs, cpu;
    histogram lat;
} report;

static int worker = -1; /* this process's index among the workers; -1: not a worker */
static int ready_fd = -1, go_fd = -1, report_fd = -1;
static uint64_t go_time; /* when every worker starts (CLOCK_MONOTONIC is system-wide) */

static void write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("worker pipe write");
        c += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("worker pipe read (a worker died?)");
        c += r;
        n -= (size_t)r;
    }
}

/* A worker: says it is connected (and joined), then waits for the common start. */
static void worker_barrier(void) {
    if (worker < 0) return;
    char b = 1;
    write_all(ready_fd, &b, 1);
    read_all(go_fd, &go_time, sizeof go_time);
}

static void sleep_until(uint64_t t) {
    uint64_t now = now_ns();
    if (t <= now) return;
    struct timespec ts = {.tv_sec = (time_t)((t - now) / 1000000000ull), .tv_nsec = (long)((t - now) % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void print_connect(int open, int failed, double secs, long rss0, long rss1);
static void print_report(const report *r, const char *more);

/* In the parent: forks the workers, runs the scenario through them and prints the result;
 * returns the exit status. In a worker: returns -1 with `worker` set, and main goes on with
 * this worker's share. */
static int start_workers(void) {
    int connect = strcmp(opt.scenario, "connect") == 0;
    int ready[2], go[2];
    int(*reports)[2] = calloc((size_t)opt.workers, sizeof *reports);
    pid_t *pids = calloc((size_t)opt.workers, sizeof *pids);
    if (pipe(ready) != 0 || pipe(go) != 0) die("pipe");
    long rss0 = opt.pid ? rss_kib(opt.pid) : -1;
    for (int i = 0; i < opt.workers; i++) {
        if (pipe(reports[i]) != 0) die("pipe");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            worker = i;
            ready_fd = ready[1];
            go_fd = go[0];
            report_fd = reports[i][1];
            close(ready[0]);
            close(go[1]);
            for (int j = 0; j <= i; j++) close(reports[j][0]);
            return -1;
        }
        pids[i] = pid;
        close(reports[i][1]);
    }
    close(ready[1]);
    close(go[0]);
    char *readies = malloc((size_t)opt.workers);
    read_all(ready[0], readies, (size_t)opt.workers);
    free(readies);
    long rss1 = -1;
    uint64_t t0 = now_ns() + 100000000ull; /* 100 ms for every worker to get the word */
    if (connect) {
        sleep_until(now_ns() + 1000000000ull); /* let the server settle */
        rss1 = opt.pid ? rss_kib(opt.pid) : -1;
        t0 = now_ns();
    }
    for (int i = 0; i < opt.workers; i++) write_all(go[1], &t0, sizeof t0);
    double server_cpu0 = -1, server_cpu1 = -1;
    if (!connect && opt.pid) {
        sleep_until(t0 + (uint64_t)(opt.warmup * 1e9));
        server_cpu0 = process_cpu_seconds(opt.pid);
        sleep_until(t0 + (uint64_t)((opt.warmup + opt.duration) * 1e9));
        server_cpu1 = process_cpu_seconds(opt.pid);
    }
    report sum = {0}, r;
    histogram_init(&lat);
    for (int i = 0; i < opt.workers; i++) {
        read_all(reports[i][0], &r, sizeof r);
        sum.deliveries += r.deliveries;
        sum.replies += r.replies;
        sum.round_trips += r.round_trips;
        sum.recvs += r.recvs;
        sum.expected += r.expected;
        sum.got += r.got;
        sum.open += r.open;
        sum.dead += r.dead;
        sum.subscribers += r.subscribers;
        sum.readers += r.readers;
        sum.cpu += r.cpu;
        if (r.secs > sum.secs) sum.secs = r.secs;
        if (i == 0) sum.published = r.published;
        for (int p = 0; p < HIST_POW; p++)
            for (int k = 0; k < HIST_SUB; k++) lat.buckets[p][k] += r.lat.buckets[p][k];
        lat.count += r.lat.count;
        if (r.lat.max > lat.max) lat.max = r.lat.max;
    }
    int failed = 0;
    for (int i = 0; i < opt.workers; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    if (failed) fprintf(stderr, "warning: a worker failed\n");
    if (connect) {
        print_connect(sum.open, sum.dead, sum.secs, rss0, rss1);
        return failed ? 1 : 0;
    }
    deliveries = sum.deliveries;
    replies = sum.replies;
    round_trips = sum.round_trips;
    recvs = sum.recvs;
    measured_cpu = sum.cpu;
    measured_server_cpu = server_cpu0 >= 0 && server_cpu1 >= 0 ? server_cpu1 - server_cpu0 : -1;
    print_report(&sum, "");
    return failed ? 1 : 0;
}

static void print_result(const char *scenario, double secs, const char *extra) {
    double p50 = histogram_percentile(&lat, 50) / 1e6, p99 = histogram_percentile(&lat, 99) / 1e6,
           p999 = histogram_percentile(&lat, 99.9) / 1e6, max = (double)lat.max / 1e6;
    printf("RESULT scenario=%s server=%s seconds=%.2f deliveries_per_s=%.0f round_trips_per_s=%.0f "
           "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f samples=%llu client_cpu_pct=%.0f "
           "server_cpu_pct=%.0f messages_per_recv=%.1f %s\n",
           scenario, opt.label, secs, deliveries / secs, round_trips / secs, p50, p99, p999, max,
           (unsigned long long)lat.count, 100.0 * measured_cpu / secs,
           measured_server_cpu < 0 ? -1.0 : 100.0 * measured_server_cpu / secs,
           recvs ? (double)(deliveries + replies + round_trips) / (double)recvs : 0.0, extra);
}

static void print_connect(int open, int failed, double secs, long rss0, long rss1) {
    char w[32] = "";
    if (opt.workers > 1) snprintf(w, sizeof w, " workers=%d", opt.workers);
    printf("RESULT scenario=connect server=%s connections=%d failed=%d seconds=%.2f handshakes_per_s=%.0f "
           "rss_before_kib=%ld rss_after_kib=%ld rss_per_connection_kib=%.3f%s\n",
           opt.label, open, failed, secs, open / secs, rss0, rss1,
           opt.pid && open ? (double)(rss1 - rss0) / open : 0.0, w);
}

/* The RESULT line of a measured scenario, from one process's report or the workers' sum
 * (the counters print_result reads are this process's, or the sum the parent put there).
 * `more` is appended to a fanout's fields (the --slow figures). */
static void print_report(const report *r, const char *more) {
    char extra[512], w[32] = "";
    if (opt.workers > 1) snprintf(w, sizeof w, " workers=%d", opt.workers);
    if (is_fanout()) {
        /* How often each subscriber's socket had something to read: with one write per
         * subscriber per flush pass, about the length of one pass over the subscribers. */
        double write_interval_ms = r->recvs ? 1000.0 * r->secs * r->readers / (double)r->recvs : 0;
        snprintf(extra, sizeof extra, "subscribers=%d window=%d rate=%.0f write_interval_ms=%.1f published=%llu "
                 "lost=%llu lost_pct=%.2f dead=%d%s%s",
                 r->subscribers, opt.rate > 0 ? 0 : opt.window, opt.rate, write_interval_ms,
                 (unsigned long long)r->published, (unsigned long long)(r->expected - r->got),
                 r->expected ? 100.0 * (double)(r->expected - r->got) / (double)r->expected : 0, r->dead, more, w);
    } else {
        snprintf(extra, sizeof extra, "connections=%d window=%d dead=%d%s", r->open, is_topics() ? opt.window : 1,
                 r->dead, w);
    }
    print_result(opt.scenario, r->secs, extra);
}

/* --- command line --------------------------------------------------------------------
 * Every mistake is refused with exit 64 (EX_USAGE) and a message that names it: a typo
 * must not quietly become another benchmark or the number 0. */

#define EXIT_USAGE 64

static const char *const scenarios[] = {"connect", "echo", "fanout", "topics", "presence"};

static void print_help(FILE *to) {
    fprintf(to,
            "usage: live-load SCENARIO [options]\n"
            "\n"
            "scenarios:\n"
            "  connect   open --connections connections: handshakes/s, and with --pid the server's\n"
            "            RSS per idle connection\n"
            "  echo      --connections connections in closed loop: round trips/s and latency\n"
            "  fanout    --subscribers on one topic and one publisher, --window publishes in\n"
            "            flight or a fixed --rate: deliveries/s, lost, latency\n"
            "  topics    --connections connections, each publishing to its own topic\n"
            "  presence  --connections connections join one topic at once: presence events\n"
            "\n"
            "options (default in brackets):\n"
            "  --host IP          the server's IPv4 address [%s]\n"
            "  --port N           the server's port, 1-65535 [%d]\n"
            "  --sub-port N       fanout: subscribers connect to these ports in turn, the\n"
            "                     publisher to --port (repeat it; nodes sharing topics) [--port]\n"
            "  --path PATH        the WebSocket path [%s]\n"
            "  --connections N    connections (connect, echo, topics, presence) [%d]\n"
            "  --subscribers N    subscribers (fanout) [%d]\n"
            "  --window N         publishes in flight (fanout, topics) [%d]\n"
            "  --rate R           fanout publishes per second; 0: as fast as --window allows [%g]\n"
            "  --duration S       seconds measured [%g]\n"
            "  --warmup S         seconds run before measuring [%g]\n"
            "  --body BYTES       publish body size, at most %d [%d]\n"
            "  --pid PID          the server's process, to report its CPU and RSS [none]\n"
            "  --label NAME       the server's name in the RESULT line [%s]\n"
            "  --concurrency N    handshakes at once while connecting [%d]\n"
            "  --slow K           fanout: K subscribers stop reading [%d]\n"
            "  --workers W        processes to spread the connections over (past ~19,900) [%d]\n"
            "                     (connect, echo, topics, or fanout with --rate and no --slow)\n"
            "  -h, --help         this help\n",
            opt.host, opt.port, opt.path, opt.connections, opt.subscribers, opt.window, opt.rate,
            opt.duration, opt.warmup, MAX_BODY, opt.body, opt.label, opt.concurrency, opt.slow, opt.workers);
}

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "live-load: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(live-load --help lists the scenarios and options)\n");
    exit(EXIT_USAGE);
}

/* The whole of `text` as a base-10 integer within [lo, hi], or a usage error. */
static long parse_long(const char *name, const char *text, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) usage_error("--%s: '%s' is not a whole number", name, text);
    if (v < lo || v > hi) usage_error("--%s: %s is out of range %ld-%ld", name, text, lo, hi);
    return v;
}

/* The whole of `text` as a finite number within [lo, hi], or a usage error. */
static double parse_double(const char *name, const char *text, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
        usage_error("--%s: '%s' is not a number", name, text);
    if (v < lo || v > hi) usage_error("--%s: %s is out of range %g-%g", name, text, lo, hi);
    return v;
}

static void parse_args(int argc, char **argv) {
    static struct option longs[] = {
        {"port", 1, 0, 'p'}, {"host", 1, 0, 'H'}, {"path", 1, 0, 'P'}, {"connections", 1, 0, 'c'},
        {"subscribers", 1, 0, 's'}, {"window", 1, 0, 'w'}, {"rate", 1, 0, 'r'},
        {"duration", 1, 0, 'd'}, {"body", 1, 0, 'b'}, {"pid", 1, 0, 'i'}, {"label", 1, 0, 'l'},
        {"concurrency", 1, 0, 'C'}, {"warmup", 1, 0, 'W'}, {"slow", 1, 0, 'S'},
        {"workers", 1, 0, 'k'}, {"sub-port", 1, 0, 'q'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const long many = 1000000; /* far past what one machine's descriptors allow */
    opterr = 0; /* the messages below name the option */
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': print_help(stdout); exit(0);
        case 'p': opt.port = (int)parse_long("port", optarg, 1, 65535); break;
        case 'q':
            if (nsub_ports == MAX_SUB_PORTS) usage_error("--sub-port: at most %d of them", MAX_SUB_PORTS);
            sub_ports[nsub_ports++] = (int)parse_long("sub-port", optarg, 1, 65535);
            break;
        case 'H': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1) usage_error("--host: '%s' is not an IPv4 address", optarg);
            opt.host = optarg;
            break;
        }
        case 'P':
            if (optarg[0] != '/') usage_error("--path: '%s' does not start with /", optarg);
            opt.path = optarg;
            break;
        case 'c': opt.connections = (int)parse_long("connections", optarg, 1, many); break;
        case 's': opt.subscribers = (int)parse_long("subscribers", optarg, 1, many); break;
        case 'w': opt.window = (int)parse_long("window", optarg, 1, many); break;
        case 'r': opt.rate = parse_double("rate", optarg, 0, 1e9); break;
        case 'd': opt.duration = parse_double("duration", optarg, 0.001, 86400); break;
        case 'b': opt.body = (int)parse_long("body", optarg, 0, MAX_BODY); break;
        case 'i': opt.pid = (int)parse_long("pid", optarg, 1, INT32_MAX); break;
        case 'l': opt.label = optarg; break;
        case 'C': opt.concurrency = (int)parse_long("concurrency", optarg, 1, many); break;
        case 'W': opt.warmup = parse_double("warmup", optarg, 0, 86400); break;
        case 'S': opt.slow = (int)parse_long("slow", optarg, 0, many); break;
        case 'k': opt.workers = (int)parse_long("workers", optarg, 1, 1024); break;
        case ':': usage_error("%s needs a value", argv[optind - 1]);
        default: /* an unknown option, or a value given to --help */
            if (strncmp(argv[optind - 1], "--", 2) == 0) usage_error("unknown option %s", argv[optind - 1]);
            usage_error("unknown option -%c", optopt);
        }
    }
    /* getopt_long moved the operands to the end: the scenario, and nothing else */
    if (optind >= argc) usage_error("which scenario? connect, echo, fanout, topics or presence");
    if (optind + 1 < argc) usage_error("one scenario only: '%s' is extra", argv[optind + 1]);
    opt.scenario = argv[optind];
    int known = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) known |= strcmp(opt.scenario, scenarios[i]) == 0;
    if (!known)
        usage_error("unknown scenario '%s': connect, echo, fanout, topics or presence", opt.scenario);
    if (is_fanout() && opt.slow > opt.subscribers) usage_error("--slow: more slow subscribers than --subscribers");
    if (opt.workers > 1 &&
        (strcmp(opt.scenario, "presence") == 0 || (is_fanout() && (opt.rate <= 0 || opt.slow > 0))))
        usage_error("--workers: connect, echo, topics, or fanout with --rate (no --slow)");
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (opt.workers > 1) {
        int rc = start_workers();
        if (worker < 0) return rc; /* the parent: done */
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    histogram_init(&lat);
    int fan = is_fanout();
    /* this process's share: all of them, or a worker's slice (the publisher in worker 0) */
    int total = fan ? opt.subscribers : opt.connections, lo = 0, hi = total;
    if (worker >= 0) {
        lo = (int)((long)total * worker / opt.workers);
        hi = (int)((long)total * (worker + 1) / opt.workers);
    }
    int has_publisher = fan && worker <= 0;
    nconns = hi - lo + has_publisher;
    publisher_index = has_publisher ? nconns - 1 : -1;
    if ((rlim_t)nconns + 64 > rl.rlim_cur) {
        fprintf(stderr, "need %d descriptors, limit %llu\n", nconns + 64, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    conns = calloc((size_t)nconns, sizeof *conns);
    pending = calloc((size_t)nconns, sizeof *pending);
    for (int i = 0; i < nconns; i++) conns[i].index = lo + i;
    long rss0 = opt.pid ? rss_kib(opt.pid) : -1;
    double secs = connect_all();

    if (strcmp(opt.scenario, "connect") == 0) {
        if (worker >= 0) {
            worker_barrier(); /* the parent measures the server meanwhile */
            report r = {.open = open_count(), .dead = dead_count(), .secs = secs};
            write_all(report_fd, &r, sizeof r);
            return 0;
        }
        run_until(now_ns() + 1000000000ull, NULL, NULL); /* let the server settle */
        print_connect(open_count(), dead_count(), secs, rss0, opt.pid ? rss_kib(opt.pid) : -1);
        return 0;
    }
    if (strcmp(opt.scenario, "presence") == 0) {
        uint64_t t0 = now_ns();
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == 2) send_join(&conns[i], "lobby");
        run_until(now_ns() + 60000000000ull, all_joined, NULL);
        double join_secs = (double)(now_ns() - t0) / 1e9;
        /* let the last batches arrive: events stop once everyone has heard of everyone */
        uint64_t last = UINT64_MAX;
        while (last != presence_events) {
            last = presence_events;
            run_until(now_ns() + (uint64_t)(opt.duration * 1e9), NULL, NULL);
        }
        int n = open_count();
        printf("RESULT scenario=presence server=%s connections=%d join_seconds=%.2f presence_events=%llu "
               "events_per_connection=%.1f unbatched_events=%llu\n",
               opt.label, n, join_secs, (unsigned long long)presence_events, (double)presence_events / n,
               (unsigned long long)n * (n + 1) / 2);
        return 0;
    }
    if (has_publisher) {
        publisher = &conns[nconns - 1];
        publisher->role = 1;
        publisher->joined = 1; /* the publisher does not subscribe */
    }
    for (int i = 0; i < nconns; i++) {
        if (conns[i].state != 2 || conns[i].role != 0) continue;
        char topic[32];
        if (is_topics())
            snprintf(topic, sizeof topic, "t%d", conns[i].index);
        else
            snprintf(topic, sizeof topic, "bench");
        if (fan || is_topics()) send_join(&conns[i], topic);
        else conns[i].joined = 1;
    }
    if (fan || is_topics()) run_until(now_ns() + 30000000000ull, all_joined, NULL);
    if (fan) opt.subscribers = open_count() - (publisher != NULL);
    if (fan && opt.slow > 0) { /* these stop reading from now on */
        for (int i = 0, k = 0; i < nconns && k < opt.slow; i++) {
            if (conns[i].state != 2 || conns[i].role != 0) continue;
            conns[i].paused = 1;
            epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, NULL);
            k++;
        }
    }

    void (*tick)(void) = fan ? fanout_tick : is_topics() ? topics_tick : echo_tick;
    if (fan) {
        seen_cap = opt.rate > 0 ? (uint64_t)(opt.rate * (opt.duration + opt.warmup) + 16) : 50000000ull;
        seen = calloc(seen_cap, sizeof *seen);
        replied = calloc(seen_cap, 1);
        rate_step_ns = opt.rate > 0 ? (uint64_t)(1e9 / opt.rate) : 0;
        rate_next_ns = now_ns();
    }
    if (worker >= 0) { /* every worker starts at the same moment, the publish schedule too */
        worker_barrier();
        run_until(go_time, NULL, NULL);
        rate_next_ns = go_time;
    }
    /* warm-up, then measure */
    run_until((worker >= 0 ? go_time : now_ns()) + (uint64_t)(opt.warmup * 1e9), NULL, tick);
    histogram_init(&lat);
    measuring = 1;
    t_measure_start = now_ns();
    double cpu0 = cpu_seconds(), server_cpu0 = opt.pid ? process_cpu_seconds(opt.pid) : -1;
    uint64_t measured_from_seq = next_seq;
    run_until(t_measure_start + (uint64_t)(opt.duration * 1e9), NULL, tick);
    measuring = 0;
    measured_cpu = cpu_seconds() - cpu0;
    double server_cpu1 = opt.pid ? process_cpu_seconds(opt.pid) : -1;
    measured_server_cpu = server_cpu0 >= 0 && server_cpu1 >= 0 ? server_cpu1 - server_cpu0 : -1;
    double msecs = (double)(now_ns() - t_measure_start) / 1e9;
    uint64_t measured_to_seq = next_seq;
    if (fan && worker >= 0) {
        /* the publishes scheduled within the measured interval (publish s goes out at
         * go_time + s * step): the same range in every worker, publisher or not */
        uint64_t w0 = (uint64_t)(opt.warmup * 1e9), w1 = (uint64_t)((opt.warmup + opt.duration) * 1e9);
        measured_from_seq = (w0 + rate_step_ns - 1) / rate_step_ns;
        measured_to_seq = (w1 + rate_step_ns - 1) / rate_step_ns;
        if (measured_to_seq > seen_cap) measured_to_seq = seen_cap;
    }
    report r = {.deliveries = deliveries, .replies = replies, .round_trips = round_trips, .recvs = recvs,
                .subscribers = opt.subscribers, .secs = msecs, .cpu = measured_cpu, .lat = lat};
    char slow[160] = "";
    if (fan) {
        /* drain: give stragglers up to 5 s to arrive, then count what is missing */
        if (opt.rate > 0) rate_step_ns = UINT64_MAX / 2, rate_next_ns = UINT64_MAX;
        publisher = NULL;
        uint64_t drain_until = now_ns() + 5000000000ull;
        while (now_ns() < drain_until) {
            uint64_t missing = 0;
            for (uint64_t s = measured_from_seq; s < measured_to_seq; s++)
                missing += readers() - seen[s];
            if (missing == 0) break;
            run_until(now_ns() + 20000000ull, NULL, NULL);
        }
        r.readers = (int)readers();
        r.published = measured_to_seq - measured_from_seq;
        r.expected = r.published * readers();
        for (uint64_t s = measured_from_seq; s < measured_to_seq; s++) r.got += seen[s];
        if (opt.slow > 0) { /* now read what the slow ones were left with */
            for (int i = 0; i < nconns; i++)
                if (conns[i].paused) {
                    conns[i].want_out = 0;
                    watch(&conns[i], EPOLLIN, EPOLL_CTL_ADD);
                }
            uint64_t r0 = 0;
            for (int i = 0; i < nconns; i++) r0 += conns[i].paused ? conns[i].received : 0;
            run_until(now_ns() + 3000000000ull, NULL, NULL);
            int closed = 0, newest = 0;
            uint64_t got_slow = 0;
            for (int i = 0; i < nconns; i++) {
                if (!conns[i].paused) continue;
                closed += conns[i].close_code == 4008;
                newest += conns[i].last_s + 1 == next_seq;
                got_slow += conns[i].received;
            }
            snprintf(slow, sizeof slow, " slow=%d slow_closed_4008=%d slow_with_newest=%d slow_messages_each=%.1f",
                     opt.slow, closed, newest, (double)(got_slow - r0) / opt.slow);
        }
    }
    r.open = open_count();
    r.dead = dead_count();
    if (worker >= 0) {
        write_all(report_fd, &r, sizeof r);
        return 0;
    }
    print_report(&r, slow);
    return 0;
}
