/* The per-loop topic registry: subscribe, unsubscribe, remove-all, growth and deletion. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "topics.h"

/* The registry only stores session pointers; any distinct addresses will do. */
static char sessions[64];
#define S(i) ((clive_session *)&sessions[i])

static void test_basic(void) {
    lv_topics t = {0};
    lv_sub *a = NULL, *b = NULL;
    CHECK(lv_topics_find(&t, "x", 1) == NULL);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "room", 4), 1);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "room", 4), 0); /* twice is a no-op */
    CHECK_INT(lv_topics_subscribe(&t, S(1), &b, "room", 4), 1);
    lv_topic *tp = lv_topics_find(&t, "room", 4);
    CHECK(tp != NULL && tp->count == 2);
    CHECK_INT(t.subscriptions, 2);
    CHECK_INT(lv_topics_unsubscribe(&t, &a, "room", 4), 1);
    CHECK_INT(lv_topics_unsubscribe(&t, &a, "room", 4), 0);
    CHECK(tp->count == 1 && tp->members[0].session == S(1) && tp->members[0].sub->index == 0);
    CHECK_INT(lv_topics_unsubscribe(&t, &b, "room", 4), 1);
    CHECK(lv_topics_find(&t, "room", 4) == NULL); /* an empty topic disappears */
    CHECK_INT(t.count, 0);
    lv_topics_free(&t);
}

/* Many topics and sessions: growth, swap-removal indexes, backward-shift deletion. */
static void test_many(void) {
    lv_topics t = {0};
    enum { SESSIONS = 40, TOPICS = 500 };
    lv_sub *lists[SESSIONS] = {0};
    char name[32];
    for (int k = 0; k < TOPICS; k++) {
        int n = snprintf(name, sizeof name, "topic-%d", k);
        for (int s = 0; s < SESSIONS; s++)
            if ((k + s) % 3 == 0) lv_topics_subscribe(&t, S(s), &lists[s], name, (size_t)n);
    }
    long expect = 0;
    for (int k = 0; k < TOPICS; k++)
        for (int s = 0; s < SESSIONS; s++) expect += (k + s) % 3 == 0;
    CHECK_INT(t.subscriptions, expect);
    CHECK_INT(t.count, TOPICS);
    /* remove every third session entirely, then verify every index and every lookup */
    for (int s = 0; s < SESSIONS; s += 3) lv_topics_remove_all(&t, &lists[s]);
    long bad = 0, total = 0;
    for (int k = 0; k < TOPICS; k++) {
        int n = snprintf(name, sizeof name, "topic-%d", k);
        lv_topic *tp = lv_topics_find(&t, name, (size_t)n);
        long want = 0;
        for (int s = 0; s < SESSIONS; s++) want += (k + s) % 3 == 0 && s % 3 != 0;
        if (want == 0) {
            bad += tp != NULL;
            continue;
        }
        if (tp == NULL || tp->count != want) {
            bad++;
            continue;
        }
        for (uint32_t i = 0; i < tp->count; i++) bad += tp->members[i].sub->index != i || tp->members[i].sub->session != tp->members[i].session;
        total += tp->count;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(t.subscriptions, total);
    for (int s = 0; s < SESSIONS; s++) lv_topics_remove_all(&t, &lists[s]);
    CHECK_INT(t.count, 0);
    CHECK_INT(t.subscriptions, 0);
    for (uint32_t i = 0; i < t.cap; i++) bad += t.table[i] != NULL;
    CHECK_INT(bad, 0);
    lv_topics_free(&t);
}

int main(void) {
    test_basic();
    test_many();
    return check_finish("topics");
}
