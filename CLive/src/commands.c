/* The any-thread API for sessions and topics. Called on the session's own loop thread, a
 * call acts at once; called anywhere else it becomes a command in that loop's inbox, so
 * the loop stays the only thread that touches its sockets, queues and topics. Commands
 * from one thread to one loop run in the order they were made. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "utf8.h"

static lv_cmd *cmd_new(lv_cmd_kind kind, clive_session *s, size_t nframes, const char *text,
                       size_t len) {
    lv_cmd *c = malloc(sizeof *c + nframes * sizeof(clive_frame *) + len);
    if (c == NULL) return NULL;
    c->kind = kind;
    c->session = s;
    if (s) clive_session_retain(s);
    c->frames = nframes ? (clive_frame **)c->data : NULL;
    c->frame_count = nframes;
    c->number = 0;
    c->posted_ns = 0;
    c->inspect = NULL;
    c->inspect_ctx = NULL;
    c->len = len;
    if (text && len) memcpy(c->data + nframes * sizeof(clive_frame *), text, len);
    return c;
}

static const char *cmd_text(const lv_cmd *c) {
    return c->data + c->frame_count * sizeof(clive_frame *);
}

static void inspect_here(clive_session *s, clive_inspect_fn fn, void *ctx);

void lv_cmd_free(lv_cmd *c) {
    /* an inspection whose loop stopped before running it still gets its one answer */
    if (c->inspect) inspect_here(c->session, c->inspect, c->inspect_ctx);
    for (size_t i = 0; i < c->frame_count; i++) clive_frame_release(c->frames[i]);
    if (c->session) clive_session_release(c->session);
    free(c);
}

static bool on_own_loop(const clive_session *s) { return lv_current_loop == s->loop; }

static int subscribe_here(clive_session *s, const char *topic, size_t len, bool add) {
    if (s->state != LV_OPEN) return CLIVE_ECLOSED;
    lv_loop *l = s->loop;
    uint32_t topics_before = l->topics.names.count;
    int r = add ? lv_topics_subscribe(&l->topics, s, &s->subs, topic, len)
                : lv_topics_unsubscribe(&l->topics, s, &s->subs, topic, len);
    if (r == 1) lv_count(&l->counters.subscriptions, add ? 1 : -1);
    if (r == 1 && add) {
        lv_sub *sub = s->subs.head; /* the new one heads the list */
        if (!sub->topic->policy_set) lv_loop_apply_policy(l, sub->topic);
        lv_loop_presence(l, sub, s->id, 1);
    }
    lv_count(&l->counters.topics, (int64_t)l->topics.names.count - (int64_t)topics_before);
    if (r == LV_TOPICS_LIMIT) {
        lv_count(&l->counters.refused_subscribes, 1);
        return CLIVE_ELIMIT;
    }
    return r < 0 ? CLIVE_ENOMEM : CLIVE_OK;
}

/* A session's snapshot for clive_session_inspect, on its loop (or, its loop gone, empty). */
static void inspect_here(clive_session *s, clive_inspect_fn fn, void *ctx) {
    clive_session_info info = {0};
    bool open = lv_current_loop == s->loop && s->state == LV_OPEN; /* else its loop is gone */
    const char **names = NULL;
    size_t *lens = NULL;
    if (open) {
        info.open = 1;
        info.queued_frames = s->q.count;
        info.queued_bytes = s->q.bytes;
        size_t n = s->subs.count;
        names = n ? malloc(n * sizeof *names) : NULL;
        lens = n ? malloc(n * sizeof *lens) : NULL;
        if (names && lens) {
            size_t i = 0;
            for (lv_sub *sub = s->subs.head; sub && i < n; sub = sub->next, i++) {
                names[i] = sub->topic->name;
                lens[i] = sub->topic->key.len;
            }
            info.topic_count = i;
            info.topics = names;
            info.topic_lens = lens;
        }
    }
    fn(s, &info, ctx);
    free(names);
    free(lens);
}

/* Queues frames[slot] to every open session of this loop. */
static void broadcast_here(lv_loop *l, clive_frame *const *frames, size_t count) {
    uint64_t skipped = 0, queued = 0;
    for (clive_session *s = l->sessions; s; s = s->next) {
        if (s->state != LV_OPEN) continue;
        clive_frame *f = s->codec_slot < count ? frames[s->codec_slot] : NULL;
        if (f) {
            lv_session_enqueue(s, f);
            queued++;
        } else {
            skipped++;
        }
    }
    if (skipped) lv_count(&l->counters.skipped, (int64_t)skipped);
    if (queued) lv_count(&l->counters.deliveries, (int64_t)queued);
}

void lv_cmd_run(lv_loop *l, lv_cmd *c) {
    clive_session *s = c->session;
    switch (c->kind) {
    case LV_CMD_ACCEPT:
        lv_session_do_accept(s, c->number);
        break;
    case LV_CMD_RESPOND: {
        size_t hlen;
        memcpy(&hlen, cmd_text(c), sizeof hlen);
        const char *headers = cmd_text(c) + sizeof hlen;
        lv_session_do_respond(s, (int)c->number, headers, hlen, headers + hlen,
                              c->len - sizeof hlen - hlen);
        break;
    }
    case LV_CMD_SEND:
        lv_session_enqueue(s, c->frames[0]);
        break;
    case LV_CMD_CLOSE:
        lv_session_start_close(s, CLIVE_CLOSED_BY_SERVER, (uint16_t)c->number, cmd_text(c),
                               c->len);
        break;
    case LV_CMD_SUBSCRIBE:
    case LV_CMD_UNSUBSCRIBE:
        subscribe_here(s, cmd_text(c), c->len, c->kind == LV_CMD_SUBSCRIBE);
        break;
    case LV_CMD_PUBLISH:
        lv_loop_fanout(l, cmd_text(c), c->len, c->frames, c->frame_count, c->posted_ns);
        break;
    case LV_CMD_SHUTDOWN:
        lv_loop_begin_shutdown(l);
        break;
    case LV_CMD_INSPECT:
        inspect_here(s, c->inspect, c->inspect_ctx);
        c->inspect = NULL;
        break;
    case LV_CMD_BROADCAST:
        broadcast_here(l, c->frames, c->frame_count);
        break;
    }
    lv_cmd_free(c);
}

static int post(clive_session *s, lv_cmd *c) {
    if (c == NULL) return CLIVE_ENOMEM;
    lv_loop_post(s->loop, c);
    return CLIVE_OK;
}

int clive_session_accept(clive_session *s, unsigned codec_slot) {
    if (codec_slot > 255) return CLIVE_EINVAL;
    int expected = LV_SHARED_PENDING;
    if (!atomic_compare_exchange_strong(&s->shared_state, &expected, LV_SHARED_OPEN))
        return expected == LV_SHARED_OPEN ? CLIVE_ESTATE : CLIVE_ECLOSED;
    if (on_own_loop(s)) {
        lv_session_do_accept(s, codec_slot);
        return CLIVE_OK;
    }
    lv_cmd *c = cmd_new(LV_CMD_ACCEPT, s, 0, NULL, 0);
    if (c) c->number = codec_slot;
    return post(s, c);
}

int clive_session_respond(clive_session *s, int status, const char *headers,
                          size_t headers_len, const void *body, size_t body_len) {
    if (status < 100 || status > 999) return CLIVE_EINVAL;
    int expected = LV_SHARED_PENDING;
    if (!atomic_compare_exchange_strong(&s->shared_state, &expected, LV_SHARED_CLOSED))
        return expected == LV_SHARED_OPEN ? CLIVE_ESTATE : CLIVE_ECLOSED;
    if (on_own_loop(s)) {
        lv_session_do_respond(s, status, headers, headers_len, body, body_len);
        return CLIVE_OK;
    }
    /* the command's text: the headers' length, the headers, then the body */
    size_t len = sizeof headers_len + headers_len + body_len;
    lv_cmd *c = cmd_new(LV_CMD_RESPOND, s, 0, NULL, len);
    if (c) {
        c->number = (unsigned)status;
        memcpy(c->data, &headers_len, sizeof headers_len);
        if (headers_len) memcpy(c->data + sizeof headers_len, headers, headers_len);
        if (body_len) memcpy(c->data + sizeof headers_len + headers_len, body, body_len);
    }
    return post(s, c);
}

static int open_or_error(const clive_session *s) {
    int st = atomic_load(&s->shared_state);
    if (st == LV_SHARED_OPEN) return CLIVE_OK;
    return st == LV_SHARED_OVERFLOWED ? CLIVE_EOVERFLOW : CLIVE_ECLOSED;
}

int clive_session_send(clive_session *s, clive_frame *frame) {
    int err = open_or_error(s);
    if (err != CLIVE_OK) return err;
    if (on_own_loop(s)) {
        lv_session_enqueue(s, frame);
        return open_or_error(s);
    }
    lv_cmd *c = cmd_new(LV_CMD_SEND, s, 1, NULL, 0);
    if (c) {
        clive_frame_retain(frame);
        c->frames[0] = frame;
    }
    return post(s, c);
}

int clive_session_close(clive_session *s, uint16_t code, const char *reason,
                        size_t reason_len) {
    if (code < 1000 || code > 4999 || !lv_close_code_valid(code) || reason_len > 123 ||
        !lv_utf8_valid((const uint8_t *)reason, reason_len))
        return CLIVE_EINVAL;
    int st = atomic_load(&s->shared_state);
    if (st == LV_SHARED_PENDING) return CLIVE_ESTATE; /* not accepted: respond instead */
    if (st != LV_SHARED_OPEN) return CLIVE_ECLOSED;
    if (on_own_loop(s)) {
        lv_session_start_close(s, CLIVE_CLOSED_BY_SERVER, code, reason, reason_len);
        return CLIVE_OK;
    }
    lv_cmd *c = cmd_new(LV_CMD_CLOSE, s, 0, reason, reason_len);
    if (c) c->number = code;
    return post(s, c);
}

static int topic_call(clive_session *s, const char *topic, size_t len, bool add) {
    if (len == 0 || len > s->loop->server->options.max_topic_len) return CLIVE_EINVAL;
    int err = open_or_error(s);
    if (err != CLIVE_OK) return err;
    if (on_own_loop(s)) {
        err = subscribe_here(s, topic, len, add);
        return err == CLIVE_ECLOSED ? open_or_error(s) : err;
    }
    return post(s, cmd_new(add ? LV_CMD_SUBSCRIBE : LV_CMD_UNSUBSCRIBE, s, 0, topic, len));
}

int clive_subscribe(clive_session *s, const char *topic, size_t len) {
    return topic_call(s, topic, len, true);
}

int clive_unsubscribe(clive_session *s, const char *topic, size_t len) {
    return topic_call(s, topic, len, false);
}

/* Posts frames (and a topic, for a publish) to every loop but the caller's own; returns
 * the caller's loop when it is one of the server's. */
static int post_to_loops(clive_server *server, lv_cmd_kind kind, const char *topic, size_t len,
                         clive_frame *const *frames, size_t count, uint64_t now_ns,
                         lv_loop **here) {
    *here = NULL;
    for (unsigned i = 0; i < server->nloops; i++) {
        lv_loop *l = &server->loops[i];
        if (l == lv_current_loop) {
            *here = l;
            continue;
        }
        lv_cmd *c = cmd_new(kind, NULL, count, topic, len);
        if (c == NULL) return CLIVE_ENOMEM;
        c->posted_ns = now_ns;
        for (size_t k = 0; k < count; k++) {
            c->frames[k] = frames[k];
            if (frames[k]) clive_frame_retain(frames[k]);
        }
        lv_loop_post(l, c);
    }
    return CLIVE_OK;
}

int clive_publish(clive_server *server, const char *topic, size_t len,
                  clive_frame *const *frames, size_t count) {
    if (len == 0 || len > server->options.max_topic_len || count == 0 || count > 256)
        return CLIVE_EINVAL;
    if (atomic_load(&server->shutting_down)) return CLIVE_ECLOSED;
    lv_loop *here;
    uint64_t now_ns = uv_hrtime(); /* one clock read per publish; each loop reads one more */
    int err = post_to_loops(server, LV_CMD_PUBLISH, topic, len, frames, count, now_ns, &here);
    if (err == CLIVE_OK && here) lv_loop_fanout(here, topic, len, frames, count, now_ns);
    if (err == CLIVE_OK) atomic_fetch_add_explicit(&server->published, 1, memory_order_relaxed);
    return err;
}

int clive_broadcast(clive_server *server, clive_frame *const *frames, size_t count) {
    if (count == 0 || count > 256) return CLIVE_EINVAL;
    if (atomic_load(&server->shutting_down)) return CLIVE_ECLOSED;
    lv_loop *here;
    int err = post_to_loops(server, LV_CMD_BROADCAST, NULL, 0, frames, count, 0, &here);
    if (err == CLIVE_OK && here) broadcast_here(here, frames, count);
    return err;
}

int clive_session_inspect(clive_session *s, clive_inspect_fn fn, void *ctx) {
    if (fn == NULL) return CLIVE_EINVAL;
    if (on_own_loop(s)) {
        inspect_here(s, fn, ctx);
        return CLIVE_OK;
    }
    lv_cmd *c = cmd_new(LV_CMD_INSPECT, s, 0, NULL, 0);
    if (c == NULL) return CLIVE_ENOMEM;
    c->inspect = fn;
    c->inspect_ctx = ctx;
    lv_loop_post(s->loop, c);
    return CLIVE_OK;
}

/* --- session accessors and references ---------------------------------------------- */

uint64_t clive_session_id(const clive_session *s) { return s->id; }

int clive_session_subprotocol(const clive_session *s) { return s->subprotocol; }

int clive_session_is_open(const clive_session *s) {
    return atomic_load(&s->shared_state) == LV_SHARED_OPEN;
}

void clive_session_set_user(clive_session *s, void *user) { atomic_store(&s->user, user); }

void *clive_session_user(const clive_session *s) {
    return atomic_load((_Atomic(void *) *)&s->user);
}

void *clive_session_take_user(clive_session *s) { return atomic_exchange(&s->user, NULL); }

void clive_session_retain(clive_session *s) {
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void clive_session_release(clive_session *s) {
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    clive_server *server = s->loop->server;
    free(s->close_reason);
    free(s);
    lv_server_release(server);
}
