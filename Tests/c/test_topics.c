/* The per-loop topic registry: subscribe, unsubscribe, remove-all, growth and deletion. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "siphash.h"
#include "topics.h"

/* The registry only stores session pointers; any distinct addresses will do. */
static char sessions[64];
#define S(i) ((clive_session *)&sessions[i])

static void test_basic(void) {
    lv_topics t = {0};
    lv_topics_init(&t);
    lv_sub_list a = {0}, b = {0};
    CHECK(lv_topics_find(&t, "x", 1) == NULL);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "room", 4), 1);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "room", 4), 0); /* twice is a no-op */
    CHECK_INT(lv_topics_subscribe(&t, S(1), &b, "room", 4), 1);
    lv_topic *tp = lv_topics_find(&t, "room", 4);
    CHECK(tp != NULL && tp->count == 2);
    CHECK_INT(t.subscriptions, 2);
    CHECK_INT(lv_topics_unsubscribe(&t, S(0), &a, "room", 4), 1);
    CHECK_INT(lv_topics_unsubscribe(&t, S(0), &a, "room", 4), 0);
    CHECK(tp->count == 1 && tp->members[0].session == S(1) && tp->members[0].sub->index == 0);
    CHECK_INT(lv_topics_unsubscribe(&t, S(1), &b, "room", 4), 1);
    CHECK(lv_topics_find(&t, "room", 4) == NULL); /* an empty topic disappears */
    CHECK_INT(t.names.count, 0);
    lv_topics_free(&t);
}

/* Many topics and sessions: growth, swap-removal indexes, backward-shift deletion. */
static void test_many(void) {
    lv_topics t = {0};
    lv_topics_init(&t);
    enum { SESSIONS = 40, TOPICS = 500 };
    lv_sub_list lists[SESSIONS] = {0};
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
    CHECK_INT(t.names.count, TOPICS);
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
    CHECK_INT(t.names.count, 0);
    CHECK_INT(t.subscriptions, 0);
    for (uint32_t i = 0; i < t.names.cap; i++) bad += t.names.slots[i] != NULL;
    CHECK_INT(bad, 0);
    lv_topics_free(&t);
}

/* The shared name table under forced collisions: every entry's hash lands on one of three
 * home slots, two of them at the end of the array so that probe runs wrap around; then
 * deletions from the middle of runs, in two orders, with every lookup checked after each. */
typedef struct named {
    lv_name_key key;
    char name[8];
} named;

static void check_all(lv_name_table *t, named *items, const int *present, int n, const char *when) {
    long bad = 0;
    for (int k = 0; k < n; k++) {
        named *e = lv_names_find(t, items[k].name, items[k].key.len, items[k].key.hash);
        bad += present[k] ? e != &items[k] : e != NULL;
    }
    CHECK_ROW(bad == 0, when);
}

static void test_name_table_collisions(void) {
    enum { N = 11 }; /* 11 of 16 slots: the load stays under 3/4, so the table never grows */
    for (int order = 0; order < 2; order++) {
        lv_name_table t = {.name_offset = offsetof(named, name)};
        named items[N];
        int present[N];
        for (int k = 0; k < N; k++) {
            int n = snprintf(items[k].name, sizeof items[k].name, "n%d", k);
            /* homes 14, 15 and 0 once the table has 16 slots */
            items[k].key = (lv_name_key){.hash = (uint64_t)(14 + k % 3) | (uint64_t)k << 32, .len = (size_t)n};
            CHECK(lv_names_reserve(&t) == 0);
            uint32_t slot = lv_names_slot(&t, items[k].name, (size_t)n, items[k].key.hash);
            CHECK(t.slots[slot] == NULL);
            lv_names_put(&t, slot, &items[k].key);
            present[k] = 1;
        }
        CHECK_INT(t.cap, 16);
        check_all(&t, items, present, N, "all inserted");
        for (int i = 0; i < N; i++) {
            int k = order == 0 ? (i * 7) % N : N - 1 - i;
            lv_names_delete(&t, lv_names_slot(&t, items[k].name, items[k].key.len, items[k].key.hash));
            present[k] = 0;
            char when[48];
            snprintf(when, sizeof when, "order %d, after deleting n%d", order, k);
            check_all(&t, items, present, N, when);
        }
        CHECK_INT(t.count, 0);
        lv_names_free(&t);
    }
}

/* The limits: topics per session, topics in all, and that a refusal changes nothing. */
static void test_limits(void) {
    lv_topics t = {0};
    lv_topics_init(&t);
    atomic_uint shared = 0;
    t.max_per_session = 3;
    t.max_topics = 4;
    t.shared_topics = &shared;
    lv_sub_list a = {0}, b = {0};
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "t1", 2), 1);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "t2", 2), 1);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "t3", 2), 1);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "t4", 2), LV_TOPICS_LIMIT);
    CHECK_INT(lv_topics_subscribe(&t, S(0), &a, "t3", 2), 0); /* held already: no limit */
    CHECK_INT(a.count, 3);
    CHECK(lv_topics_find(&t, "t4", 2) == NULL);
    CHECK_INT(lv_topics_subscribe(&t, S(1), &b, "t4", 2), 1); /* the 4th topic */
    CHECK_INT(shared, 4);
    CHECK_INT(lv_topics_subscribe(&t, S(1), &b, "t5", 2), LV_TOPICS_LIMIT); /* a 5th: no */
    CHECK_INT(lv_topics_subscribe(&t, S(1), &b, "t1", 2), 1); /* an existing one: yes */
    CHECK_INT(lv_topics_unsubscribe(&t, S(0), &a, "t2", 2), 1);
    CHECK_INT(shared, 3);
    CHECK_INT(lv_topics_subscribe(&t, S(1), &b, "t5", 2), 1);
    lv_topics_remove_all(&t, &a);
    lv_topics_remove_all(&t, &b);
    CHECK_INT(shared, 0);
    CHECK_INT(t.pairs.count, 0);
    lv_topics_free(&t);
}

/* One session holding many topics: every subscribe, lookup and unsubscribe goes through
 * the (session, topic) table, and the session's list stays consistent under removals from
 * its middle, head and tail. */
static void test_one_session_many_topics(void) {
    lv_topics t = {0};
    lv_topics_init(&t);
    enum { N = 5000 };
    lv_sub_list a = {0};
    char name[32];
    long bad = 0;
    for (int k = 0; k < N; k++) {
        int n = snprintf(name, sizeof name, "room:%d", k);
        bad += lv_topics_subscribe(&t, S(0), &a, name, (size_t)n) != 1;
    }
    for (int k = 0; k < N; k++) { /* again: every one is found */
        int n = snprintf(name, sizeof name, "room:%d", k);
        bad += lv_topics_subscribe(&t, S(0), &a, name, (size_t)n) != 0;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(a.count, N);
    for (int k = 0; k < N; k += 2) {
        int n = snprintf(name, sizeof name, "room:%d", k);
        bad += lv_topics_unsubscribe(&t, S(0), &a, name, (size_t)n) != 1;
        bad += lv_topics_unsubscribe(&t, S(0), &a, name, (size_t)n) != 0;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(a.count, N / 2);
    long listed = 0;
    for (lv_sub *s = a.head; s; s = s->next) {
        listed++;
        bad += s->next && s->next->prev != s;
    }
    CHECK_INT(listed, N / 2);
    CHECK_INT(bad, 0);
    lv_topics_remove_all(&t, &a);
    CHECK_INT(t.names.count, 0);
    CHECK_INT(t.pairs.count, 0);
    lv_topics_free(&t);
}

/* SipHash-2-4 against the reference vectors (key 00..0f; messages empty and 00..0e), and
 * the name hash keyed: a different key gives different hashes. */
static void test_siphash(void) {
    uint8_t m[15];
    for (int i = 0; i < 15; i++) m[i] = (uint8_t)i;
    uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    CHECK(lv_siphash(k0, k1, m, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(lv_siphash(k0, k1, m, 15) == 0xa129ca6149be45e5ull);
    uint64_t before = lv_name_hash("room", 4);
    lv_names_seed();
    CHECK(lv_name_hash("room", 4) != before); /* the process key is not the zero key */
    CHECK(lv_name_hash("room", 4) == lv_name_hash("room", 4));
}

int main(void) {
    RUN(test_siphash);
    RUN(test_limits);
    RUN(test_one_session_many_topics);
    RUN(test_basic);
    RUN(test_many);
    RUN(test_name_table_collisions);
    return check_finish("topics");
}
