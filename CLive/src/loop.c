/* One event loop: its thread, its listener, its inbox, and the once-per-turn work.
 *
 * A loop turn in libuv runs timers, then I/O callbacks, then (before blocking again) the
 * prepare handle. Callbacks only queue frames and mark sessions dirty; the prepare pass
 * then writes each dirty session once, with every frame it has queued in one sendmsg.
 * That batching is what keeps a fanout from paying one syscall per delivery. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"

_Thread_local lv_loop *lv_current_loop;

static void on_presence_timer(uv_timer_t *handle);

#define RECEIVE_BUFFER (256 * 1024)
#define GATHER_BUFFER (64 * 1024)
#define ACCEPTS_PER_EVENT 64
#define LISTEN_PAUSE_MS 100 /* out of descriptors: how long to stop accepting */
/* How long one flush pass may write before the loop reads again. A pass over 10,000
 * subscribers takes tens of milliseconds; input read between slices (a publish, say) is
 * queued at once for every subscriber the pass has not reached yet, so the newest frame
 * waits at most about one pass, not a pass plus the rest of the current one. */
#define FLUSH_SLICE_NS (2 * 1000 * 1000)
#define FLUSH_CLOCK_EVERY 32 /* sessions written between two clock reads */
/* Commands taken from the inbox per wake-up: a loop flooded with publishes from the
 * others still reads its own sockets between batches. */
#define COMMANDS_PER_WAKE 256

void lv_loop_post(lv_loop *l, lv_cmd *cmd) {
    /* A Dekker-style handshake with lv_loop_maybe_stop: either we see the loop open and it
     * waits for us to finish pushing, or it has closed and we drop the command. */
    atomic_fetch_add(&l->posting, 1);
    if (atomic_load(&l->open)) {
        lv_inbox_push(&l->inbox, &cmd->node);
        uv_async_send(&l->wake);
        atomic_fetch_sub(&l->posting, 1);
        return;
    }
    atomic_fetch_sub(&l->posting, 1);
    lv_cmd_free(cmd);
}

void lv_loop_mark_dirty(clive_session *s) {
    if (s->in_dirty) return;
    /* No reference is taken (that would be two atomic operations per subscriber per turn
     * in a fanout): a session closed while on this list keeps its memory until the flush
     * pass has seen it (lv_session_closed in session.c). */
    s->in_dirty = true;
    s->dirty_next = NULL;
    lv_loop *l = s->loop;
    if (l->dirty_tail)
        l->dirty_tail->dirty_next = s;
    else
        l->dirty = s;
    l->dirty_tail = s;
}

/* The oldest dirty session, taken off the list, or NULL. */
static clive_session *take_dirty(lv_loop *l) {
    clive_session *s = l->dirty;
    if (s == NULL) return NULL;
    l->dirty = s->dirty_next;
    if (l->dirty == NULL) l->dirty_tail = NULL;
    s->in_dirty = false;
    return s;
}

void lv_loop_defer(clive_session *s) {
    if (s->in_deferred) return;
    s->in_deferred = true;
    clive_session_retain(s);
    s->deferred_next = s->loop->deferred;
    s->loop->deferred = s;
}

void lv_loop_backlog(clive_session *s) {
    if (s->in_backlog) return;
    s->in_backlog = true;
    clive_session_retain(s);
    s->backlog_next = s->loop->backlog;
    s->loop->backlog = s;
}

static void on_wake(uv_async_t *handle) {
    lv_loop *l = handle->data;
    lv_node *n;
    for (int i = 0; i < COMMANDS_PER_WAKE; i++) {
        if ((n = lv_inbox_pop(&l->inbox)) == NULL) return;
        lv_cmd_run(l, (lv_cmd *)n);
    }
    uv_async_send(&l->wake); /* more waiting: the next turn takes the next batch */
}

/* Every command left, when the loop stops. */
static void drain_inbox(lv_loop *l) {
    lv_node *n;
    while ((n = lv_inbox_pop(&l->inbox)) != NULL) lv_cmd_run(l, (lv_cmd *)n);
}

/* Input that earlier turns' budgets left over: each such session gets this turn's. */
static void run_backlog(lv_loop *l) {
    clive_session *s = l->backlog;
    l->backlog = NULL; /* sessions that still have input left list themselves again */
    while (s) {
        clive_session *next = s->backlog_next;
        s->in_backlog = false;
        lv_session_run_backlog(s);
        clive_session_release(s);
        s = next;
    }
}

/* The server's budget for queued bytes (max_queued_total): when every loop's queues
 * together pass it, this loop closes its own largest queues (4008) until the total is met
 * or it has nothing large left. Checked once per pass, from counters, so fanout pays
 * nothing for it. */
typedef struct queued_session {
    size_t bytes;
    clive_session *s;
} queued_session;

static int by_bytes_desc(const void *a, const void *b) {
    size_t x = ((const queued_session *)a)->bytes, y = ((const queued_session *)b)->bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void enforce_queue_budget(lv_loop *l) {
    clive_server *srv = l->server;
    uint64_t total = 0;
    for (unsigned i = 0; i < srv->nloops; i++)
        total += atomic_load_explicit(&srv->loops[i].counters.queued_bytes, memory_order_relaxed);
    if (total <= srv->options.max_queued_total) return;
    size_t n = 0, cap = 0;
    queued_session *list = NULL;
    for (clive_session *s = l->sessions; s; s = s->next) {
        if (s->state != LV_OPEN || s->overflowed || s->q.bytes == 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            queued_session *p = realloc(list, cap * sizeof *p);
            if (p == NULL) break;
            list = p;
        }
        list[n++] = (queued_session){s->q.bytes, s};
    }
    qsort(list, n, sizeof *list, by_bytes_desc);
    for (size_t i = 0; i < n && total > srv->options.max_queued_total; i++) {
        total -= list[i].bytes;
        lv_count(&l->counters.budget_closes, 1);
        lv_session_overflow(list[i].s);
    }
    free(list);
}

void lv_loop_presence(lv_loop *l, lv_sub *sub, uint64_t id, int joined) {
    const clive_options *o = &l->server->options;
    if (!o->presence) return;
    if (joined && lv_presence_add(&l->server->presence, sub, id) != 0) return;
    lv_presence_note(&l->presence, sub->topic->name, sub->topic->key.len, id, joined);
    if (o->presence_interval_ms && !uv_is_active((uv_handle_t *)&l->presence_timer))
        uv_timer_start(&l->presence_timer, on_presence_timer, o->presence_interval_ms, 0);
}

/* topics.c calls this before it frees a subscription. */
static void on_subscription_removed(void *ctx, lv_sub *sub) {
    lv_loop *l = ctx;
    lv_presence_remove(&l->server->presence, sub);
    lv_loop_presence(l, sub, clive_session_id(sub->session), 0);
}

static void on_resume(uv_idle_t *handle) { (void)handle; /* its being active is the point */ }

/* Deferred close work first (it queues close frames), then one write per dirty session,
 * oldest first. Presence batches (without an interval) go out here too: their events are
 * frames. A pass that runs past FLUSH_SLICE_NS stops and lets the loop poll without
 * blocking; the next prepare goes on where this one stopped, and sessions dirtied in
 * between queue behind. */
static void on_prepare(uv_prepare_t *handle) {
    lv_loop *l = handle->data;
    uint64_t start = uv_hrtime();
    unsigned written = 0;
    run_backlog(l);
    for (;;) {
        if (!l->server->options.presence_interval_ms)
            lv_presence_flush(&l->presence, &l->server->options.callbacks);
        enforce_queue_budget(l);
        if (!l->deferred && !l->dirty) break;
        while (l->deferred) {
            clive_session *s = l->deferred;
            l->deferred = s->deferred_next;
            s->in_deferred = false;
            lv_session_run_deferred(s);
            clive_session_release(s);
        }
        clive_session *s;
        while ((s = take_dirty(l)) != NULL) {
            /* the next session's lines load while this one's write is in the kernel */
            if (l->dirty) __builtin_prefetch(l->dirty);
            if (s->release_after_flush)
                clive_session_release(s); /* closed while listed: the loop's last reference */
            else
                lv_session_flush(s);
            if (++written % FLUSH_CLOCK_EVERY == 0 && l->dirty &&
                uv_hrtime() - start > FLUSH_SLICE_NS) {
                if (!uv_is_active((uv_handle_t *)&l->resume)) uv_idle_start(&l->resume, on_resume);
                return;
            }
        }
    }
    /* sessions with input left over: poll without blocking, so it is read next turn */
    if (l->backlog) {
        if (!uv_is_active((uv_handle_t *)&l->resume)) uv_idle_start(&l->resume, on_resume);
    } else if (uv_is_active((uv_handle_t *)&l->resume)) {
        uv_idle_stop(&l->resume);
    }
}

/* --- topic policies ------------------------------------------------------------------ */

void lv_loop_apply_policy(lv_loop *l, lv_topic *tp) {
    const clive_options *o = &l->server->options;
    tp->policy_set = true;
    lv_interest_change(&l->server->interest, &o->callbacks, tp->name, tp->key.len, tp->key.hash, 1);
    for (size_t i = 0; i < o->topic_policy_count; i++) {
        const clive_topic_policy *p = &o->topic_policies[i];
        size_t k = strlen(p->prefix);
        if (tp->key.len >= k && memcmp(tp->name, p->prefix, k) == 0) {
            tp->throttle_ms = p->throttle_ms;
            tp->latest_only = p->latest_only != 0;
            return;
        }
    }
}

static void release_pending(lv_topic *tp) {
    for (size_t i = 0; i < tp->pending_count; i++) clive_frame_release(tp->pending[i]);
    tp->pending_count = 0;
}

static void unlist_throttled(lv_loop *l, lv_topic *tp) {
    if (!tp->throttle_listed) return;
    for (lv_topic **pp = &l->throttled; *pp; pp = &(*pp)->throttle_next) {
        if (*pp == tp) {
            *pp = tp->throttle_next;
            break;
        }
    }
    tp->throttle_listed = false;
}

static void on_throttle_timer(uv_timer_t *handle);

/* Arms the throttle timer for the earliest interval end among held-back topics. */
static void arm_throttle(lv_loop *l) {
    uint64_t now = lv_now(l), due = UINT64_MAX;
    for (lv_topic *tp = l->throttled; tp; tp = tp->throttle_next) {
        uint64_t end = tp->last_sent_ms + tp->throttle_ms;
        if (end < due) due = end;
    }
    if (due != UINT64_MAX)
        uv_timer_start(&l->throttle_timer, on_throttle_timer, due > now ? due - now : 0, 0);
}

void lv_loop_hold_back(lv_loop *l, lv_topic *tp, clive_frame *const *frames, size_t count) {
    if (tp->pending_count) lv_count(&l->counters.throttled, 1); /* superseded, never sent */
    release_pending(tp);
    if (count == 0) { /* nothing to hold: the topic is up to date */
        unlist_throttled(l, tp);
        return;
    }
    if (tp->pending == NULL || count > 256) {
        clive_frame **p = realloc(tp->pending, sizeof *p * 256);
        if (p == NULL) return; /* best effort: this publish is lost to the throttle */
        tp->pending = p;
    }
    for (size_t i = 0; i < count; i++) {
        tp->pending[i] = frames[i];
        if (frames[i]) clive_frame_retain(frames[i]);
    }
    tp->pending_count = count;
    if (!tp->throttle_listed) {
        tp->throttle_listed = true;
        tp->throttle_next = l->throttled;
        l->throttled = tp;
        arm_throttle(l);
    }
}

static void on_throttle_timer(uv_timer_t *handle) {
    lv_loop *l = handle->data;
    uint64_t now = lv_now(l);
    for (lv_topic **pp = &l->throttled; *pp;) {
        lv_topic *tp = *pp;
        if (now - tp->last_sent_ms >= tp->throttle_ms) { /* the interval ended: trailing edge */
            *pp = tp->throttle_next;
            tp->throttle_listed = false;
            tp->last_sent_ms = now;
            size_t n = tp->pending_count;
            clive_frame *frames[256];
            memcpy(frames, tp->pending, sizeof *frames * n);
            tp->pending_count = 0;
            lv_topic_deliver(l, tp, frames, n);
            for (size_t i = 0; i < n; i++) clive_frame_release(frames[i]);
        } else {
            pp = &tp->throttle_next;
        }
    }
    arm_throttle(l);
}

/* topics.c calls this before it frees an emptied topic. */
static void on_topic_freed(void *ctx, lv_topic *tp) {
    lv_loop *l = ctx;
    if (tp->policy_set) /* it was counted in the interest when it got its policy */
        lv_interest_change(&l->server->interest, &l->server->options.callbacks, tp->name,
                           tp->key.len, tp->key.hash, -1);
    unlist_throttled(ctx, tp);
    release_pending(tp);
    free(tp->pending);
}

static void on_presence_timer(uv_timer_t *handle) {
    lv_loop *l = handle->data;
    lv_presence_flush(&l->presence, &l->server->options.callbacks);
}

static void on_sweep(uv_timer_t *handle) {
    lv_loop *l = handle->data;
    uint64_t now = lv_now(l);
    for (clive_session *s = l->sessions, *next; s; s = next) {
        next = s->next;
        lv_session_sweep(s, now);
    }
}

static void on_listener(uv_poll_t *handle, int status, int events);

/* Out of descriptors: listening again after a pause, not at once. */
static void on_listen_pause_over(uv_timer_t *handle) {
    lv_loop *l = handle->data;
    for (unsigned i = 0; !l->stopping && i < l->nlisteners; i++)
        if (l->listeners[i].fd >= 0) uv_poll_start(&l->listeners[i].poll, UV_READABLE, on_listener);
}

static void on_listener(uv_poll_t *handle, int status, int events) {
    lv_listener *li = handle->data;
    lv_loop *l = li->loop;
    (void)events;
    if (status < 0 || l->stopping) return;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(li->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listening socket stays readable and polling is level-triggered: going
                 * on would spin. Stop listening for a moment; the connection waits in the
                 * backlog until a descriptor frees up. */
                for (unsigned k = 0; k < l->nlisteners; k++) uv_poll_stop(&l->listeners[k].poll);
                uv_timer_start(&l->listen_timer, on_listen_pause_over, LISTEN_PAUSE_MS, 0);
            }
            return; /* EAGAIN: drained */
        }
        lv_session_open_fd(l, fd, li->tls);
    }
}

static void on_handle_closed(uv_handle_t *handle) { (void)handle; }

static void stop_listening(lv_loop *l) {
    for (unsigned i = 0; i < l->nlisteners; i++) {
        lv_listener *li = &l->listeners[i];
        if (li->fd < 0) continue;
        uv_close((uv_handle_t *)&li->poll, on_handle_closed);
        close(li->fd);
        li->fd = -1;
    }
}

void lv_loop_begin_shutdown(lv_loop *l) {
    if (l->stopping) return;
    l->stopping = true;
    stop_listening(l);
    for (clive_session *s = l->sessions, *next; s; s = next) {
        next = s->next;
        if (s->state == LV_OPEN)
            lv_session_start_close(s, CLIVE_CLOSED_SHUTDOWN, LV_CLOSE_GOING_AWAY,
                                   "server shutting down", 20);
        else if (s->state != LV_CLOSING)
            lv_session_finish(s);
    }
    lv_loop_maybe_stop(l);
}

void lv_loop_maybe_stop(lv_loop *l) {
    if (!l->stopping || l->sessions != NULL || l->handles_closed) return;
    l->handles_closed = true;
    /* Refuse new commands, wait out producers mid-push, run what they left. */
    atomic_store(&l->open, 0);
    while (atomic_load(&l->posting) != 0) sched_yield();
    drain_inbox(l);
    uv_close((uv_handle_t *)&l->wake, on_handle_closed);
    uv_close((uv_handle_t *)&l->flush, on_handle_closed);
    uv_close((uv_handle_t *)&l->resume, on_handle_closed);
    uv_close((uv_handle_t *)&l->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&l->presence_timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->throttle_timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->listen_timer, on_handle_closed);
    lv_poller_close(&l->poller);
}

static void thread_main(void *arg) {
    lv_loop *l = arg;
    lv_current_loop = l;
    uv_run(&l->uv, UV_RUN_DEFAULT);
    /* Sessions closed during the last turn may still have close callbacks to run. */
    uv_run(&l->uv, UV_RUN_NOWAIT);
    /* Sessions finished in the last turn: their sockets close, their references drop
     * (onto the flush list's, below, for those still on it). */
    lv_poller_free(&l->poller);
    /* The deferred and flush passes no longer run: drop their references. */
    while (l->deferred) {
        clive_session *s = l->deferred;
        l->deferred = s->deferred_next;
        s->in_deferred = false;
        clive_session_release(s);
    }
    while (l->backlog) {
        clive_session *s = l->backlog;
        l->backlog = s->backlog_next;
        s->in_backlog = false;
        clive_session_release(s);
    }
    clive_session *s;
    while ((s = take_dirty(l)) != NULL)
        if (s->release_after_flush) clive_session_release(s);
    uv_loop_close(&l->uv);
    lv_current_loop = NULL;
}

int lv_loop_init(lv_loop *l, clive_server *server, unsigned index) {
    l->server = server;
    l->index = index;
    l->poller.epfd = -1;
    for (unsigned i = 0; i < LV_MAX_LISTENERS; i++) {
        l->listeners[i].fd = -1;
        l->listeners[i].loop = l;
    }
    l->rbuf_cap = RECEIVE_BUFFER;
    l->rbuf = malloc(l->rbuf_cap);
    if (l->rbuf == NULL) return CLIVE_ENOMEM;
    l->gather_cap = GATHER_BUFFER;
    l->gather = malloc(l->gather_cap);
    if (l->gather == NULL) return CLIVE_ENOMEM;
    lv_inbox_init(&l->inbox);
    lv_topics_init(&l->topics);
    l->topics.ctx = l;
    l->topics.max_per_session = server->options.max_topics_per_session;
    l->topics.max_topics = server->options.max_topics;
    l->topics.shared_topics = &server->topic_regs;
    l->topics.on_topic_free = on_topic_freed;
    if (server->options.presence) l->topics.on_remove = on_subscription_removed;
    atomic_init(&l->open, 0);
    atomic_init(&l->posting, 0);
    return CLIVE_OK;
}

static unsigned sweep_interval(const clive_options *o) {
    unsigned m = o->handshake_timeout_ms;
    if (o->ping_interval_ms < m) m = o->ping_interval_ms;
    if (o->idle_timeout_ms < m) m = o->idle_timeout_ms;
    if (o->close_timeout_ms < m) m = o->close_timeout_ms;
    m /= 4; /* a timeout fires at most a quarter late */
    return m < 10 ? 10 : m > 1000 ? 1000 : m;
}

int lv_loop_start(lv_loop *l) {
    if (uv_loop_init(&l->uv) != 0) return CLIVE_ESYS;
    l->uv.data = l;
    if (lv_poller_init(&l->poller, &l->uv) != 0) return CLIVE_ESYS;
    uv_async_init(&l->uv, &l->wake, on_wake);
    l->wake.data = l;
    uv_prepare_init(&l->uv, &l->flush);
    l->flush.data = l;
    uv_prepare_start(&l->flush, on_prepare);
    uv_idle_init(&l->uv, &l->resume);
    l->resume.data = l;
    uv_timer_init(&l->uv, &l->presence_timer);
    l->presence_timer.data = l;
    uv_timer_init(&l->uv, &l->throttle_timer);
    l->throttle_timer.data = l;
    uv_timer_init(&l->uv, &l->listen_timer);
    l->listen_timer.data = l;
    uv_timer_init(&l->uv, &l->sweep);
    l->sweep.data = l;
    unsigned every = sweep_interval(&l->server->options);
    uv_timer_start(&l->sweep, on_sweep, every, every);
    for (unsigned i = 0; i < l->nlisteners; i++) {
        lv_listener *li = &l->listeners[i];
        if (li->fd < 0) continue;
        uv_poll_init(&l->uv, &li->poll, li->fd);
        li->poll.data = li;
        uv_poll_start(&li->poll, UV_READABLE, on_listener);
    }
    atomic_store(&l->open, 1);
    if (uv_thread_create(&l->thread, thread_main, l) != 0) {
        atomic_store(&l->open, 0);
        return CLIVE_ESYS;
    }
    return CLIVE_OK;
}

void lv_loop_free(lv_loop *l) {
    for (unsigned i = 0; i < l->nlisteners; i++)
        if (l->listeners[i].fd >= 0) close(l->listeners[i].fd);
    lv_topics_free(&l->topics);
    lv_presence_batch_free(&l->presence);
    free(l->rbuf);
    l->rbuf = NULL;
    free(l->gather);
    l->gather = NULL;
    lv_zloop_free(l->zlib);
    l->zlib = NULL;
    lv_poller_free(&l->poller);
    free(l->tls_io.out);
    l->tls_io.out = NULL;
    free(l->tls_plain);
    l->tls_plain = NULL;
}
