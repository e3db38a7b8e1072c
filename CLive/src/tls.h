/* TLS on the loops: OpenSSL over a BIO that reads the loop's receive buffer and writes
 * into the loop's output buffer, so that no call ever blocks and no thread is added.
 *
 * One session's TLS: its SSL object, plus the ciphertext a write could not send yet.
 * The WebSocket frames stay shared plaintext in the send queue; only the records are per
 * session, made when the session is flushed. */
#ifndef LIVE_TLS_H
#define LIVE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clive.h"

typedef struct lv_tls_conn lv_tls_conn;

/* What a loop lends its sessions' SSL objects while it works on one of them: the bytes
 * just read (the BIO's input) and the records SSL produced (its output). */
typedef struct lv_tls_io {
    const uint8_t *in;
    size_t in_len, in_pos;
    uint8_t *out;
    size_t out_len, out_cap;
} lv_tls_io;

/* A session's TLS state, from the listener's current certificate. NULL on failure. */
lv_tls_conn *lv_tls_conn_new(clive_tls *tls, lv_tls_io *io);
void lv_tls_conn_free(lv_tls_conn *c);

/* A client connection's TLS (wss://) to host: the server's certificate is verified against
 * ca_file (PEM; NULL: the system's trust store) and host, unless insecure; SNI and ALPN
 * http/1.1 are sent. NULL on failure, with the reason in why. */
lv_tls_conn *lv_tls_client_new(const char *host, const char *ca_file, bool insecure,
                               lv_tls_io *io, char *why, size_t cap);

typedef enum lv_tls_result {
    LV_TLS_MORE = 0,   /* progress made or more bytes needed */
    LV_TLS_EOF = 1,    /* the peer sent close_notify */
    LV_TLS_FAILED = 2, /* handshake or record error: the connection is unusable */
} lv_tls_result;

/* Feeds n received bytes: finishes the handshake when it can, then decrypts everything
 * they complete, calling on_plain with each run of plaintext (at most cap bytes, in the
 * buffer `plain`). Records SSL wants sent (handshake, alerts, tickets) are left in the
 * io's output. Sets *handshake_done when the handshake completed during this call. On
 * failure, reason names it (OpenSSL's words). */
lv_tls_result lv_tls_feed(lv_tls_conn *c, const uint8_t *in, size_t n, uint8_t *plain,
                          size_t cap, void (*on_plain)(void *ctx, uint8_t *p, size_t n),
                          void *ctx, bool *handshake_done, char *reason, size_t reason_cap);

/* Whether the handshake is complete. */
bool lv_tls_ready(const lv_tls_conn *c);
/* Whether no byte of the handshake has arrived yet. */
bool lv_tls_fresh(const lv_tls_conn *c);

/* Encrypts n plaintext bytes into the io's output (as records of up to 16 KiB). Returns
 * 0, or -1 on an SSL error. */
int lv_tls_encrypt(lv_tls_conn *c, const void *p, size_t n);

/* Queues close_notify into the io's output. */
void lv_tls_close_notify(lv_tls_conn *c);

/* Ciphertext held back because the socket would not take it: appended, then sent first. */
int lv_tls_hold(lv_tls_conn *c, const uint8_t *p, size_t n);
/* The held-back bytes, and how many were sent since. */
size_t lv_tls_held(const lv_tls_conn *c, const uint8_t **p);
void lv_tls_held_sent(lv_tls_conn *c, size_t n);

/* Whether the first bytes on a TLS port look like plain HTTP (a request line) rather
 * than a TLS record. */
bool lv_tls_looks_like_http(const uint8_t *p, size_t n);

/* A listener's certificate holder keeps a reference while the server lives. */
void lv_tls_retain(clive_tls *tls);
void lv_tls_release(clive_tls *tls);

#endif
