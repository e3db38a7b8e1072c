/* SHA-1 and base64, just enough for the Sec-WebSocket-Accept key (RFC 6455 4.2.2).
 * Written here rather than taken from libcrypto: the handshake needs one 60-byte digest,
 * and a dependency on OpenSSL for that would add a package to every install and a
 * library to every link. SHA-1 is not used for anything that needs collision resistance. */
#ifndef LIVE_SHA1_H
#define LIVE_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* out = SHA-1(data[0..n)). Pure; any thread. */
void lv_sha1(const void *data, size_t n, uint8_t out[20]);

/* Writes the standard base64 (with padding) of src[0..n) to dst, NUL-terminated; dst must
 * hold 4 * ((n + 2) / 3) + 1 bytes. Returns the length written, without the NUL. */
size_t lv_base64_encode(const uint8_t *src, size_t n, char *dst);

/* Decodes standard base64 (padding required, no whitespace) into dst (capacity cap).
 * Returns the decoded length, or -1 if the input is not valid base64 or does not fit. */
long lv_base64_decode(const char *src, size_t n, uint8_t *dst, size_t cap);

/* Writes the 28-character Sec-WebSocket-Accept value for a Sec-WebSocket-Key, plus NUL. */
void lv_websocket_accept(const char *key, size_t key_len, char out[29]);

#endif
