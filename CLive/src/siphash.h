/* SipHash-2-4 (Aumasson and Bernstein): a keyed hash for tables whose keys a client
 * chooses. With a secret random key, a client cannot compute names that collide, so it
 * cannot turn a topic table's O(1) lookups into O(n) probe runs. */
#ifndef LIVE_SIPHASH_H
#define LIVE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 64-bit SipHash-2-4 of n bytes under a 128-bit key (k0, k1: the key's first and last
 * 8 bytes, little-endian). Any thread. */
uint64_t lv_siphash(uint64_t k0, uint64_t k1, const void *data, size_t n);

#endif
