/* A log-linear latency histogram: each power of two of nanoseconds is split into 32 linear
 * sub-buckets, so any recorded value is within about 3% of its bucket, from 1 ns to hours,
 * in a fixed 16 KiB with no allocation per sample. */
#ifndef LIVE_BENCH_HISTOGRAM_H
#define LIVE_BENCH_HISTOGRAM_H

#include <stdint.h>
#include <string.h>

#define HIST_SUB 32
#define HIST_POW 64

typedef struct histogram {
    uint64_t buckets[HIST_POW][HIST_SUB];
    uint64_t count, max;
} histogram;

static inline void histogram_init(histogram *h) { memset(h, 0, sizeof *h); }

static inline void histogram_record(histogram *h, uint64_t v) {
    if (v == 0) v = 1;
    int p = 63 - __builtin_clzll(v);
    /* the position within [2^p, 2^(p+1)) in 32 steps */
    uint64_t sub = p >= 5 ? (v >> (p - 5)) & (HIST_SUB - 1) : (v << (5 - p)) & (HIST_SUB - 1);
    h->buckets[p][sub]++;
    h->count++;
    if (v > h->max) h->max = v;
}

/* The value at percentile q (0-100): the upper edge of the bucket holding it. */
static inline double histogram_percentile(const histogram *h, double q) {
    if (h->count == 0) return 0;
    uint64_t rank = (uint64_t)((q / 100.0) * (double)h->count);
    if (rank >= h->count) rank = h->count - 1;
    uint64_t seen = 0;
    for (int p = 0; p < HIST_POW; p++) {
        for (int s = 0; s < HIST_SUB; s++) {
            seen += h->buckets[p][s];
            if (seen > rank) {
                double base = (double)(1ull << p);
                double edge = base + base * (s + 1) / HIST_SUB;
                return edge < (double)h->max ? edge : (double)h->max;
            }
        }
    }
    return (double)h->max;
}

#endif
