/* TLS with OpenSSL 3 on the event loops (see tls.h).
 *
 * No socket is ever handed to OpenSSL. Each SSL object reads through a small BIO from the
 * bytes its loop just read, and writes its records into the loop's output buffer, which
 * the session then sends itself. So a handshake or a record never blocks, one loop thread
 * serves every TLS session it owns, and an idle session holds no buffer: the loop's are
 * shared, and SSL_MODE_RELEASE_BUFFERS drops OpenSSL's own once they are empty. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

struct clive_tls {
    pthread_mutex_t lock; /* guards ctx: a reload swaps it while loops make sessions */
    SSL_CTX *ctx;
    char *cert_file, *key_file;
    atomic_uint refs;
};

struct lv_tls_conn {
    SSL *ssl;
    uint8_t *held; /* ciphertext the socket did not take yet */
    size_t held_len, held_pos;
};

/* --- the BIO over the loop's buffers ----------------------------------------------- */

static BIO_METHOD *loop_bio_method;
static pthread_once_t loop_bio_once = PTHREAD_ONCE_INIT;

static int loop_bio_write(BIO *b, const char *data, int len) {
    lv_tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (io->out_len + (size_t)len > io->out_cap) {
        size_t want = io->out_cap ? io->out_cap : 16384;
        while (want < io->out_len + (size_t)len) want *= 2;
        uint8_t *p = realloc(io->out, want);
        if (p == NULL) return -1;
        io->out = p;
        io->out_cap = want;
    }
    memcpy(io->out + io->out_len, data, (size_t)len);
    io->out_len += (size_t)len;
    return len;
}

static int loop_bio_read(BIO *b, char *out, int len) {
    lv_tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = io->in ? io->in_len - io->in_pos : 0;
    if (avail == 0) {
        BIO_set_retry_read(b); /* not an end: the next read event brings more */
        return -1;
    }
    size_t n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(out, io->in + io->in_pos, n);
    io->in_pos += n;
    return (int)n;
}

static long loop_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int loop_bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static void make_loop_bio_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "live loop");
    if (m == NULL) return;
    BIO_meth_set_write(m, loop_bio_write);
    BIO_meth_set_read(m, loop_bio_read);
    BIO_meth_set_ctrl(m, loop_bio_ctrl);
    BIO_meth_set_create(m, loop_bio_create);
    loop_bio_method = m;
}

/* --- certificates ------------------------------------------------------------------ */

/* OpenSSL's reason for the last failure, or the system's when a file could not be read. */
static void describe(char *msg, size_t cap, const char *what, const char *file) {
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "%s", strerror(errno));
    ERR_clear_error();
    if (msg && cap) snprintf(msg, cap, "%s %s: %s", what, file, reason);
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, http11, sizeof http11 - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }
    /* a client that offers only h2 gets no ALPN answer and may still upgrade over 1.1 */
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *load_context(const char *cert_file, const char *key_file, char *msg,
                             size_t cap) {
    FILE *f;
    if ((f = fopen(cert_file, "r")) == NULL) {
        describe(msg, cap, "cannot open certificate", cert_file);
        return NULL;
    }
    fclose(f);
    if ((f = fopen(key_file, "r")) == NULL) {
        describe(msg, cap, "cannot open key", key_file);
        return NULL;
    }
    fclose(f);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        describe(msg, cap, "cannot make a TLS context for", cert_file);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle sessions hold no record buffers; renegotiation (TLS 1.2) is a client's way to
     * make the server do handshakes at will, so it is refused. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* No server-side session cache (it would hold memory per client); resumption works
     * through tickets, which the client keeps. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        describe(msg, cap, "cannot use certificate", cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        describe(msg, cap, "cannot use key", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        describe(msg, cap, "key does not match certificate", cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int clive_tls_new(const char *cert_file, const char *key_file, clive_tls **out, char *msg,
                  size_t cap) {
    *out = NULL;
    if (msg && cap) msg[0] = 0;
    if (cert_file == NULL || key_file == NULL) return CLIVE_EINVAL;
    pthread_once(&loop_bio_once, make_loop_bio_method);
    if (loop_bio_method == NULL) return CLIVE_ENOMEM;
    SSL_CTX *ctx = load_context(cert_file, key_file, msg, cap);
    if (ctx == NULL) return CLIVE_EINVAL;
    clive_tls *t = calloc(1, sizeof *t);
    if (t) {
        t->cert_file = strdup(cert_file);
        t->key_file = strdup(key_file);
    }
    if (t == NULL || t->cert_file == NULL || t->key_file == NULL) {
        if (t) {
            free(t->cert_file);
            free(t->key_file);
        }
        free(t);
        SSL_CTX_free(ctx);
        return CLIVE_ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->ctx = ctx;
    atomic_init(&t->refs, 1);
    *out = t;
    return CLIVE_OK;
}

int clive_tls_reload(clive_tls *t, char *msg, size_t cap) {
    if (msg && cap) msg[0] = 0;
    SSL_CTX *ctx = load_context(t->cert_file, t->key_file, msg, cap);
    if (ctx == NULL) return CLIVE_EINVAL; /* the certificate in use stays */
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* sessions made from it hold their own references */
    return CLIVE_OK;
}

void lv_tls_retain(clive_tls *t) { atomic_fetch_add(&t->refs, 1); }

void lv_tls_release(clive_tls *t) {
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1) return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}

void clive_tls_free(clive_tls *t) { lv_tls_release(t); }

/* --- connections ------------------------------------------------------------------- */

lv_tls_conn *lv_tls_conn_new(clive_tls *t, lv_tls_io *io) {
    lv_tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    pthread_mutex_lock(&t->lock);
    c->ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->lock);
    BIO *bio = c->ssl ? BIO_new(loop_bio_method) : NULL;
    if (bio == NULL) {
        SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    BIO_set_data(bio, io);
    SSL_set_bio(c->ssl, bio, bio); /* one reference, owned by the SSL object */
    SSL_set_accept_state(c->ssl);
    return c;
}

lv_tls_conn *lv_tls_client_new(const char *host, const char *ca_file, bool insecure,
                               lv_tls_io *io, char *why, size_t cap) {
    pthread_once(&loop_bio_once, make_loop_bio_method);
    /* a context per connection: clients are few (an app, an agent, a CLI), and the
     * system's trust store is read lazily from its hashed directory */
    SSL_CTX *ctx = loop_bio_method ? SSL_CTX_new(TLS_client_method()) : NULL;
    lv_tls_conn *c = ctx ? calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
        describe(why, cap, "cannot make a TLS context for", host);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    int ok = 1;
    if (!insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
        if (!ok) describe(why, cap, "cannot load trusted certificates", ca_file ? ca_file : "(system)");
    }
    static const unsigned char http11[] = "\x08http/1.1";
    c->ssl = ok ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx); /* the SSL object keeps its reference */
    BIO *bio = c->ssl ? BIO_new(loop_bio_method) : NULL;
    if (bio == NULL) {
        if (ok) describe(why, cap, "cannot make a TLS connection to", host);
        SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    BIO_set_data(bio, io);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_alpn_protos(c->ssl, http11, sizeof http11 - 1);
    /* SNI names a host, never an address (RFC 6066 3) */
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    if (!is_ip) SSL_set_tlsext_host_name(c->ssl, host);
    if (!insecure && !SSL_set1_host(c->ssl, host)) {
        describe(why, cap, "cannot check the name", host);
        lv_tls_conn_free(c);
        return NULL;
    }
    SSL_set_connect_state(c->ssl);
    return c;
}

void lv_tls_conn_free(lv_tls_conn *c) {
    if (c == NULL) return;
    SSL_free(c->ssl);
    free(c->held);
    free(c);
}

bool lv_tls_ready(const lv_tls_conn *c) { return SSL_is_init_finished(c->ssl); }

bool lv_tls_fresh(const lv_tls_conn *c) { return SSL_in_before(c->ssl); }

static lv_tls_io *io_of(lv_tls_conn *c) { return BIO_get_data(SSL_get_rbio(c->ssl)); }

static void failure_reason(SSL *ssl, char *reason, size_t cap, const char *fallback) {
    unsigned long e = ERR_peek_last_error();
    long verify = SSL_get_verify_result(ssl);
    if (reason && cap) {
        if (verify != X509_V_OK) /* say which check failed, not just "verify failed" */
            snprintf(reason, cap, "certificate verify failed: %s",
                     X509_verify_cert_error_string(verify));
        else if (e)
            ERR_error_string_n(e, reason, cap);
        else
            snprintf(reason, cap, "%s", fallback);
    }
    ERR_clear_error();
}

lv_tls_result lv_tls_feed(lv_tls_conn *c, const uint8_t *in, size_t n, uint8_t *plain,
                          size_t cap, void (*on_plain)(void *ctx, uint8_t *p, size_t n),
                          void *ctx, bool *handshake_done, char *reason, size_t reason_cap) {
    lv_tls_io *io = io_of(c);
    lv_tls_result result = LV_TLS_MORE;
    io->in = in;
    io->in_len = n;
    io->in_pos = 0;
    ERR_clear_error(); /* another session's leftovers would confuse SSL_get_error */
    if (!SSL_is_init_finished(c->ssl)) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                failure_reason(c->ssl, reason, reason_cap, "handshake failed");
                result = LV_TLS_FAILED;
            }
            goto out;
        }
        *handshake_done = true;
    }
    size_t have = 0;
    for (;;) {
        if (have == cap) {
            on_plain(ctx, plain, have);
            have = 0;
        }
        int r = SSL_read(c->ssl, plain + have, (int)(cap - have < INT32_MAX ? cap - have : INT32_MAX));
        if (r > 0) {
            have += (size_t)r;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (have) on_plain(ctx, plain, have);
        if (e == SSL_ERROR_ZERO_RETURN) {
            result = LV_TLS_EOF;
        } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            failure_reason(c->ssl, reason, reason_cap, "record error");
            result = LV_TLS_FAILED;
        }
        break;
    }
out:
    io->in = NULL;
    io->in_len = io->in_pos = 0;
    return result;
}

int lv_tls_encrypt(lv_tls_conn *c, const void *p, size_t n) {
    ERR_clear_error();
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        int r = SSL_write(c->ssl, p, chunk);
        if (r <= 0) {
            ERR_clear_error();
            return -1;
        }
        p = (const uint8_t *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

void lv_tls_close_notify(lv_tls_conn *c) {
    if (!SSL_is_init_finished(c->ssl) || (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) return;
    SSL_shutdown(c->ssl);
    ERR_clear_error();
}

int lv_tls_hold(lv_tls_conn *c, const uint8_t *p, size_t n) {
    size_t keep = c->held_len - c->held_pos;
    uint8_t *q = malloc(keep + n);
    if (q == NULL) return -1;
    if (keep) memcpy(q, c->held + c->held_pos, keep);
    memcpy(q + keep, p, n);
    free(c->held);
    c->held = q;
    c->held_len = keep + n;
    c->held_pos = 0;
    return 0;
}

size_t lv_tls_held(const lv_tls_conn *c, const uint8_t **p) {
    *p = c->held ? c->held + c->held_pos : NULL;
    return c->held_len - c->held_pos;
}

void lv_tls_held_sent(lv_tls_conn *c, size_t n) {
    c->held_pos += n;
    if (c->held_pos >= c->held_len) { /* all out: an idle session keeps no buffer */
        free(c->held);
        c->held = NULL;
        c->held_len = c->held_pos = 0;
    }
}

bool lv_tls_looks_like_http(const uint8_t *p, size_t n) {
    /* A TLS connection starts with a handshake record (22); a request line starts with an
     * upper-case method. */
    return n > 0 && p[0] >= 'A' && p[0] <= 'Z';
}
