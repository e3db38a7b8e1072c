/* Microbenchmarks of the C core's hot paths: frame parsing (unmasking, UTF-8), UTF-8
 * validation, the loop inbox, the send ring, frame building and the fanout step.
 *
 * Built against the core's sources directly (it needs the internal headers), by
 * bench/micro/run. Usage: micro [--quick] [--only=parse|utf8|inbox|sendq|fanout]
 *
 * Method. Each figure is timed with CLOCK_MONOTONIC, after a warm-up that also calibrates
 * the iteration count, as 20 samples of 30 ms (0.6 s in all; with --quick 5 samples of
 * 4 ms, 0.02 s). The line gives the fastest sample, which on a shared VM is the one least
 * disturbed (noise only ever adds time), and the median. Results go to a volatile sink or
 * through an empty asm with a memory clobber, so the compiler cannot drop the work.
 * Byte-crunching figures are set against memcpy of the same buffer measured in the same
 * run: "x memcpy" is memcpy's fastest time over ours, so 1.00 means as fast as copying the
 * bytes once, 0.25 means four times as long. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "core.h"
#include "frame.h"
#include "inbox.h"
#include "sendq.h"
#include "topics.h"
#include "utf8.h"

/* ---- harness ------------------------------------------------------------------------ */

static double total = 0.6; /* seconds measured per figure */
static int samples = 20;   /* timed samples per figure, total / samples seconds each */
enum { MAX_SAMPLES = 4096 };
static volatile uint64_t sink;

/* Makes the compiler assume *p is read and written here. */
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Spin briefly, then yield: on a single CPU (taskset) the thread we wait for needs it. */
static inline void backoff(unsigned *spins) {
    if (++*spins < 128)
        cpu_relax();
    else
        sched_yield();
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "micro: %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (p == NULL) die("out of memory");
    memset(p, 0, n); /* fault the pages in before anything is timed */
    return p;
}

typedef void (*bench_fn)(void *ctx, uint64_t iters);

/* A figure: seconds per operation in the fastest sample and in the median one. */
typedef struct figure {
    double best, median;
} figure;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static figure summarize(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (figure){.best = v[0], .median = v[n / 2]};
}

/* Seconds per iteration of fn: warm up and calibrate (until one call of fn takes a
 * quarter of a sample), then `samples` samples of total/samples seconds each. */
static figure measure(bench_fn fn, void *ctx) {
    double sample = total / samples, t;
    uint64_t iters = 1;
    fn(ctx, 1);
    for (;;) {
        double t0 = now();
        fn(ctx, iters);
        t = now() - t0;
        if (t >= sample / 4) break;
        iters *= t < sample / 1000 ? 16 : 2;
    }
    iters = (uint64_t)((double)iters * sample / t) + 1;
    double v[MAX_SAMPLES];
    for (int r = 0; r < samples; r++) {
        double t0 = now();
        fn(ctx, iters);
        v[r] = (now() - t0) / (double)iters;
    }
    return summarize(v, samples);
}

static void header(const char *section) { printf("\n[%s]\n", section); }

/* One result line: the fastest sample's time per op (and the median's), in ns. gbps < 0,
 * ratio < 0: not applicable. */
static void report(const char *name, const char *size, double ns, double median_ns,
                   const char *unit, double gbps, double ratio) {
    char per[32], med[32];
    snprintf(per, sizeof per, "ns/%s", unit);
    snprintf(med, sizeof med, "(%.1f)", median_ns);
    printf("%-30s %-12s %10.2f %-10s %10s", name, size, ns, per, med);
    if (gbps >= 0)
        printf(" %8.2f GB/s", gbps);
    else
        printf(" %8s     ", "-");
    if (ratio >= 0) printf("  %5.2f x memcpy", ratio);
    printf("\n");
    fflush(stdout);
}

static void size_name(char *out, size_t cap, size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0)
        snprintf(out, cap, "%zu MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(out, cap, "%zu KiB", n >> 10);
    else
        snprintf(out, cap, "%zu B", n);
}

/* ---- memcpy, the reference ---------------------------------------------------------- */

typedef struct copy_ctx {
    uint8_t *dst;
    const uint8_t *src;
    size_t len;
} copy_ctx;

static void run_memcpy(void *c, uint64_t iters) {
    copy_ctx *x = c;
    for (uint64_t i = 0; i < iters; i++) {
        memcpy(x->dst, x->src, x->len);
        escape(x->dst);
    }
}

/* Seconds for one memcpy of len bytes from src (whose cache state the caller set up). */
static double memcpy_time(const uint8_t *src, size_t len) {
    copy_ctx c = {.dst = xmalloc(len), .src = src, .len = len};
    figure t = measure(run_memcpy, &c);
    free(c.dst);
    return t.best;
}

/* ---- 1. frame parsing ----------------------------------------------------------------- */

/* Writes a client frame (FIN, masked) and returns its length. */
static size_t put_client_frame(uint8_t *out, int opcode, const uint8_t *payload, size_t len,
                               const uint8_t key[4]) {
    size_t h;
    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
        h = 2;
    } else if (len <= 0xFFFF) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) out[h + i] = payload[i] ^ key[i & 3];
    return h + len;
}

typedef struct parse_ctx {
    lv_frame_parser p;
    uint8_t *buf;
    size_t len;
    uint64_t bytes; /* counted by the hooks */
    uint64_t messages;
    uint64_t controls;
} parse_ctx;

static int count_data(void *user, int opcode, uint8_t *data, size_t len, int last) {
    parse_ctx *x = user;
    (void)opcode;
    (void)data;
    x->bytes += len;
    x->messages += (uint64_t)last;
    return 0;
}

static int count_control(void *user, int opcode, uint8_t *data, size_t len) {
    parse_ctx *x = user;
    (void)opcode;
    (void)data;
    (void)len;
    x->controls++;
    return 0;
}

static const lv_frame_hooks counting_hooks = {.on_data = count_data, .on_control = count_control};

/* Parses the whole buffer again and again. Unmasking is in place, so each pass flips the
 * payload between masked and clear: harmless for binary frames; text frames use the
 * all-zero key (legal, and lv_mask does the same work for it) so they stay valid UTF-8. */
static void run_parse(void *c, uint64_t iters) {
    parse_ctx *x = c;
    for (uint64_t i = 0; i < iters; i++) {
        size_t used = 0;
        int rc = lv_frame_parse(&x->p, x->buf, x->len, &used, &counting_hooks, x);
        if (rc != 0 || used != x->len) die("lv_frame_parse failed");
    }
}

/* ASCII JSON-ish text, for payloads that must be valid UTF-8. */
static void fill_json_ascii(uint8_t *out, size_t n) {
    static const char rec[] =
        "{\"id\":48213,\"user\":\"alice\",\"room\":\"lobby\",\"text\":\"The quick brown fox "
        "jumps over the lazy dog.\",\"ts\":1732700000123,\"tags\":[\"news\",\"sport\"]},";
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)rec[i % (sizeof rec - 1)];
}

static void bench_parse(int opcode, size_t payload, size_t target_buf) {
    static const uint8_t binary_key[4] = {0x37, 0xfa, 0x21, 0x3d};
    static const uint8_t zero_key[4] = {0, 0, 0, 0};
    const uint8_t *key = opcode == LV_OP_TEXT ? zero_key : binary_key;
    size_t hdr = payload < 126 ? 6 : payload <= 0xFFFF ? 8 : 14;
    size_t frames = target_buf / (hdr + payload);
    if (frames < 2) frames = 2;
    size_t len = frames * (hdr + payload);

    uint8_t *pl = xmalloc(payload);
    if (opcode == LV_OP_TEXT)
        fill_json_ascii(pl, payload);
    else
        for (size_t i = 0; i < payload; i++) pl[i] = (uint8_t)(i * 131 + 7);
    parse_ctx *x = xmalloc(sizeof *x);
    x->buf = xmalloc(len);
    x->len = len;
    for (size_t i = 0, off = 0; i < frames; i++)
        off += put_client_frame(x->buf + off, opcode, pl, payload, key);
    lv_frame_parser_init(&x->p, 16u << 20, 131072);

    /* a checked pass first: every frame seen, every payload byte counted */
    run_parse(x, 1);
    if (x->messages != frames || x->bytes != frames * payload || x->controls != 0)
        die("parse check: wrong frame or byte count");

    figure t = measure(run_parse, x);
    double tm = memcpy_time(x->buf, len);
    char name[64], size[32];
    snprintf(name, sizeof name, "parse %s%s", opcode == LV_OP_TEXT ? "text+utf8" : "binary",
             opcode == LV_OP_TEXT ? " (ascii)" : "");
    size_name(size, sizeof size, payload);
    report(name, size, t.best * 1e9 / (double)frames, t.median * 1e9 / (double)frames, "frame",
           (double)(frames * payload) / t.best / 1e9, tm / t.best);
    sink += x->bytes;
    lv_frame_parser_free(&x->p);
    free(x->buf);
    free(x);
    free(pl);
}

/* ---- 2. UTF-8 validation -------------------------------------------------------------- */

typedef struct utf8_ctx {
    const uint8_t *buf;
    size_t len;
} utf8_ctx;

static void run_utf8(void *c, uint64_t iters) {
    utf8_ctx *x = c;
    uint64_t ok = 0;
    for (uint64_t i = 0; i < iters; i++) {
        escape((void *)x->buf);
        ok += (uint64_t)lv_utf8_valid(x->buf, x->len);
    }
    if (ok != iters) die("utf8: a valid text was rejected");
    sink += ok;
}

/* Fills exactly n bytes with whole repetitions of text, then ASCII spaces: valid UTF-8. */
static void fill_text(uint8_t *out, size_t n, const char *text) {
    size_t tl = strlen(text), off = 0;
    while (off + tl <= n) {
        memcpy(out + off, text, tl);
        off += tl;
    }
    memset(out + off, ' ', n - off);
}

static void bench_utf8(const char *name, const char *text, size_t n) {
    uint8_t *buf = xmalloc(n);
    fill_text(buf, n, text);
    if (!lv_utf8_valid(buf, n)) die("utf8: sample text is not valid UTF-8");
    size_t multi = 0;
    for (size_t i = 0; i < n; i++) multi += (buf[i] & 0xC0) == 0xC0; /* lead bytes */
    utf8_ctx x = {.buf = buf, .len = n};
    figure t = measure(run_utf8, &x);
    double tm = memcpy_time(buf, n);
    char label[64], size[32];
    snprintf(label, sizeof label, "utf8 %s", name);
    size_name(size, sizeof size, n);
    report(label, size, t.best * 1e9, t.median * 1e9, "call", (double)n / t.best / 1e9,
           tm / t.best);
    printf("  (%.1f%% of the bytes begin a multi-byte character)\n", 100.0 * (double)multi / (double)n);
    free(buf);
}

/* ---- 3. inbox --------------------------------------------------------------------------- */

enum { INBOX_ROUND = 1 << 18, INBOX_MAX_PRODUCERS = 4 };

typedef struct ib_item {
    lv_node node;
    uint32_t producer;
    uint32_t seq;
} ib_item;

typedef struct inbox_ctx {
    _Alignas(64) lv_inbox q;
    _Alignas(64) atomic_uint_fast64_t go; /* round number; producers start on a change */
    atomic_int done;                      /* producers finished with the current round */
    atomic_int quit;
    int producers;
    uint32_t per_producer;
    ib_item *items[INBOX_MAX_PRODUCERS]; /* preallocated: no malloc is measured */
} inbox_ctx;

typedef struct producer_arg {
    inbox_ctx *x;
    uint32_t id;
} producer_arg;

static void *inbox_producer(void *arg) {
    producer_arg *a = arg;
    inbox_ctx *x = a->x;
    ib_item *items = x->items[a->id];
    uint64_t seen = 0;
    for (;;) {
        unsigned spins = 0;
        uint64_t g;
        while ((g = atomic_load_explicit(&x->go, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&x->quit, memory_order_relaxed)) return NULL;
            backoff(&spins);
        }
        seen = g;
        for (uint32_t i = 0; i < x->per_producer; i++) lv_inbox_push(&x->q, &items[i].node);
        atomic_fetch_add_explicit(&x->done, 1, memory_order_release);
    }
}

/* One round: the producers push all their items, the caller pops them all (checking
 * each producer's order). Returns the seconds from the start signal to the last pop. */
static double inbox_round(inbox_ctx *x) {
    uint32_t next[INBOX_MAX_PRODUCERS] = {0};
    uint64_t total = (uint64_t)x->producers * x->per_producer, got = 0;
    atomic_store_explicit(&x->done, 0, memory_order_relaxed);
    double t0 = now();
    atomic_fetch_add_explicit(&x->go, 1, memory_order_release);
    unsigned spins = 0;
    while (got < total) {
        lv_node *n = lv_inbox_pop(&x->q);
        if (n == NULL) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        ib_item *it = (ib_item *)n;
        if (it->producer >= (uint32_t)x->producers || it->seq != next[it->producer]++)
            die("inbox: item out of order");
        got++;
    }
    double t = now() - t0;
    while (atomic_load_explicit(&x->done, memory_order_acquire) < x->producers) backoff(&spins);
    return t;
}

static void bench_inbox(int producers) {
    inbox_ctx *x = xmalloc(sizeof *x);
    lv_inbox_init(&x->q);
    x->producers = producers;
    x->per_producer = INBOX_ROUND / (uint32_t)producers;
    pthread_t th[INBOX_MAX_PRODUCERS];
    producer_arg args[INBOX_MAX_PRODUCERS];
    for (int p = 0; p < producers; p++) {
        x->items[p] = xmalloc(sizeof(ib_item) * x->per_producer);
        for (uint32_t i = 0; i < x->per_producer; i++) {
            x->items[p][i].producer = (uint32_t)p;
            x->items[p][i].seq = i;
        }
        args[p] = (producer_arg){.x = x, .id = (uint32_t)p};
        if (pthread_create(&th[p], NULL, inbox_producer, &args[p]) != 0) die("pthread_create");
    }
    for (int w = 0; w < 2; w++) inbox_round(x); /* warm-up */
    /* a sample is a round (a few ms); at least `samples` of them and `total` seconds */
    double v[MAX_SAMPLES], t = 0;
    int n = 0;
    while ((n < samples || t < total) && n < MAX_SAMPLES) {
        double r = inbox_round(x);
        t += r;
        v[n++] = r / (double)((uint64_t)x->producers * x->per_producer);
    }
    figure f = summarize(v, n);
    atomic_store(&x->quit, 1);
    for (int p = 0; p < producers; p++) pthread_join(th[p], NULL);
    char name[64];
    snprintf(name, sizeof name, "inbox %dP:1C push+pop", producers);
    report(name, "16 B node", f.best * 1e9, f.median * 1e9, "item", -1, -1);
    for (int p = 0; p < producers; p++) free(x->items[p]);
    free(x);
}

/* Single-threaded push then pop, for the cost of the operations without cross-thread
 * cache traffic or scheduling. */
typedef struct inbox1_ctx {
    lv_inbox q;
    ib_item items[64];
} inbox1_ctx;

static void run_inbox_single(void *c, uint64_t iters) {
    inbox1_ctx *x = c;
    for (uint64_t i = 0; i < iters; i++) {
        for (int k = 0; k < 64; k++) lv_inbox_push(&x->q, &x->items[k].node);
        for (int k = 0; k < 64; k++)
            if (lv_inbox_pop(&x->q) != &x->items[k].node) die("inbox: single-thread order");
    }
}

static void bench_inbox_single(void) {
    inbox1_ctx *x = xmalloc(sizeof *x);
    lv_inbox_init(&x->q);
    figure t = measure(run_inbox_single, x);
    report("inbox 1 thread push+pop", "16 B node", t.best * 1e9 / 64, t.median * 1e9 / 64, "item",
           -1, -1);
    free(x);
}

/* ---- 4. send ring ------------------------------------------------------------------------ */

enum { RING_BATCH = 32 };

typedef struct ring_ctx {
    lv_sendq q;
    clive_frame *frames[RING_BATCH];
} ring_ctx;

/* What a session does per delivery: take a reference, push; then on the flush: the iovecs,
 * and a write of everything, which releases each frame. */
static void run_ring(void *c, uint64_t iters) {
    ring_ctx *x = c;
    struct iovec iov[RING_BATCH];
    for (uint64_t i = 0; i < iters; i++) {
        for (int k = 0; k < RING_BATCH; k++) {
            clive_frame_retain(x->frames[k]);
            if (lv_sendq_push(&x->q, x->frames[k], 1024, 16u << 20) != 0) die("sendq_push");
        }
        int n = lv_sendq_iov(&x->q, iov, RING_BATCH);
        size_t total = 0;
        for (int k = 0; k < n; k++) total += iov[k].iov_len;
        escape(iov);
        if (lv_sendq_consume(&x->q, total) != RING_BATCH) die("sendq_consume");
    }
}

static void bench_ring(void) {
    ring_ctx *x = xmalloc(sizeof *x);
    uint8_t payload[64];
    fill_json_ascii(payload, sizeof payload);
    for (int k = 0; k < RING_BATCH; k++)
        if ((x->frames[k] = clive_frame_new(0, payload, sizeof payload)) == NULL) die("frame_new");
    figure t = measure(run_ring, x);
    report("sendq push/iov/consume x32", "66 B frame", t.best * 1e9 / RING_BATCH,
           t.median * 1e9 / RING_BATCH, "frame", -1, -1);
    lv_sendq_free(&x->q);
    for (int k = 0; k < RING_BATCH; k++) {
        if (atomic_load(&x->frames[k]->refs) != 1) die("sendq: reference leaked");
        clive_frame_release(x->frames[k]);
    }
    free(x);
}

/* ---- 5. frame building and fanout -------------------------------------------------------- */

typedef struct build_ctx {
    const uint8_t *payload;
    size_t len;
} build_ctx;

static void run_build(void *c, uint64_t iters) {
    build_ctx *x = c;
    for (uint64_t i = 0; i < iters; i++) {
        clive_frame *f = clive_frame_new(0, x->payload, x->len);
        if (f == NULL) die("frame_new");
        escape(f);
        clive_frame_release(f);
    }
}

static void bench_build(size_t len) {
    uint8_t *payload = xmalloc(len);
    fill_json_ascii(payload, len);
    build_ctx x = {.payload = payload, .len = len};
    figure t = measure(run_build, &x);
    double tm = memcpy_time(payload, len);
    char size[32];
    size_name(size, sizeof size, len);
    report("clive_frame_new+release", size, t.best * 1e9, t.median * 1e9, "frame",
           (double)len / t.best / 1e9, tm / t.best);
    free(payload);
}

/* A loop, server and open sessions good enough for lv_loop_fanout: it reads
 * s->loop->server->options, the loop's topics and counters, and marks sessions dirty.
 * No libuv handle is ever initialised or touched. */
typedef struct fan_world {
    lv_loop *loop;
    clive_server *server;
    clive_session **sessions;
    uint32_t n;
} fan_world;

static const char fan_topic[] = "room:lobby";

static void fan_world_init(fan_world *w, uint32_t n) {
    w->server = xmalloc(sizeof *w->server);
    w->server->options.queue_size = 1024;
    w->server->options.queue_bytes = 16u << 20;
    w->loop = xmalloc(sizeof *w->loop);
    w->loop->server = w->server;
    lv_topics_init(&w->loop->topics);
    w->n = n;
    w->sessions = xmalloc(sizeof *w->sessions * n);
    for (uint32_t k = 0; k < n; k++) {
        /* one allocation each, like real sessions: scattered over the heap */
        clive_session *s = calloc(1, sizeof *s);
        if (s == NULL) die("out of memory");
        atomic_init(&s->refs, 1); /* the "connection's" reference: never dropped here */
        s->loop = w->loop;
        s->fd = -1;
        s->state = LV_OPEN;
        s->codec_slot = 0;
        if (lv_topics_subscribe(&w->loop->topics, s, &s->subs, fan_topic, sizeof fan_topic - 1) != 1)
            die("lv_topics_subscribe");
        w->sessions[k] = s;
    }
}

static void fan_world_free(fan_world *w) {
    for (uint32_t k = 0; k < w->n; k++) {
        clive_session *s = w->sessions[k];
        if (atomic_load(&s->refs) != 1 || s->q.count != 0) die("fanout: session left dirty");
        lv_topics_remove_all(&w->loop->topics, &s->subs);
        lv_sendq_free(&s->q);
        free(s);
    }
    lv_topics_free(&w->loop->topics);
    free(w->sessions);
    free(w->loop);
    free(w->server);
}

/* The loop's flush pass (on_prepare + lv_session_flush) with the sendmsg taken out: as
 * if the kernel took every byte. */
static uint64_t flush_all(lv_loop *l) {
    struct iovec iov[64];
    uint64_t frames = 0;
    clive_session *dirty = l->dirty;
    l->dirty = l->dirty_tail = NULL;
    while (dirty) {
        clive_session *s = dirty;
        dirty = s->dirty_next;
        s->in_dirty = false;
        while (s->q.count > 0) {
            int n = lv_sendq_iov(&s->q, iov, 64);
            size_t total = 0;
            for (int i = 0; i < n; i++) total += iov[i].iov_len;
            escape(iov);
            uint32_t c0 = s->q.count;
            size_t b0 = s->q.bytes;
            uint32_t done = lv_sendq_consume(&s->q, total);
            lv_count(&l->counters.queued_frames, (int64_t)s->q.count - (int64_t)c0);
            lv_count(&l->counters.queued_bytes, (int64_t)s->q.bytes - (int64_t)b0);
            lv_count(&l->counters.frames_out, done);
            frames += done;
        }
        /* the flush list holds no reference (loop.c): nothing to release */
    }
    return frames;
}

/* The fanout step as the brief describes it, with nothing of the session layer: one
 * atomic add of the subscriber count, then a push per subscriber's ring. */
static void fanout_rings_only(fan_world *w, clive_frame *f) {
    atomic_fetch_add_explicit(&f->refs, w->n, memory_order_relaxed);
    for (uint32_t k = 0; k < w->n; k++) {
        clive_session *s = w->sessions[k];
        if (lv_sendq_push(&s->q, f, 1024, 16u << 20) != 0) die("sendq_push");
    }
}

static void consume_rings_only(fan_world *w) {
    struct iovec iov[8];
    for (uint32_t k = 0; k < w->n; k++) {
        clive_session *s = w->sessions[k];
        int n = lv_sendq_iov(&s->q, iov, 8);
        size_t total = 0;
        for (int i = 0; i < n; i++) total += iov[i].iov_len;
        escape(iov);
        lv_sendq_consume(&s->q, total);
    }
}

/* One publish per iteration: build a 64-byte frame (untimed: see clive_frame_new above),
 * fan it out, then flush (consume and release) and drop the publisher's reference; the
 * two phases are timed on their own. A sample is as many publishes as fit its time. */
static void bench_fanout(uint32_t n, bool real) {
    fan_world w;
    fan_world_init(&w, n);
    uint8_t payload[64];
    fill_json_ascii(payload, sizeof payload);
    double fan[MAX_SAMPLES], flush[MAX_SAMPLES], sum[MAX_SAMPLES];
    for (int r = -1; r < samples; r++) { /* r == -1: warm-up */
        double t_fan = 0, t_flush = 0, start = now();
        uint64_t iters = 0;
        while (now() - start < total / samples) {
            clive_frame *f = clive_frame_new(0, payload, sizeof payload);
            if (f == NULL) die("frame_new");
            uint64_t flushed;
            double t1 = now();
            if (real)
                lv_loop_fanout(w.loop, fan_topic, sizeof fan_topic - 1, &f, 1, 0);
            else
                fanout_rings_only(&w, f);
            double t2 = now();
            if (real) {
                flushed = flush_all(w.loop);
            } else {
                consume_rings_only(&w);
                flushed = n;
            }
            clive_frame_release(f);
            double t3 = now();
            if (flushed != n) die("fanout: not every subscriber got the frame");
            t_fan += t2 - t1;
            t_flush += t3 - t2;
            iters++;
        }
        if (r < 0) continue;
        fan[r] = t_fan / (double)iters / n;
        flush[r] = t_flush / (double)iters / n;
        sum[r] = fan[r] + flush[r];
    }
    figure a = summarize(fan, samples), b = summarize(flush, samples), c = summarize(sum, samples);
    char size[32];
    snprintf(size, sizeof size, "%u subs", n);
    report(real ? "lv_loop_fanout (enqueue)" : "rings only: add n + push", size, a.best * 1e9,
           a.median * 1e9, "sub", -1, -1);
    report(real ? "  flush w/o sendmsg (release)" : "  iov + consume (release)", size,
           b.best * 1e9, b.median * 1e9, "sub", -1, -1);
    report("  total per subscriber", size, c.best * 1e9, c.median * 1e9, "sub", -1, -1);
    fan_world_free(&w);
}

/* ---- main ------------------------------------------------------------------------------- */

static const char ascii_json[] =
    "{\"type\":\"message\",\"topic\":\"room:lobby\",\"ref\":\"17\",\"body\":{\"user\":\"alice\","
    "\"text\":\"See you at the station at half past nine, bring the tickets.\",\"ts\":"
    "1732700000123}}\n";
static const char english_json[] =
    "{\"user\":\"zoë\",\"text\":\"Meet at the café at 9 — bring the tickets, and don't "
    "forget the naïve plan.\",\"ts\":1732700000123}\n";
static const char greek_cjk[] =
    "Καλημέρα κόσμε, η γρήγορη καφέ αλεπού πηδά πάνω από τον σκύλο. "
    "你好，世界。敏捷的棕色狐狸跳过了懒狗。こんにちは、世界。速い茶色の狐がのろまな犬を飛び越える。"
    "한국어 텍스트도 조금 🙂 ";

static const char *only; /* --only=SECTION: run that section alone */

static bool want(const char *section) { return only == NULL || strcmp(only, section) == 0; }

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            total = 0.02;
            samples = 5;
        } else if (strncmp(argv[i], "--only=", 7) == 0) {
            only = argv[i] + 7;
        } else {
            fprintf(stderr,
                    "usage: %s [--quick] [--only=parse|utf8|inbox|sendq|fanout]\n"
                    "  --quick  0.02 s per figure (a smoke test) instead of 0.6 s\n",
                    argv[0]);
            return 2;
        }
    }
    cpu_set_t cpus;
    int ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : -1;
    printf("CLive microbenchmarks: %.2f s per figure in %d samples; fastest sample (median); "
           "%d CPU(s) usable%s\n",
           total, samples, ncpu, ncpu == 1 ? " (threaded figures time-share one CPU)" : "");
    printf("%-30s %-12s %10s %-10s %10s %13s  %s\n", "benchmark", "size", "best", "", "(median)",
           "throughput", "vs memcpy");

    if (want("parse")) {
        header("1. frame parsing: masked client frames back to back in a 256 KiB read buffer");
        bench_parse(LV_OP_BINARY, 16, 256 << 10);
        bench_parse(LV_OP_BINARY, 125, 256 << 10);
        bench_parse(LV_OP_BINARY, 4096, 256 << 10);
        bench_parse(LV_OP_BINARY, 1 << 20, 2 << 20); /* two 1 MiB frames: a 2 MiB buffer */
        bench_parse(LV_OP_TEXT, 125, 256 << 10);
        bench_parse(LV_OP_TEXT, 4096, 256 << 10);
    }
    if (want("utf8")) {
        header("2. UTF-8 validation (lv_utf8_valid)");
        bench_utf8("ascii json", ascii_json, 64 << 10);
        bench_utf8("english json (accents)", english_json, 64 << 10);
        bench_utf8("greek/cjk/hangul mix", greek_cjk, 64 << 10);
    }
    if (want("inbox")) {
        header("3. inbox (lv_inbox_push/pop), nodes preallocated");
        bench_inbox_single();
        bench_inbox(1);
        bench_inbox(4);
    }
    if (want("sendq")) {
        header("4. send ring (lv_sendq), one thread");
        bench_ring();
    }
    if (want("fanout")) {
        header("5. frame building and fanout (64 B payload)");
        bench_build(64);
        bench_build(4096);
        bench_fanout(1000, false);
        bench_fanout(1000, true);
        bench_fanout(10000, true);
    }
    printf("\n(sink %llu)\n", (unsigned long long)(sink & 0xff));
    return 0;
}
