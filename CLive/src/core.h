/* The core's internal structures, shared by the loop, session and command code. */
#ifndef LIVE_CORE_H
#define LIVE_CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "clive.h"
#include "deflate.h"
#include "frame.h"
#include "inbox.h"
#include "interest.h"
#include "peers.h"
#include "poller.h"
#include "presence.h"
#include "sendq.h"
#include "tls.h"
#include "topics.h"

/* A frame built once and shared by every queue it sits in. */
struct clive_frame {
    atomic_uint refs;
    uint8_t kind;     /* lv_frame_kind */
    uint8_t head_len; /* data frames: header bytes before the payload */
    size_t len;
    /* data frames: the compressed twin for sessions with permessage-deflate, built by the
     * first loop that needs it (deflate.c); NULL until then, LV_NO_TWIN if not worth it */
    _Atomic(clive_frame *) twin;
    uint8_t bytes[];
};

typedef enum lv_frame_kind {
    LV_FRAME_RAW = 0,  /* HTTP responses and control frames: never compressed */
    LV_FRAME_DATA,     /* clive_frame_new: may get a compressed twin */
    LV_FRAME_DEFLATED, /* a twin: RSV1 set, payload compressed */
} lv_frame_kind;

#define LV_NO_TWIN ((clive_frame *)(uintptr_t)1)

/* Bytes written as they are (a handshake or HTTP response) as a shareable frame. */
clive_frame *lv_frame_raw(const void *a, size_t alen, const void *b, size_t blen);
/* A control frame (close, ping, pong) with its payload. */
clive_frame *lv_frame_control(int opcode, const void *payload, size_t len);

typedef struct lv_loop lv_loop;

/* The session's state as its loop sees it. */
typedef enum lv_state {
    LV_READING_REQUEST, /* assembling the HTTP request head */
    LV_DECIDING,        /* on_request called; waiting for accept or respond */
    LV_OPEN,            /* WebSocket frames flow */
    LV_CLOSING,         /* close frame or HTTP response queued; lingering until EOF */
    LV_DONE,            /* socket closed; waiting for the last references */
} lv_state;

/* The session's state as any thread sees it (clive_session.shared_state). */
enum {
    LV_SHARED_PENDING = 0, /* upgrade not yet accepted */
    LV_SHARED_OPEN = 1,
    LV_SHARED_CLOSED = 2,
    LV_SHARED_OVERFLOWED = 3,
};

struct clive_session {
    /* What every delivery and every write touches comes first, together: a fanout to
     * 10,000 subscribers reaches each session from a cold cache, and these fit two
     * cache lines instead of five. */
    lv_sendq q;                   /* frames out */
    lv_loop *loop;
    clive_session *dirty_next;    /* the loop's flush list */
    int fd;
    uint8_t codec_slot;
    bool deflate_out;       /* permessage-deflate: gets the compressed twins of frames */
    uint8_t state;          /* lv_state */
    uint8_t polling;        /* UV_READABLE/UV_WRITABLE events currently requested, on
                             * the loop's epoll set (poller.h: no uv_poll_t per session) */
    bool in_dirty;          /* on loop->dirty, waiting for its flush */
    bool overflowed;        /* queue overflowed: close with 4008 on the deferred pass */
    bool blocked;           /* the last write hit EAGAIN: waiting for UV_WRITABLE */
    bool broken;            /* a write failed: finished on the deferred pass */
    bool close_queued;      /* our close frame (or final HTTP response) is queued */
    bool write_shut;        /* shutdown(SHUT_WR) done: only reading until EOF */
    /* the rest */
    int8_t subprotocol;
    bool in_deferred;       /* on loop->deferred, waiting for close work */
    bool notify_close;      /* on_close still to be called on the deferred pass */
    bool request_seen;      /* on_request was called: on_close is owed */
    bool ping_outstanding;  /* a keepalive ping is out and nothing was heard since */
    bool close_notified;    /* on_close was called */
    bool over_limit;        /* accepted beyond max_sessions: answered 503 */
    bool over_ip_limit;     /* beyond max_sessions_per_ip: answered 429 */
    bool release_after_flush; /* closed while on the flush list: released by that pass */
    bool in_backlog;        /* on loop->backlog: unparsed input waits for a later turn */
    uint8_t budget;         /* messages it may still have handled this turn */
    /* The fields under 8 bytes sit together here, so that the struct has no padding
     * holes: every idle connection carries one (docs/CORE.md, "Memory per idle session"). */
    atomic_uint refs;
    atomic_int shared_state;
    lv_pmd pmd;                 /* permessage-deflate as agreed in the handshake */
    /* close details for on_close (and close_reason below) */
    uint16_t close_code;
    uint8_t close_kind;
    uint8_t close_reason_len;
    /* request head, then input not parsed yet: bytes pipelined behind the head, or what a
     * turn's message budget left over (the backlog); freed once parsed (head, below) */
    uint32_t head_len, head_cap;
    uint32_t head_scanned;
    uint64_t id;
    _Atomic(void *) user;
    char *close_reason; /* allocated only when a close has a reason: idle sessions are small */
    uint64_t last_heard_ms; /* loop time of the last byte read */
    uint64_t tokens;        /* rate limit: thousandths of a message the session may send */
    uint64_t tokens_ms;     /* when the bucket was last refilled */
    uint64_t over_since_ms; /* when it started dropping (0: it is not) */
    uint64_t deadline_ms;   /* handshake or close deadline, by state */
    clive_session *prev, *next;        /* the loop's session list */
    clive_session *deferred_next;      /* the loop's close-work list */
    clive_session *backlog_next;       /* the loop's list of sessions with input left over */
    struct lv_peer *peer;              /* its address's count (max_sessions_per_ip), or NULL */
    clive_frame *upgrade_reply; /* the 101 response, built with the request, sent on accept */
    char *head;                 /* the request head, then unparsed input (head_len above) */
    /* frames in */
    lv_frame_parser parser;
    struct z_stream_s *zin;     /* only when the client keeps its context: its inflater */
    lv_tls_conn *tls;           /* on a TLS listener: its SSL state; NULL: plain TCP */
    uint8_t *msg; /* a data message being reassembled */
    size_t msg_len, msg_cap;
    lv_sub_list subs;
};

/* Counters a loop updates alone (relaxed stores) and any thread reads. */
typedef struct lv_counters {
    atomic_uint_fast64_t connections, sessions, queued_frames, queued_bytes, overflows, skipped,
        messages_in, frames_out, subscriptions, topics, rate_limited, budget_closes,
        refused_subscribes, compressions, tls_handshakes, tls_failures;
    atomic_uint_fast64_t closed[CLIVE_CLOSE_KINDS], rejected[CLIVE_REJECT_STATUSES], deliveries,
        bytes_out, coalesced, throttled, fanouts, fanout_ns, fanout_hist[CLIVE_TIMING_BUCKETS];
} lv_counters;

/* Listening sockets: at most one plain and one TLS per server. */
#define LV_MAX_LISTENERS 2

typedef struct lv_listener {
    int fd;
    uv_poll_t poll;
    clive_tls *tls; /* NULL: plain */
    struct lv_loop *loop;
} lv_listener;

struct lv_loop {
    clive_server *server;
    unsigned index;
    uv_loop_t uv;
    uv_thread_t thread;
    lv_listener listeners[LV_MAX_LISTENERS];
    unsigned nlisteners;
    lv_poller poller;      /* the sessions' sockets */
    uv_async_t wake;       /* inbox has items, or shutdown */
    uv_prepare_t flush;    /* before the loop blocks: deferred close work, then writes */
    uv_idle_t resume;      /* active while a flush pass is cut short: polls without blocking */
    uv_timer_t sweep;      /* handshake, keepalive, idle and close timeouts */
    uv_timer_t presence_timer; /* flushes the presence batch every presence_interval_ms */
    uv_timer_t throttle_timer; /* sends what throttled topics held back */
    uv_timer_t listen_timer;   /* resumes accepting after running out of descriptors */
    lv_topic *throttled;       /* topics holding a publish back */
    lv_presence_batch presence;
    lv_inbox inbox;
    clive_session *sessions; /* every connection of this loop */
    clive_session *dirty;    /* sessions with frames to write, oldest first */
    clive_session *dirty_tail;
    clive_session *deferred; /* sessions with close work to do outside callbacks */
    clive_session *backlog;  /* sessions whose input waits for the next turn (retained) */
    lv_topics topics;
    uint8_t *rbuf; /* one receive buffer for every connection of the loop */
    size_t rbuf_cap;
    uint8_t *gather; /* small frames bound for one socket, copied together for one write */
    size_t gather_cap;
    lv_zloop *zlib;  /* permessage-deflate streams and buffers, made on first use */
    lv_tls_io tls_io;   /* TLS: the bytes being decrypted, the records being sent */
    uint8_t *tls_plain; /* TLS: decrypted input, made with the loop's first TLS session */
    bool stopping;      /* shutdown began: no new connections */
    bool handles_closed;
    bool thread_joined;
    atomic_int open;    /* 1 while the inbox takes commands */
    atomic_int posting; /* producers inside lv_loop_post */
    lv_counters counters;
};

struct clive_server {
    clive_options options;      /* defaults applied; strings owned (below) */
    char **owned_strings;       /* copies of subprotocol, origin and prefix strings */
    clive_topic_policy *owned_policies;
    size_t owned_count;
    unsigned nloops;
    lv_loop *loops;
    uint16_t port;     /* the first listener's */
    uint16_t tls_port; /* the TLS listener's, or 0 */
    unsigned nlisteners;
    clive_tls *tls[LV_MAX_LISTENERS]; /* each listener's certificate (retained), or NULL */
    atomic_uint refs; /* the owner's, plus one per session handle */
    atomic_int started;
    atomic_int shutting_down;
    atomic_uint connections; /* for max_sessions */
    atomic_uint topic_regs;  /* topics registered over every loop, for max_topics */
    atomic_uint_fast64_t published; /* clive_publish calls (clive_stats.published) */
    char error[192];         /* what the last failure was about (clive_server_error) */
    lv_presence presence;    /* with options.presence */
    lv_peers peers;          /* connections per address, with options.max_sessions_per_ip */
    lv_interest interest;    /* topics with local subscribers, for callbacks.on_interest */
};

/* Drops a reference to the server; the last one frees it (server.c). */
void lv_server_release(clive_server *server);

/* The loop whose thread is running, or NULL on other threads. */
extern _Thread_local lv_loop *lv_current_loop;

static inline uint64_t lv_now(lv_loop *l) { return uv_now(&l->uv); }

static inline void lv_count(atomic_uint_fast64_t *c, int64_t delta) {
    /* Only the owning loop writes: a relaxed load and store, no read-modify-write. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}

/* --- commands: how other threads reach a loop (commands.c) --- */

typedef enum lv_cmd_kind {
    LV_CMD_ACCEPT,
    LV_CMD_RESPOND,
    LV_CMD_SEND,
    LV_CMD_CLOSE,
    LV_CMD_SUBSCRIBE,
    LV_CMD_UNSUBSCRIBE,
    LV_CMD_PUBLISH,
    LV_CMD_SHUTDOWN,
    LV_CMD_INSPECT,
    LV_CMD_BROADCAST,
} lv_cmd_kind;

typedef struct lv_cmd {
    lv_node node; /* first: the inbox links commands through it */
    lv_cmd_kind kind;
    clive_session *session; /* retained, or NULL */
    clive_frame **frames;   /* retained; points into data */
    size_t frame_count;
    unsigned number; /* codec slot, close code */
    uint64_t posted_ns; /* LV_CMD_PUBLISH: when clive_publish was called (uv_hrtime) */
    clive_inspect_fn inspect; /* LV_CMD_INSPECT: called exactly once, then cleared */
    void *inspect_ctx;
    size_t len;      /* bytes of data used by the text (topic, reason) */
    char data[];     /* frames array, then the text */
} lv_cmd;

/* Runs one command on its loop's thread and frees it. */
void lv_cmd_run(lv_loop *l, lv_cmd *cmd);
/* Frees a command without running it (its loop has stopped). */
void lv_cmd_free(lv_cmd *cmd);

/* --- loop (loop.c) --- */

/* Posts a command to a loop and wakes it. Any thread. */
void lv_loop_post(lv_loop *l, lv_cmd *cmd);
/* Marks a session to be flushed before the loop next blocks. */
void lv_loop_mark_dirty(clive_session *s);
/* Marks a session for close work outside any callback. */
void lv_loop_defer(clive_session *s);
/* Lists a session whose unparsed input waits for the next turn. */
void lv_loop_backlog(clive_session *s);
/* Records a join or leave for presence (a no-op when presence is off). Loop thread. */
void lv_loop_presence(lv_loop *l, lv_sub *sub, uint64_t id, int joined);
/* Gives a new topic its policy (throttle, latest-only) and counts it in the node's
 * interest (interest.h). Loop thread, once per topic. */
void lv_loop_apply_policy(lv_loop *l, lv_topic *tp);
/* Holds a throttled topic's publish back until its interval ends. Loop thread. */
void lv_loop_hold_back(lv_loop *l, lv_topic *tp, clive_frame *const *frames, size_t count);
/* Sends frames to a topic's subscribers on this loop now, whatever its throttle. */
void lv_topic_deliver(lv_loop *l, lv_topic *tp, clive_frame *const *frames, size_t count);
/* Sends frames to this loop's subscribers of a topic, timing it from published_ns (the
 * uv_hrtime of the clive_publish call). Loop thread. */
void lv_loop_fanout(lv_loop *l, const char *topic, size_t len, clive_frame *const *frames,
                    size_t count, uint64_t published_ns);
/* Counts an upgrade answered with an HTTP status instead of 101. Loop thread. */
void lv_count_rejected(lv_loop *l, int status);
/* Starts the loop's shutdown. Loop thread. */
void lv_loop_begin_shutdown(lv_loop *l);
/* Stops the loop once its last connection is gone. Loop thread. */
void lv_loop_maybe_stop(lv_loop *l);
int lv_loop_init(lv_loop *l, clive_server *server, unsigned index);
int lv_loop_start(lv_loop *l);
void lv_loop_free(lv_loop *l);

/* --- sessions (session.c) --- */

/* A new connection on fd, from a listener with certificate tls (NULL: plain). */
void lv_session_open_fd(lv_loop *l, int fd, clive_tls *tls);
/* Readiness of a session's socket (poller.c): status < 0 on a socket error, else libuv's
 * event bits. */
void lv_session_on_poll(clive_session *s, int status, int events);
/* Closes a finished session's socket and drops the loop's reference (poller.c reaps
 * finished sessions outside their callbacks). */
void lv_session_closed(clive_session *s);
/* Queues a frame under the session's limits (taking a reference); an overflow marks the
 * session for closing. Loop thread. */
void lv_session_enqueue(clive_session *s, clive_frame *f);
/* Writes what is queued. Loop thread. */
void lv_session_flush(clive_session *s);
/* Starts the closing handshake. Loop thread. */
void lv_session_start_close(clive_session *s, clive_close_kind kind, uint16_t code,
                            const char *reason, size_t reason_len);
/* Loop-thread halves of the public calls. */
void lv_session_do_accept(clive_session *s, unsigned codec_slot);
void lv_session_do_respond(clive_session *s, int status, const char *headers, size_t hlen,
                           const void *body, size_t blen);
/* Close work deferred out of callbacks: overflow closes, then on_close notifications. */
void lv_session_run_deferred(clive_session *s);
/* Parses input a previous turn's budget left over. Loop thread. */
void lv_session_run_backlog(clive_session *s);
/* Drops the queue and closes with CLIVE_CLOSE_SLOW on the deferred pass (an overflow, or
 * the server's queue budget). Loop thread. */
void lv_session_overflow(clive_session *s);
/* Timeouts and keepalive, called by the sweep timer. */
void lv_session_sweep(clive_session *s, uint64_t now);
/* Closes the socket and drops everything; on_close if still owed. */
void lv_session_finish(clive_session *s);

#endif
