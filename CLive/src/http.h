/* HTTP/1.1 request heads and the WebSocket upgrade handshake (RFC 6455 section 4,
 * RFC 9110/9112). Pure: no I/O, no allocation. The parsed request points into the
 * caller's buffer, which must outlive it. */
#ifndef LIVE_HTTP_H
#define LIVE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "clive.h"

#define LV_HTTP_MAX_HEADERS 64

typedef struct lv_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent: path plus optional "?query" */
    size_t target_len;
    const char *path;
    size_t path_len;
    const char *query; /* after '?', without it; empty when absent */
    size_t query_len;
    int version_minor; /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    clive_header headers[LV_HTTP_MAX_HEADERS];
    size_t header_count;
} lv_http_request;

/* Finds the end of a request head ("\r\n\r\n"; a bare "\n\n" is not accepted).
 * `buf[0..len)` holds everything received so far; *scanned holds how many bytes earlier
 * calls already scanned (start it at 0), so each byte is looked at about once however
 * the head is split across reads. Returns the head's length including the blank line,
 * or 0 when more bytes are needed. */
size_t lv_http_head_end(const char *buf, size_t len, size_t *scanned);

/* Parses a complete head of length len (as found by lv_http_head_end). Returns 0, or
 * an HTTP status to answer with and a short static *reason:
 *   400 malformed request line or header line, bad header name characters, obs-fold;
 *   431 more than LV_HTTP_MAX_HEADERS headers;
 *   505 a version other than HTTP/1.0 or HTTP/1.1.
 * Header values are trimmed of leading and trailing spaces and tabs. */
int lv_http_parse(const char *buf, size_t len, lv_http_request *req, const char **reason);

/* The first header named `name` (case-insensitive), or NULL. */
const clive_header *lv_http_header(const lv_http_request *req, const char *name);

/* Whether a comma-separated header value list (e.g. Connection: keep-alive, Upgrade)
 * contains `token`, case-insensitively, ignoring optional whitespace around items. */
int lv_http_list_has(const char *value, size_t value_len, const char *token);

typedef struct lv_upgrade {
    int is_upgrade;      /* the request asks for a WebSocket upgrade (and passed the checks) */
    int subprotocol;     /* index into the server's protocol list, -1 when none was agreed */
    char accept[29];     /* Sec-WebSocket-Accept value, NUL-terminated */
    const char *origin;  /* Origin header value or NULL */
    size_t origin_len;
} lv_upgrade;

/* Classifies a parsed request and validates a WebSocket upgrade:
 * - a request with no "Upgrade: websocket" header is plain HTTP: returns 0 with
 *   out->is_upgrade == 0 (the caller hands it to the plain HTTP handler);
 * - an upgrade must be GET, HTTP/1.1, have Host, a Connection header whose list holds
 *   the "upgrade" token, a Sec-WebSocket-Key that is base64 of exactly 16 bytes, and
 *   Sec-WebSocket-Version: 13. Returns 400 (with *reason) for a violation, 426 for a
 *   missing or different version (the response must carry Sec-WebSocket-Version: 13).
 * Subprotocol: the client's Sec-WebSocket-Protocol lists (all such headers, comma-
 * separated) are walked in the client's order; the first name that equals one of
 * protocols[0..nprotocols) (case-sensitive, RFC 6455 4.1) is chosen. */
int lv_upgrade_check(const lv_http_request *req, const char *const *protocols, size_t nprotocols,
                     lv_upgrade *out, const char **reason);

/* Writes the "101 Switching Protocols" response for an accepted upgrade to out (capacity
 * cap), echoing `protocol` when not NULL. Returns the length, or 0 if it does not fit. */
size_t lv_upgrade_response(char *out, size_t cap, const lv_upgrade *u, const char *protocol);

/* Writes the head of an "HTTP/1.1 <status> <reason phrase>" response: status line,
 * Connection: close, Content-Length: body_len, the caller's extra header lines (each
 * "Name: value\r\n"; may be NULL) and the blank line. The body goes out after it.
 * Returns the length, or 0 if it does not fit in cap. Used for rejections (400, 401,
 * 403, 426, 431, 503) and the plain HTTP handler's answers. */
size_t lv_http_response_head(char *out, size_t cap, int status, const char *extra_headers,
                             size_t extra_len, size_t body_len);

/* The standard reason phrase for a status ("Unknown" for others). */
const char *lv_http_status_text(int status);

#endif
