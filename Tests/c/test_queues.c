/* The loop inbox (MPSC, under several producer threads) and the send ring. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "core.h"
#include "inbox.h"
#include "sendq.h"

typedef struct item {
    lv_node node;
    int producer;
    int seq;
} item;

enum { PRODUCERS = 4, PER_PRODUCER = 200000 };

static lv_inbox inbox;
static atomic_int started;

static void *produce(void *arg) {
    int id = (int)(intptr_t)arg;
    atomic_fetch_add(&started, 1);
    while (atomic_load(&started) < PRODUCERS) {
    } /* start together, to contend */
    for (int i = 0; i < PER_PRODUCER; i++) {
        item *it = malloc(sizeof *it);
        it->producer = id;
        it->seq = i;
        lv_inbox_push(&inbox, &it->node);
    }
    return NULL;
}

/* Every item arrives exactly once, and each producer's items arrive in its order. */
static void test_inbox_threads(void) {
    lv_inbox_init(&inbox);
    CHECK(lv_inbox_pop(&inbox) == NULL);
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) pthread_create(&t[i], NULL, produce, (void *)(intptr_t)i);
    int next[PRODUCERS] = {0};
    long got = 0, out_of_order = 0;
    while (got < (long)PRODUCERS * PER_PRODUCER) {
        lv_node *n = lv_inbox_pop(&inbox);
        if (n == NULL) continue; /* empty, or a producer mid-push */
        item *it = (item *)n;
        if (it->seq != next[it->producer]) out_of_order++;
        next[it->producer] = it->seq + 1;
        got++;
        free(it);
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(t[i], NULL);
    CHECK_INT(out_of_order, 0);
    for (int i = 0; i < PRODUCERS; i++) CHECK_INT(next[i], PER_PRODUCER);
    CHECK(lv_inbox_pop(&inbox) == NULL);
}

static clive_frame *frame_of(size_t payload) {
    char *p = calloc(1, payload + 1);
    clive_frame *f = clive_frame_new(1, p, payload);
    free(p);
    return f;
}

static void test_sendq_limits_and_partial_writes(void) {
    lv_sendq q = {0};
    clive_frame *f = frame_of(100); /* 102 bytes with its header */
    CHECK_INT(f->len, 102);
    for (int i = 0; i < 5; i++) {
        clive_frame_retain(f);
        CHECK_INT(lv_sendq_push(&q, f, 5, 1 << 20), 0);
    }
    clive_frame_retain(f);
    CHECK_INT(lv_sendq_push(&q, f, 5, 1 << 20), -1); /* count limit */
    clive_frame_release(f);
    CHECK_INT(q.count, 5);
    CHECK_INT(q.bytes, 510);
    struct iovec iov[8];
    CHECK_INT(lv_sendq_iov(&q, iov, 8), 5);
    CHECK_INT(lv_sendq_iov(&q, iov, 2), 2);
    /* a partial write: 1.5 frames */
    CHECK_INT(lv_sendq_consume(&q, 153), 1);
    CHECK_INT(q.count, 4);
    CHECK_INT(q.head_off, 51);
    CHECK_INT(lv_sendq_iov(&q, iov, 8), 4);
    CHECK_INT(iov[0].iov_len, 51);
    CHECK(iov[0].iov_base == f->bytes + 51);
    /* dropping keeps the partly written frame, so the stream stays well-formed */
    lv_sendq_drop(&q);
    CHECK_INT(q.count, 1);
    CHECK_INT(q.bytes, 51);
    CHECK_INT(lv_sendq_consume(&q, 51), 1);
    CHECK_INT(q.count, 0);
    CHECK_INT(atomic_load(&f->refs), 1);
    /* a drained queue holds no storage (idle sessions), and takes frames again */
    CHECK(q.slots == NULL);
    CHECK_INT(q.cap, 0);
    CHECK_INT(q.head_seq, 2); /* two written; the dropped three never got a number */
    /* byte limit; a frame into an empty queue always fits */
    clive_frame *big = frame_of(5000);
    clive_frame_retain(big);
    CHECK_INT(lv_sendq_push(&q, big, 100, 1000), 0);
    clive_frame_retain(big);
    CHECK_INT(lv_sendq_push(&q, big, 100, 1000), -1);
    clive_frame_release(big);
    clive_frame_retain(big);
    CHECK_INT(lv_sendq_push_force(&q, big), 0);
    lv_sendq_free(&q);
    CHECK_INT(atomic_load(&big->refs), 1);
    clive_frame_release(big);
    clive_frame_release(f);
}

static void test_sendq_growth_wraps(void) {
    lv_sendq q = {0};
    clive_frame *f = frame_of(1);
    int pushed = 0, popped = 0;
    /* interleave pushes and pops so the ring wraps while it grows */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 7; i++) {
            clive_frame_retain(f);
            CHECK_INT(lv_sendq_push(&q, f, 1000, 1 << 20), 0);
            pushed++;
        }
        CHECK_INT(lv_sendq_consume(&q, 3 * f->len), 3);
        popped += 3;
    }
    CHECK_INT(q.count, pushed - popped);
    CHECK_INT(q.bytes, (size_t)(pushed - popped) * f->len);
    lv_sendq_free(&q);
    CHECK_INT(atomic_load(&f->refs), 1);
    clive_frame_release(f);
}

int main(void) {
    RUN(test_inbox_threads);
    RUN(test_sendq_limits_and_partial_writes);
    RUN(test_sendq_growth_wraps);
    return check_finish("queues");
}
