/* A loop's readiness for its sessions' sockets, on an epoll set of its own.
 *
 * libuv watches one descriptor per uv_poll_t, and a uv_poll_t is 160 bytes: with a handle
 * per session it was the largest part of an idle session (docs/CORE.md, "Memory per idle
 * session"). Here the loop's sessions share one epoll set, which libuv watches as a single
 * descriptor; a session carries only its events (a byte). libuv's per-descriptor watcher
 * table then no longer grows with the connections either.
 *
 * Events and their meaning are libuv's (UV_READABLE, UV_WRITABLE, UV_DISCONNECT), level
 * triggered as uv_poll is, and delivered to lv_session_on_poll. A finished session leaves
 * the set at once; its socket is closed and the loop's reference dropped from an idle
 * callback, outside any callback that may still be using it (as uv_close did). */
#ifndef LIVE_POLLER_H
#define LIVE_POLLER_H

#include <stdbool.h>
#include <uv.h>

typedef struct clive_session clive_session;
struct epoll_event;

typedef struct lv_poller {
    int epfd;
    uv_poll_t watch;           /* the epoll set's own readiness, in the libuv loop */
    uv_idle_t reap;            /* active while sessions wait on `closing` */
    clive_session *closing;    /* finished sessions whose sockets are still to be closed */
    struct epoll_event *ready; /* one epoll_wait's events */
} lv_poller;

/* Creates the set and starts watching it in uv. Returns 0, or -1 (errno set). */
int lv_poller_init(lv_poller *p, uv_loop_t *uv);
/* Watches fd for a session with libuv's event bits (not 0). Returns 0 or -1. */
int lv_poller_add(lv_poller *p, int fd, clive_session *s, int events);
/* Changes what a watched fd waits for (0: nothing for now). */
void lv_poller_modify(lv_poller *p, int fd, clive_session *s, int events);
/* Stops watching a finished session's socket and queues it for closing and release. */
void lv_poller_remove(lv_poller *p, clive_session *s);
/* Closes the sockets of the finished sessions and drops their loop references. Loop
 * thread, outside session callbacks (the idle callback, or after the loop has stopped). */
void lv_poller_reap(lv_poller *p);
/* Stops the handles (the loop is stopping); lv_poller_free after uv_run returned. */
void lv_poller_close(lv_poller *p);
void lv_poller_free(lv_poller *p);

#endif
