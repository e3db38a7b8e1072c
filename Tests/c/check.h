/* A tiny test harness for the C unit tests: no dependencies, one line per failure,
 * and the closing line "N passed, N failed" that CI reads. */
#ifndef LIVE_TEST_CHECK_H
#define LIVE_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

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

/* CHECK with the name of the table row it checks, for table-driven tests. */
#define CHECK_ROW(cond, row)                                                              \
    do {                                                                                  \
        if (cond) {                                                                       \
            check_passed++;                                                               \
        } else {                                                                          \
            check_failed++;                                                               \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__, (row), #cond); \
        }                                                                                 \
    } while (0)

static int check_finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
