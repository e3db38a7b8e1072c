/* HTTP/1.1 request heads (RFC 9112) and the WebSocket opening handshake (RFC 6455
 * section 4). See http.h for the contract.
 *
 * Choices the header leaves open, made here:
 * - An upgrade with a method other than GET is 400, not 405: a 405 must carry an Allow
 *   header, and the core answers failed upgrades only with 400, 426 or 431.
 * - Duplicate Host, Sec-WebSocket-Key, Sec-WebSocket-Version or Origin headers are 400:
 *   the request is ambiguous (for Origin, an allow-list check could read the wrong one).
 *   A single Sec-WebSocket-Version other than "13" (including a list like "13, 8") is 426.
 *   The version is checked before the key, so that a pre-RFC 6455 client that sends no
 *   Sec-WebSocket-Key learns from the 426 which version to speak.
 * - lv_http_response_head completes a 426 by itself: RFC 9110 15.5.22 requires an Upgrade
 *   header in it, RFC 9110 7.8 then requires "Upgrade" in Connection, and RFC 6455 4.4
 *   requires Sec-WebSocket-Version. So a 426 gets "Connection: close, Upgrade", and
 *   "Upgrade: websocket" and "Sec-WebSocket-Version: 13" unless the caller's extra header
 *   lines already hold that header. Callers may pass them or not.
 * - lv_http_response_head leaves out Content-Length for 1xx, 204 and 304 (RFC 9110 8.6)
 *   and returns 0 if body_len is not 0 for them; it also returns 0 when the extra header
 *   lines are not well-formed "Name: value\r\n" lines, so that a stray CR or LF cannot
 *   split the response.
 * - Absolute-form targets ("http://host/path", RFC 6455 4.1 allows a WebSocket URI there)
 *   are accepted; path and query are taken after the authority ("/" when the path is
 *   empty). Asterisk-form and authority-form are 400. Request targets must be visible
 *   ASCII: bytes outside 0x21..0x7E are 400, as is '#' (a fragment is never sent).
 */
#include "http.h"

#include <string.h>

#include "sha1.h"

/* ---- character classes --------------------------------------------------------------- */

/* RFC 9110 5.6.2 tchar. */
static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c) {
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive equality of a counted string and a NUL-terminated one. */
static int ieq(const char *a, size_t alen, const char *b) {
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int fail(const char **reason, int status, const char *why) {
    if (reason)
        *reason = why;
    return status;
}

/* ---- request head -------------------------------------------------------------------- */

size_t lv_http_head_end(const char *buf, size_t len, size_t *scanned) {
    size_t from = *scanned > len ? len : *scanned;
    /* A terminator ending at or after `from` starts at most 3 bytes before it, so restart
     * the matcher there: bytes earlier than that were already ruled out. */
    size_t i = from > 3 ? from - 3 : 0;
    int state = 0; /* how many bytes of "\r\n\r\n" the bytes just before i match */
    for (; i < len; i++) {
        char c = buf[i];
        if (c == '\r')
            state = (state == 2) ? 3 : 1;
        else if (c == '\n' && (state == 1 || state == 3))
            state++;
        else
            state = 0;
        if (state == 4) {
            /* Stop just before the terminator, so that calling again finds it again. */
            *scanned = i + 1 - 4;
            return i + 1;
        }
    }
    *scanned = len;
    return 0;
}

/* Index of the first "\r\n" at or after pos, or len when there is none. */
static size_t find_crlf(const char *buf, size_t pos, size_t len) {
    for (size_t i = pos; i + 1 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n')
            return i;
    return len;
}

/* Splits target[from..n) into path and query at the first '?'. */
static void split_path(lv_http_request *req, size_t from) {
    const char *t = req->target;
    size_t n = req->target_len;
    const char *q = memchr(t + from, '?', n - from);
    size_t path_end = q ? (size_t)(q - t) : n;
    if (path_end == from) {
        /* Absolute-form with an empty path means "/" (RFC 9112 3.2.2). */
        req->path = "/";
        req->path_len = 1;
    } else {
        req->path = t + from;
        req->path_len = path_end - from;
    }
    if (q) {
        req->query = q + 1;
        req->query_len = n - path_end - 1;
    } else {
        req->query = t + n;
        req->query_len = 0;
    }
}

/* Where the path starts in an absolute-form target ("http://authority/..."), or 0 when
 * the target is not one. */
static size_t absolute_form_path(const char *t, size_t n) {
    size_t i;
    if (n >= 7 && ieq(t, 7, "http://"))
        i = 7;
    else if (n >= 8 && ieq(t, 8, "https://"))
        i = 8;
    else
        return 0;
    size_t start = i;
    while (i < n && t[i] != '/' && t[i] != '?')
        i++;
    return i > start ? i : 0; /* an empty authority is not a URI we can serve */
}

static int parse_request_line(const char *line, size_t n, lv_http_request *req,
                              const char **reason) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0)
        return fail(reason, 400, i < n && line[i] == ' ' ? "missing method" : "invalid method");
    if (i == n)
        return fail(reason, 400, "malformed request line");
    if (line[i] != ' ')
        return fail(reason, 400, "invalid method");
    req->method = line;
    req->method_len = i;

    size_t start = ++i;
    for (; i < n && line[i] != ' '; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x21 || c > 0x7E || c == '#')
            return fail(reason, 400, "invalid character in request target");
    }
    if (i == start)
        return fail(reason, 400, "missing request target");
    if (i == n)
        return fail(reason, 400, "missing HTTP version");
    req->target = line + start;
    req->target_len = i - start;

    /* HTTP-version is case-sensitive "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3). */
    const char *v = line + i + 1;
    size_t vn = n - i - 1;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return fail(reason, 400, "malformed HTTP version");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(reason, 505, "unsupported HTTP version");
    req->version_minor = v[7] - '0';

    size_t path_from;
    if (req->target[0] == '/')
        path_from = 0;
    else if ((path_from = absolute_form_path(req->target, req->target_len)) == 0)
        return fail(reason, 400, "request target must be a path");
    split_path(req, path_from);
    return 0;
}

static int parse_header_line(const char *line, size_t n, lv_http_request *req,
                             const char **reason) {
    if (is_ows(line[0]))
        return fail(reason, 400, "obsolete line folding");
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == n || (line[i] != ':' && !memchr(line + i, ':', n - i)))
        return fail(reason, 400, "header line without colon");
    if (line[i] != ':') {
        /* RFC 9112 5.1: whitespace before the colon must be rejected. */
        return fail(reason, 400, is_ows(line[i]) ? "whitespace before colon in header"
                                                 : "invalid character in header name");
    }
    if (i == 0)
        return fail(reason, 400, "empty header name");

    size_t vs = i + 1, ve = n;
    for (size_t j = vs; j < ve; j++) {
        unsigned char c = (unsigned char)line[j];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return fail(reason, 400, "control character in header value");
    }
    while (vs < ve && is_ows(line[vs]))
        vs++;
    while (ve > vs && is_ows(line[ve - 1]))
        ve--;

    if (req->header_count == LV_HTTP_MAX_HEADERS)
        return fail(reason, 431, "too many headers");
    clive_header *h = &req->headers[req->header_count++];
    h->name = line;
    h->name_len = i;
    h->value = line + vs;
    h->value_len = ve - vs;
    return 0;
}

int lv_http_parse(const char *buf, size_t len, lv_http_request *req, const char **reason) {
    req->method = req->target = req->path = req->query = NULL;
    req->method_len = req->target_len = req->path_len = req->query_len = 0;
    req->version_minor = 0;
    req->header_count = 0;
    if (reason)
        *reason = NULL;

    size_t pos = 0;
    /* RFC 9112 2.2: a server should ignore empty lines received before the request line. */
    while (len - pos >= 2 && buf[pos] == '\r' && buf[pos + 1] == '\n')
        pos += 2;

    size_t eol = find_crlf(buf, pos, len);
    if (eol == len)
        return fail(reason, 400, "incomplete request head");
    int rc = parse_request_line(buf + pos, eol - pos, req, reason);
    if (rc)
        return rc;
    pos = eol + 2;

    for (;;) {
        eol = find_crlf(buf, pos, len);
        if (eol == len)
            return fail(reason, 400, "incomplete request head");
        if (eol == pos) {
            pos += 2; /* the blank line ends the head */
            break;
        }
        rc = parse_header_line(buf + pos, eol - pos, req, reason);
        if (rc)
            return rc;
        pos = eol + 2;
    }
    if (pos != len)
        return fail(reason, 400, "bytes after the request head");
    return 0;
}

const clive_header *lv_http_header(const lv_http_request *req, const char *name) {
    for (size_t i = 0; i < req->header_count; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name))
            return &req->headers[i];
    return NULL;
}

/* ---- lists --------------------------------------------------------------------------- */

/* The next non-empty item of a comma-separated list, trimmed of OWS (RFC 9110 5.6.1 lets
 * senders leave empty items). Returns 0 at the end of the list. */
static int next_item(const char *v, size_t n, size_t *pos, const char **item, size_t *item_len) {
    while (*pos < n) {
        size_t s = *pos;
        while (*pos < n && v[*pos] != ',')
            (*pos)++;
        size_t e = *pos;
        if (*pos < n)
            (*pos)++; /* past the comma */
        while (s < e && is_ows(v[s]))
            s++;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e > s) {
            *item = v + s;
            *item_len = e - s;
            return 1;
        }
    }
    return 0;
}

int lv_http_list_has(const char *value, size_t value_len, const char *token) {
    size_t pos = 0, n;
    const char *item;
    while (next_item(value, value_len, &pos, &item, &n))
        if (ieq(item, n, token))
            return 1;
    return 0;
}

/* Whether any header named `name` lists `token`: a list may be split over several header
 * lines with the same name (RFC 9110 5.3). */
static int headers_list_has(const lv_http_request *req, const char *name, const char *token) {
    for (size_t i = 0; i < req->header_count; i++) {
        const clive_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, name) && lv_http_list_has(h->value, h->value_len, token))
            return 1;
    }
    return 0;
}

/* How many headers are named `name`; *first gets the first one (or NULL). */
static size_t header_count(const lv_http_request *req, const char *name,
                           const clive_header **first) {
    size_t count = 0;
    *first = NULL;
    for (size_t i = 0; i < req->header_count; i++) {
        if (ieq(req->headers[i].name, req->headers[i].name_len, name)) {
            if (count++ == 0)
                *first = &req->headers[i];
        }
    }
    return count;
}

/* ---- upgrade ------------------------------------------------------------------------- */

/* A Host value is uri-host [":" port] (RFC 9110 7.2): reject what cannot appear there,
 * notably whitespace, '/', '@' (userinfo) and an empty value. */
static int host_ok(const char *v, size_t n) {
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c != 0 && strchr("-._~%!$&'()*+,;=:[]", c) != NULL);
        if (!ok)
            return 0;
    }
    return 1;
}

/* The client's first Sec-WebSocket-Protocol item that the server speaks, or -1. */
static int pick_subprotocol(const lv_http_request *req, const char *const *protocols,
                            size_t nprotocols) {
    for (size_t i = 0; i < req->header_count; i++) {
        const clive_header *h = &req->headers[i];
        if (!ieq(h->name, h->name_len, "Sec-WebSocket-Protocol"))
            continue;
        size_t pos = 0, n;
        const char *item;
        while (next_item(h->value, h->value_len, &pos, &item, &n)) {
            for (size_t k = 0; k < nprotocols; k++) {
                /* Subprotocol names compare case-sensitively (RFC 6455 4.1). */
                if (protocols[k] && strlen(protocols[k]) == n && memcmp(protocols[k], item, n) == 0)
                    return (int)k;
            }
        }
    }
    return -1;
}

int lv_upgrade_check(const lv_http_request *req, const char *const *protocols, size_t nprotocols,
                     lv_upgrade *out, const char **reason) {
    out->is_upgrade = 0;
    out->subprotocol = -1;
    out->accept[0] = '\0';
    out->origin = NULL;
    out->origin_len = 0;
    if (reason)
        *reason = NULL;

    /* Only a request that names websocket in Upgrade is an attempt; any other Upgrade
     * (h2c, ...) may be ignored by the server (RFC 9110 7.8), so it is plain HTTP. */
    if (!headers_list_has(req, "Upgrade", "websocket"))
        return 0;

    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return fail(reason, 400, "WebSocket upgrade must use GET");
    if (req->version_minor != 1)
        return fail(reason, 400, "WebSocket upgrade needs HTTP/1.1");

    const clive_header *h;
    size_t n = header_count(req, "Host", &h);
    if (n == 0)
        return fail(reason, 400, "missing Host");
    if (n > 1)
        return fail(reason, 400, "duplicate Host");
    if (!host_ok(h->value, h->value_len))
        return fail(reason, 400, "invalid Host");

    if (!headers_list_has(req, "Connection", "upgrade"))
        return fail(reason, 400, "Connection does not list upgrade");

    n = header_count(req, "Sec-WebSocket-Version", &h);
    if (n == 0)
        return fail(reason, 426, "missing Sec-WebSocket-Version");
    if (n > 1)
        return fail(reason, 400, "duplicate Sec-WebSocket-Version");
    if (h->value_len != 2 || memcmp(h->value, "13", 2) != 0)
        return fail(reason, 426, "unsupported Sec-WebSocket-Version");

    const clive_header *key;
    n = header_count(req, "Sec-WebSocket-Key", &key);
    if (n == 0)
        return fail(reason, 400, "missing Sec-WebSocket-Key");
    if (n > 1)
        return fail(reason, 400, "duplicate Sec-WebSocket-Key");
    uint8_t nonce[18]; /* 24 base64 characters decode to at most 18 bytes */
    if (key->value_len != 24 ||
        lv_base64_decode(key->value, key->value_len, nonce, sizeof nonce) != 16)
        return fail(reason, 400, "invalid Sec-WebSocket-Key");

    n = header_count(req, "Origin", &h);
    if (n > 1)
        return fail(reason, 400, "duplicate Origin");
    if (h) {
        out->origin = h->value;
        out->origin_len = h->value_len;
    }

    out->subprotocol = pick_subprotocol(req, protocols, nprotocols);
    lv_websocket_accept(key->value, key->value_len, out->accept);
    out->is_upgrade = 1;
    return 0;
}

/* ---- responses ----------------------------------------------------------------------- */

/* Appends to a fixed buffer; once something does not fit, everything after is dropped
 * and the result is reported as 0. */
typedef struct writer {
    char *out;
    size_t cap, len;
    int overflow;
} writer;

static void put(writer *w, const char *s, size_t n) {
    if (n == 0 || w->overflow)
        return;
    if (n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->out + w->len, s, n);
    w->len += n;
}

static void put_str(writer *w, const char *s) {
    put(w, s, strlen(s));
}

static void put_uint(writer *w, size_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(w, tmp + i, sizeof tmp - i);
}

static size_t finish(const writer *w) {
    return w->overflow ? 0 : w->len;
}

size_t lv_upgrade_response(char *out, size_t cap, const lv_upgrade *u, const char *protocol) {
    if (!memchr(u->accept, '\0', sizeof u->accept) || strlen(u->accept) != 28)
        return 0;
    if (protocol) {
        /* The name comes from server configuration; keep it from breaking the head. */
        if (!*protocol)
            return 0;
        for (const char *p = protocol; *p; p++)
            if (!is_tchar((unsigned char)*p))
                return 0;
    }
    writer w = {out, cap, 0, 0};
    put_str(&w, "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Accept: ");
    put(&w, u->accept, 28);
    put_str(&w, "\r\n");
    if (protocol) {
        put_str(&w, "Sec-WebSocket-Protocol: ");
        put_str(&w, protocol);
        put_str(&w, "\r\n");
    }
    put_str(&w, "\r\n");
    return finish(&w);
}

/* Whether extra[0..n) is zero or more "Name: value\r\n" lines with token names and no
 * other CR or LF (an empty line would end the head early). */
static int extra_ok(const char *extra, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        size_t eol = find_crlf(extra, pos, n);
        if (eol == n)
            return 0;
        size_t i = pos;
        while (i < eol && is_tchar((unsigned char)extra[i]))
            i++;
        if (i == pos || i == eol || extra[i] != ':')
            return 0;
        for (; i < eol; i++) {
            unsigned char c = (unsigned char)extra[i];
            if ((c < 0x20 && c != '\t') || c == 0x7F)
                return 0;
        }
        pos = eol + 2;
    }
    return 1;
}

/* Whether the (well-formed) extra lines hold a header named `name`. */
static int extra_has(const char *extra, size_t n, const char *name) {
    size_t pos = 0;
    while (pos < n) {
        size_t eol = find_crlf(extra, pos, n);
        const char *colon = memchr(extra + pos, ':', eol - pos);
        if (colon && ieq(extra + pos, (size_t)(colon - (extra + pos)), name))
            return 1;
        pos = eol + 2;
    }
    return 0;
}

size_t lv_http_response_head(char *out, size_t cap, int status, const char *extra_headers,
                             size_t extra_len, size_t body_len) {
    if (status < 100 || status > 999)
        return 0;
    if (extra_len && (!extra_headers || !extra_ok(extra_headers, extra_len)))
        return 0;
    /* RFC 9110 8.6: no Content-Length in 1xx and 204; in a 304 it would describe the
     * representation, not this (empty) body. */
    int bodiless = status < 200 || status == 204 || status == 304;
    if (bodiless && body_len != 0)
        return 0;

    writer w = {out, cap, 0, 0};
    char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10)};
    put_str(&w, "HTTP/1.1 ");
    put(&w, code, 3);
    put_str(&w, " ");
    put_str(&w, lv_http_status_text(status));
    put_str(&w, status == 426 ? "\r\nConnection: close, Upgrade\r\n" : "\r\nConnection: close\r\n");
    if (!bodiless) {
        put_str(&w, "Content-Length: ");
        put_uint(&w, body_len);
        put_str(&w, "\r\n");
    }
    if (status == 426) {
        if (!extra_has(extra_headers, extra_len, "Upgrade"))
            put_str(&w, "Upgrade: websocket\r\n");
        if (!extra_has(extra_headers, extra_len, "Sec-WebSocket-Version"))
            put_str(&w, "Sec-WebSocket-Version: 13\r\n");
    }
    put(&w, extra_headers, extra_len);
    put_str(&w, "\r\n");
    return finish(&w);
}

const char *lv_http_status_text(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
