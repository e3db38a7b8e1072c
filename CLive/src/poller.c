/* Sessions' readiness on one epoll set per loop (see poller.h for why). */
#define _GNU_SOURCE
#include "poller.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core.h"

/* Events one wake-up hands out, as libuv's own epoll_wait: more stay ready (level
 * triggered) and come on the next turn, after the flush pass. */
#define READY_MAX 1024

static uint32_t to_epoll(int events) {
    return (events & UV_READABLE ? EPOLLIN : 0) | (events & UV_WRITABLE ? EPOLLOUT : 0) |
           (events & UV_DISCONNECT ? EPOLLRDHUP : 0);
}

static void on_ready(uv_poll_t *handle, int status, int events) {
    lv_poller *p = handle->data;
    (void)events;
    if (status < 0) return;
    int n;
    do n = epoll_wait(p->epfd, p->ready, READY_MAX, 0);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) {
        clive_session *s = p->ready[i].data.ptr;
        uint32_t e = p->ready[i].events;
        /* finished earlier in this batch (it stays allocated until reaped), or not
         * waiting for anything now (an error or hangup is reported regardless) */
        if (s->state == LV_DONE || s->polling == 0) continue;
        /* as libuv: an error ends the session; a bare hangup is every wanted event, so
         * that the read or write that follows finds out what happened */
        if (e & EPOLLERR) {
            lv_session_on_poll(s, UV_EBADF, 0);
            continue;
        }
        int ev = (e & EPOLLIN ? UV_READABLE : 0) | (e & EPOLLOUT ? UV_WRITABLE : 0) |
                 (e & EPOLLRDHUP ? UV_DISCONNECT : 0);
        if (e & EPOLLHUP) ev |= s->polling;
        ev &= s->polling;
        if (ev) lv_session_on_poll(s, 0, ev);
    }
}

static void on_reap(uv_idle_t *handle) { lv_poller_reap(handle->data); }

int lv_poller_init(lv_poller *p, uv_loop_t *uv) {
    p->closing = NULL;
    p->ready = malloc(sizeof *p->ready * READY_MAX);
    if (p->ready == NULL) return -1;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        free(p->ready);
        p->ready = NULL;
        return -1;
    }
    uv_poll_init(uv, &p->watch, p->epfd);
    p->watch.data = p;
    uv_poll_start(&p->watch, UV_READABLE, on_ready);
    uv_idle_init(uv, &p->reap);
    p->reap.data = p;
    return 0;
}

int lv_poller_add(lv_poller *p, int fd, clive_session *s, int events) {
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = s};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void lv_poller_modify(lv_poller *p, int fd, clive_session *s, int events) {
    /* With no events, errors and hangups are still reported: on_ready skips them until
     * the session waits again (only a session whose input waits in its backlog asks for
     * nothing, and the loop does not block meanwhile). */
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = s};
    epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void lv_poller_remove(lv_poller *p, clive_session *s) {
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    /* finished sessions are off the loop's session list: its link is free */
    s->next = p->closing;
    p->closing = s;
    if (!uv_is_active((uv_handle_t *)&p->reap)) uv_idle_start(&p->reap, on_reap);
}

void lv_poller_reap(lv_poller *p) {
    while (p->closing) {
        clive_session *s = p->closing;
        p->closing = s->next;
        s->next = NULL;
        lv_session_closed(s);
    }
    if (uv_is_active((uv_handle_t *)&p->reap)) uv_idle_stop(&p->reap);
}

static void on_closed(uv_handle_t *handle) { (void)handle; }

void lv_poller_close(lv_poller *p) {
    if (p->epfd < 0) return;
    uv_close((uv_handle_t *)&p->watch, on_closed);
    uv_close((uv_handle_t *)&p->reap, on_closed);
}

void lv_poller_free(lv_poller *p) {
    lv_poller_reap(p);
    if (p->epfd >= 0) close(p->epfd);
    p->epfd = -1;
    free(p->ready);
    p->ready = NULL;
}
