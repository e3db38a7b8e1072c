/* Incremental UTF-8 validation (RFC 3629) for text messages and close reasons.
 * The state survives across calls, so a message split over fragments and reads is
 * checked as one stream; it reaches LV_UTF8_REJECT at the first byte that cannot
 * begin or continue a valid sequence (overlongs, surrogates, > U+10FFFF), which is
 * what lets a server fail fast with 1007 (Autobahn 6.4). */
#ifndef LIVE_UTF8_H
#define LIVE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define LV_UTF8_ACCEPT 0u /* at a character boundary: the text so far is valid */
#define LV_UTF8_REJECT 1u /* invalid: sticky, every later call returns it */

/* Feeds n bytes to the validator in state `state` (LV_UTF8_ACCEPT to start) and returns
 * the new state: LV_UTF8_ACCEPT, LV_UTF8_REJECT, or another value meaning "inside a
 * multi-byte sequence". A complete text is valid iff the final state is LV_UTF8_ACCEPT.
 * Pure; any thread. */
uint32_t lv_utf8_feed(uint32_t state, const uint8_t *bytes, size_t n);

/* Whether bytes[0..n) is a complete, valid UTF-8 text. */
int lv_utf8_valid(const uint8_t *bytes, size_t n);

#endif
