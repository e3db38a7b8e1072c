/* A tiny test harness for the C unit tests: no dependencies, one line per failed check.
 *
 * A test is a function run through RUN(test_fn); it passes when every check it made held,
 * however many rows its table has. RUN prints one line per test with its number of checks,
 * and check_finish the closing line "N passed, N failed (C checks)" that scripts/test reads,
 * where N counts tests, not checks. */
#ifndef LIVE_TEST_CHECK_H
#define LIVE_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static long check_passed, check_failed; /* checks, all tests together */
static long check_passed_in_tests, check_failed_in_tests; /* of those, made inside RUN */
static int check_tests_passed, check_tests_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            check_passed++;                                                          \
        } else {                                                                     \
            check_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_INT(got, want)                                                            \
    do {                                                                                \
        long long check_g_ = (long long)(got), check_w_ = (long long)(want);            \
        if (check_g_ == check_w_) {                                                     \
            check_passed++;                                                             \
        } else {                                                                        \
            check_failed++;                                                             \
            fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", __FILE__, __LINE__, #got, \
                    check_g_, check_w_);                                                \
        }                                                                               \
    } while (0)

/* CHECK with the name of the table row it checks, for table-driven tests; the rows a test
 * went through are counted (a row is a run of checks under one name). */
#define CHECK_ROW(cond, row)                                                              \
    do {                                                                                  \
        const char *check_row_ = (row);                                                   \
        check_note_row(check_row_);                                                       \
        if (cond) {                                                                       \
            check_passed++;                                                               \
        } else {                                                                          \
            check_failed++;                                                               \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__, check_row_, #cond); \
        }                                                                                 \
    } while (0)

static long check_rows;
static char check_last_row[128];

static inline void check_note_row(const char *row) {
    if (strncmp(row, check_last_row, sizeof check_last_row - 1) == 0) return;
    check_rows++;
    size_t n = 0; /* long names compare by their start */
    for (; n < sizeof check_last_row - 1 && row[n] != '\0'; n++) check_last_row[n] = row[n];
    check_last_row[n] = '\0';
}

/* n with thousands separators, in a buffer of the caller's ("287,313"). */
static inline const char *check_grouped(long n, char buf[32]) {
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%ld", n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && digits[i - 1] != '-' && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* Counts one test that made `ok` checks that held and `bad` that did not, over `rows`
 * table rows (0: not a table). */
static inline void check_test_done(const char *name, long ok, long bad, long rows) {
    char a[32], b[32], r[48] = "";
    check_passed_in_tests += ok;
    check_failed_in_tests += bad;
    if (rows > 0) snprintf(r, sizeof r, "%s row%s, ", check_grouped(rows, a), rows == 1 ? "" : "s");
    if (bad == 0 && ok > 0) {
        check_tests_passed++;
        printf("  ok    %s (%s%s check%s)\n", name, r, check_grouped(ok, b), ok == 1 ? "" : "s");
    } else if (ok + bad == 0) {
        check_tests_failed++; /* a test that checked nothing proves nothing */
        printf("  FAIL  %s (made no checks)\n", name);
    } else {
        check_tests_failed++;
        printf("  FAIL  %s (%s%s of %s checks failed)\n", name, r, check_grouped(bad, a), check_grouped(ok + bad, b));
    }
}

#define RUN(test_fn)                                                                   \
    do {                                                                               \
        long check_p0_ = check_passed, check_f0_ = check_failed, check_r0_ = check_rows; \
        check_last_row[0] = '\0';                                                      \
        test_fn();                                                                     \
        check_test_done(#test_fn, check_passed - check_p0_, check_failed - check_f0_,   \
                        check_rows - check_r0_);                                       \
    } while (0)

static int check_finish(const char *suite) {
    /* checks made outside any RUN (a test called directly) still count, as one test */
    long outside_ok = check_passed - check_passed_in_tests, outside_bad = check_failed - check_failed_in_tests;
    if (outside_ok + outside_bad > 0) check_test_done("(checks outside RUN)", outside_ok, outside_bad, 0);
    char a[32];
    printf("%s: %d passed, %d failed (%s checks)\n", suite, check_tests_passed, check_tests_failed,
           check_grouped(check_passed + check_failed, a));
    return check_tests_failed ? 1 : 0;
}

#endif
