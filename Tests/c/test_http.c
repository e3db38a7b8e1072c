/* Tests for CLive/src/http.c: request heads, the WebSocket upgrade checks and the
 * responses, table-driven. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "http.h"
#include "sha1.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define REQ "GET /chat HTTP/1.1\r\n"
#define HOST "Host: server.example.com\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define END "\r\n"

static const char *const PROTOS[] = {"live.v1.json", "live.v1.msgpack"};

static int eqs(const char *p, size_t n, const char *s) {
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* ---- table of whole requests --------------------------------------------------------- */

typedef struct req_case {
    const char *name;
    const char *head;
    int parse;       /* expected lv_http_parse result */
    int check;       /* expected lv_upgrade_check result (when parsing succeeds) */
    int upgrade;     /* expected is_upgrade */
    int subprotocol; /* expected subprotocol index */
} req_case;

#define PARSE_FAIL(st) st, 0, 0, -1
#define CHECK_FAIL(st) 0, st, 0, -1
#define UPGRADE(sub) 0, 0, 1, sub
#define PLAIN 0, 0, 0, -1

static const req_case CASES[] = {
    /* valid upgrades in several spellings */
    {"rfc 6455 sample",
     "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\nOrigin: http://example.com\r\n"
     "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n",
     UPGRADE(-1)},
    {"minimal", REQ HOST UPG CONN KEY VER END, UPGRADE(-1)},
    {"lowercase names",
     REQ "host: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
         "sec-websocket-key: " RFC_KEY "\r\nsec-websocket-version: 13\r\n" END,
     UPGRADE(-1)},
    {"uppercase names",
     REQ "HOST: a\r\nUPGRADE: WEBSOCKET\r\nCONNECTION: UPGRADE\r\n"
         "SEC-WEBSOCKET-KEY: " RFC_KEY "\r\nSEC-WEBSOCKET-VERSION: 13\r\n" END,
     UPGRADE(-1)},
    {"connection keep-alive, Upgrade",
     REQ HOST UPG "Connection: keep-alive, Upgrade\r\n" KEY VER END, UPGRADE(-1)},
    {"connection: UPGRADE", REQ HOST UPG "connection: UPGRADE\r\n" KEY VER END, UPGRADE(-1)},
    {"Upgrade: WebSocket", REQ HOST "Upgrade: WebSocket\r\n" CONN KEY VER END, UPGRADE(-1)},
    {"upgrade list websocket first", REQ HOST "Upgrade: websocket, foo\r\n" CONN KEY VER END,
     UPGRADE(-1)},
    {"upgrade list websocket last", REQ HOST "Upgrade: foo/2, websocket\r\n" CONN KEY VER END,
     UPGRADE(-1)},
    {"two upgrade headers", REQ HOST "Upgrade: h2c\r\nUpgrade: websocket\r\n" CONN KEY VER END,
     UPGRADE(-1)},
    {"connection over two headers",
     REQ HOST UPG "Connection: keep-alive\r\nConnection: Upgrade\r\n" KEY VER END, UPGRADE(-1)},
    {"connection with empty items", REQ HOST UPG "Connection: , keep-alive,,Upgrade ,\r\n" KEY
     VER END, UPGRADE(-1)},
    {"extra whitespace",
     REQ "Host:    a:8080   \r\nUpgrade:websocket\r\nConnection:   keep-alive ,  Upgrade  \r\n"
         "Sec-WebSocket-Key:" RFC_KEY "\r\nSec-WebSocket-Version:    13   \r\n" END,
     UPGRADE(-1)},
    {"tabs around values",
     REQ "Host:\ta\t\r\nUpgrade:\twebsocket\t\r\nConnection: \tUpgrade\t \r\n"
         "Sec-WebSocket-Key:\t" RFC_KEY "\t\r\nSec-WebSocket-Version: \t13\t\r\n" END,
     UPGRADE(-1)},
    {"query string", "GET /chat?room=1&x=y HTTP/1.1\r\n" HOST UPG CONN KEY VER END, UPGRADE(-1)},
    {"absolute-form target", "GET http://server.example.com/chat?x=1 HTTP/1.1\r\n" HOST UPG CONN
     KEY VER END, UPGRADE(-1)},
    {"ipv6 host with port", REQ "Host: [::1]:8080\r\n" UPG CONN KEY VER END, UPGRADE(-1)},
    {"empty line before request line", "\r\n" REQ HOST UPG CONN KEY VER END, UPGRADE(-1)},
    {"headers in another order", REQ VER KEY CONN UPG HOST "User-Agent: t/1 (x; y)\r\n" END,
     UPGRADE(-1)},
    {"obs-text in a value", REQ HOST UPG CONN KEY VER "X-Name: caf\xc3\xa9\r\n" END,
     UPGRADE(-1)},

    /* malformed request lines */
    {"garbage request line", "HELLO\r\n" HOST END, PARSE_FAIL(400)},
    {"garbage with spaces", "what is this\r\n" HOST END, PARSE_FAIL(400)},
    {"control char first", "\x01GET /chat HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"invalid method chars", "G(ET /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END,
     PARSE_FAIL(400)},
    {"method with colon", "GET: /chat HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"leading space", " GET /chat HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"missing target", "GET  HTTP/1.1\r\n" HOST UPG CONN KEY VER END, PARSE_FAIL(400)},
    {"target and no version", "GET HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"missing version", "GET /chat\r\n" HOST END, PARSE_FAIL(400)},
    {"target without slash", "GET chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END,
     PARSE_FAIL(400)},
    {"asterisk-form", "OPTIONS * HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"authority-form", "CONNECT example.com:443 HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"absolute-form without authority", "GET http:///chat HTTP/1.1\r\n" HOST END,
     PARSE_FAIL(400)},
    {"ftp absolute-form", "GET ftp://a/chat HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"space inside target", "GET /a b HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"tab inside target", "GET /a\tb HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"control char in target", "GET /a\x01 HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"DEL in target", "GET /a\x7f HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"fragment in target", "GET /chat#x HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"double space before version", "GET /chat  HTTP/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"trailing space after version", "GET /chat HTTP/1.1 \r\n" HOST END, PARSE_FAIL(400)},
    {"bare CR in request line", "GET /chat HTTP/1.1\r\r\n" HOST END, PARSE_FAIL(400)},
    {"HTTP/2.0", "GET /chat HTTP/2.0\r\n" HOST UPG CONN KEY VER END, PARSE_FAIL(505)},
    {"HTTP/1.2", "GET /chat HTTP/1.2\r\n" HOST END, PARSE_FAIL(505)},
    {"HTTP/0.9", "GET /chat HTTP/0.9\r\n" HOST END, PARSE_FAIL(505)},
    {"HTTX/1.1", "GET /chat HTTX/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"lowercase http", "GET /chat http/1.1\r\n" HOST END, PARSE_FAIL(400)},
    {"HTTP/1", "GET /chat HTTP/1\r\n" HOST END, PARSE_FAIL(400)},
    {"HTTP/11.1", "GET /chat HTTP/11.1\r\n" HOST END, PARSE_FAIL(400)},
    {"HTTP/1.x", "GET /chat HTTP/1.x\r\n" HOST END, PARSE_FAIL(400)},

    /* malformed header lines */
    {"header without colon", REQ HOST "NoColonHere\r\n" UPG CONN KEY VER END, PARSE_FAIL(400)},
    {"header name and value without colon", REQ "Host server\r\n" END, PARSE_FAIL(400)},
    {"space before colon", REQ "Host : server\r\n" UPG CONN KEY VER END, PARSE_FAIL(400)},
    {"tab before colon", REQ HOST "Upgrade\t: websocket\r\n" CONN KEY VER END, PARSE_FAIL(400)},
    {"space inside name", REQ HOST "X Foo: a\r\n" END, PARSE_FAIL(400)},
    {"bad char in name", REQ HOST "X(Foo): a\r\n" END, PARSE_FAIL(400)},
    {"non-ascii name", REQ HOST "X\xc3\xa9: a\r\n" END, PARSE_FAIL(400)},
    {"empty header name", REQ HOST ": value\r\n" END, PARSE_FAIL(400)},
    {"obs-fold with space", REQ HOST "X-Foo: a\r\n  b\r\n" UPG CONN KEY VER END,
     PARSE_FAIL(400)},
    {"obs-fold with tab", REQ HOST "X-Foo: a\r\n\tb\r\n" END, PARSE_FAIL(400)},
    {"control char in value", REQ HOST "X-Foo: a\x01" "b\r\n" UPG CONN KEY VER END,
     PARSE_FAIL(400)},
    {"escape in value", REQ HOST "X-Foo: \x1b[31m\r\n" END, PARSE_FAIL(400)},
    {"DEL in value", REQ HOST "X-Foo: a\x7f\r\n" END, PARSE_FAIL(400)},
    {"bare CR in value", REQ HOST "X-Foo: a\rb\r\n" END, PARSE_FAIL(400)},
    {"bare LF in value", REQ HOST "X-Foo: a\nb\r\n" END, PARSE_FAIL(400)},
    {"bare LF line ending", REQ "Host: a\nX-Foo: b\r\n" END, PARSE_FAIL(400)},

    /* failed upgrade checks */
    {"no Host", REQ UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"two Hosts", REQ HOST UPG CONN KEY VER "Host: other.example.com\r\n" END,
     CHECK_FAIL(400)},
    {"two identical Hosts", REQ HOST HOST UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"empty Host", REQ "Host:\r\n" UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"Host with userinfo", REQ "Host: u@a\r\n" UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"Host with path", REQ "Host: a/b\r\n" UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"Host with space", REQ "Host: a b\r\n" UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"POST upgrade", "POST /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"lowercase get upgrade", "get /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END,
     CHECK_FAIL(400)},
    {"HTTP/1.0 upgrade", "GET /chat HTTP/1.0\r\n" HOST UPG CONN KEY VER END, CHECK_FAIL(400)},
    {"no Connection", REQ HOST UPG KEY VER END, CHECK_FAIL(400)},
    {"Connection without upgrade", REQ HOST UPG "Connection: keep-alive\r\n" KEY VER END,
     CHECK_FAIL(400)},
    {"Connection: upgraded", REQ HOST UPG "Connection: upgraded\r\n" KEY VER END,
     CHECK_FAIL(400)},
    {"Connection: upgrade2", REQ HOST UPG "Connection: keep-alive, upgrade2\r\n" KEY VER END,
     CHECK_FAIL(400)},
    {"Connection: up grade", REQ HOST UPG "Connection: up grade\r\n" KEY VER END,
     CHECK_FAIL(400)},
    {"upgrade token in another header", REQ HOST UPG "X-Connection: Upgrade\r\n" KEY VER END,
     CHECK_FAIL(400)},
    {"missing key", REQ HOST UPG CONN VER END, CHECK_FAIL(400)},
    {"empty key", REQ HOST UPG CONN "Sec-WebSocket-Key:\r\n" VER END, CHECK_FAIL(400)},
    {"key of 15 bytes", REQ HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" VER END,
     CHECK_FAIL(400)},
    {"key of 17 bytes",
     REQ HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" VER END,
     CHECK_FAIL(400)},
    {"key of 18 bytes",
     REQ HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n" VER END,
     CHECK_FAIL(400)},
    {"key not base64",
     REQ HOST UPG CONN "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n" VER END,
     CHECK_FAIL(400)},
    {"key without padding",
     REQ HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" VER END,
     CHECK_FAIL(400)},
    {"key with inner space",
     REQ HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n" VER END,
     CHECK_FAIL(400)},
    {"two keys", REQ HOST UPG CONN KEY KEY VER END, CHECK_FAIL(400)},
    {"version 8", REQ HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n" END, CHECK_FAIL(426)},
    {"version 013", REQ HOST UPG CONN KEY "Sec-WebSocket-Version: 013\r\n" END,
     CHECK_FAIL(426)},
    {"version list", REQ HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n" END,
     CHECK_FAIL(426)},
    {"empty version", REQ HOST UPG CONN KEY "Sec-WebSocket-Version:\r\n" END, CHECK_FAIL(426)},
    {"missing version", REQ HOST UPG CONN KEY END, CHECK_FAIL(426)},
    {"missing version and key (old client)", REQ HOST UPG CONN END, CHECK_FAIL(426)},
    {"two versions", REQ HOST UPG CONN KEY VER VER END, CHECK_FAIL(400)},
    {"two Origins", REQ HOST UPG CONN KEY VER "Origin: http://a\r\nOrigin: http://b\r\n" END,
     CHECK_FAIL(400)},

    /* plain HTTP */
    {"GET /healthz", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", PLAIN},
    {"GET without Host", "GET /healthz HTTP/1.1\r\n\r\n", PLAIN},
    {"HTTP/1.0 plain", "GET / HTTP/1.0\r\n\r\n", PLAIN},
    {"POST with body headers",
     "POST /api/items?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
     "Content-Length: 13\r\n\r\n",
     PLAIN},
    {"Upgrade h2c", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", PLAIN},
    {"Upgrade websocket2", REQ HOST "Upgrade: websocket2\r\n" CONN KEY VER END, PLAIN},
    {"websocket in another header", REQ HOST "X-Upgrade: websocket\r\n" CONN KEY VER END, PLAIN},
    {"empty Upgrade", REQ HOST "Upgrade:\r\n" CONN KEY VER END, PLAIN},
};

static void run_case(const char *name, const char *buf, size_t len, int want_parse,
                     int want_check, int want_upgrade, int want_sub) {
    size_t scanned = 0;
    CHECK_ROW(lv_http_head_end(buf, len, &scanned) == len, name);

    lv_http_request req;
    const char *reason = "unset";
    int rc = lv_http_parse(buf, len, &req, &reason);
    CHECK_ROW(rc == want_parse, name);
    if (rc != 0) {
        CHECK_ROW(reason != NULL && reason[0] != '\0', name);
        return;
    }
    if (want_parse != 0)
        return;
    CHECK_ROW(reason == NULL, name);

    lv_upgrade up;
    reason = "unset";
    rc = lv_upgrade_check(&req, PROTOS, 2, &up, &reason);
    CHECK_ROW(rc == want_check, name);
    CHECK_ROW(up.is_upgrade == want_upgrade, name);
    if (rc != 0) {
        CHECK_ROW(reason != NULL && reason[0] != '\0', name);
        return;
    }
    CHECK_ROW(reason == NULL, name);
    CHECK_ROW(up.subprotocol == want_sub, name);
    if (want_upgrade)
        CHECK_ROW(strcmp(up.accept, RFC_ACCEPT) == 0, name);
    else
        CHECK_ROW(up.accept[0] == '\0' && up.origin == NULL, name);
}

static void test_cases(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const req_case *c = &CASES[i];
        run_case(c->name, c->head, strlen(c->head), c->parse, c->check, c->upgrade,
                 c->subprotocol);
    }
}

/* ---- header counts -------------------------------------------------------------------- */

/* A valid upgrade with `total` headers: fillers first, the five required ones last. */
static size_t build_many(char *buf, size_t cap, int total) {
    size_t n = (size_t)snprintf(buf, cap, "%s", REQ);
    for (int i = 0; i < total - 5; i++)
        n += (size_t)snprintf(buf + n, cap - n, "X-Filler-%d: value %d\r\n", i, i);
    n += (size_t)snprintf(buf + n, cap - n, "%s", HOST UPG CONN KEY VER END);
    return n;
}

static void test_many_headers(void) {
    static char buf[8192];
    size_t n = build_many(buf, sizeof buf, 64);
    run_case("64 headers", buf, n, 0, 0, 1, -1);
    n = build_many(buf, sizeof buf, 65);
    run_case("65 headers", buf, n, 431, 0, 0, -1);
    n = build_many(buf, sizeof buf, 200);
    run_case("200 headers", buf, n, 431, 0, 0, -1);

    lv_http_request req;
    const char *reason;
    n = build_many(buf, sizeof buf, 64);
    CHECK_INT(lv_http_parse(buf, n, &req, &reason), 0);
    CHECK_INT(req.header_count, 64);
    CHECK(eqs(req.headers[63].name, req.headers[63].name_len, "Sec-WebSocket-Version"));
}

/* NUL bytes cannot sit in the string table. */
static void test_nul_bytes(void) {
    static const char in_value[] = REQ HOST "X-Foo: a\0b\r\n" END;
    static const char in_name[] = REQ HOST "X-F\0o: ab\r\n" END;
    static const char in_target[] = "GET /a\0b HTTP/1.1\r\n" HOST END;
    static const char in_method[] = "G\0T /a HTTP/1.1\r\n" HOST END;
    run_case("NUL in value", in_value, sizeof in_value - 1, 400, 0, 0, -1);
    run_case("NUL in name", in_name, sizeof in_name - 1, 400, 0, 0, -1);
    run_case("NUL in target", in_target, sizeof in_target - 1, 400, 0, 0, -1);
    run_case("NUL in method", in_method, sizeof in_method - 1, 400, 0, 0, -1);
}

/* ---- parsed fields --------------------------------------------------------------------- */

static void test_fields(void) {
    static const char head[] = "GET /chat/room?id=7&x=y%20z HTTP/1.1\r\n"
                               "Host:  server.example.com \r\n"
                               "Origin: https://app.example.com\r\n" UPG CONN KEY VER
                               "X-Empty:\r\n"
                               "X-Inner:  a \t b \r\n" END;
    lv_http_request req;
    const char *reason = "unset";
    CHECK_INT(lv_http_parse(head, sizeof head - 1, &req, &reason), 0);
    CHECK(reason == NULL);
    CHECK(eqs(req.method, req.method_len, "GET"));
    CHECK(eqs(req.target, req.target_len, "/chat/room?id=7&x=y%20z"));
    CHECK(eqs(req.path, req.path_len, "/chat/room"));
    CHECK(eqs(req.query, req.query_len, "id=7&x=y%20z"));
    CHECK_INT(req.version_minor, 1);
    CHECK_INT(req.header_count, 8);

    const clive_header *h = lv_http_header(&req, "host");
    CHECK(h != NULL && eqs(h->value, h->value_len, "server.example.com"));
    CHECK(h != NULL && eqs(h->name, h->name_len, "Host"));
    h = lv_http_header(&req, "X-EMPTY");
    CHECK(h != NULL && h->value_len == 0);
    h = lv_http_header(&req, "x-inner");
    CHECK(h != NULL && eqs(h->value, h->value_len, "a \t b"));
    CHECK(lv_http_header(&req, "X-Missing") == NULL);
    CHECK(lv_http_header(&req, "Hos") == NULL);

    lv_upgrade up;
    CHECK_INT(lv_upgrade_check(&req, NULL, 0, &up, &reason), 0);
    CHECK_INT(up.is_upgrade, 1);
    CHECK_INT(up.subprotocol, -1);
    CHECK(eqs(up.origin, up.origin_len, "https://app.example.com"));
    CHECK(strcmp(up.accept, RFC_ACCEPT) == 0);

    /* No query: empty, not NULL-dependent. */
    static const char plain[] = "HEAD /healthz HTTP/1.0\r\n\r\n";
    CHECK_INT(lv_http_parse(plain, sizeof plain - 1, &req, &reason), 0);
    CHECK(eqs(req.method, req.method_len, "HEAD"));
    CHECK(eqs(req.path, req.path_len, "/healthz"));
    CHECK_INT(req.query_len, 0);
    CHECK_INT(req.version_minor, 0);
    CHECK_INT(req.header_count, 0);
    CHECK_INT(lv_upgrade_check(&req, PROTOS, 2, &up, &reason), 0);
    CHECK_INT(up.is_upgrade, 0);

    /* Empty query and a '?' inside the query. */
    static const char q[] = "GET /a??b=? HTTP/1.1\r\n\r\n";
    CHECK_INT(lv_http_parse(q, sizeof q - 1, &req, &reason), 0);
    CHECK(eqs(req.path, req.path_len, "/a"));
    CHECK(eqs(req.query, req.query_len, "?b=?"));
    static const char q2[] = "GET /a? HTTP/1.1\r\n\r\n";
    CHECK_INT(lv_http_parse(q2, sizeof q2 - 1, &req, &reason), 0);
    CHECK(eqs(req.path, req.path_len, "/a"));
    CHECK_INT(req.query_len, 0);

    /* Absolute-form: path and query come after the authority. */
    static const char abs1[] = "GET HTTP://Example.com:80/p/q?r=1 HTTP/1.1\r\n\r\n";
    CHECK_INT(lv_http_parse(abs1, sizeof abs1 - 1, &req, &reason), 0);
    CHECK(eqs(req.target, req.target_len, "HTTP://Example.com:80/p/q?r=1"));
    CHECK(eqs(req.path, req.path_len, "/p/q"));
    CHECK(eqs(req.query, req.query_len, "r=1"));
    static const char abs2[] = "GET https://example.com?r=1 HTTP/1.1\r\n\r\n";
    CHECK_INT(lv_http_parse(abs2, sizeof abs2 - 1, &req, &reason), 0);
    CHECK(eqs(req.path, req.path_len, "/"));
    CHECK(eqs(req.query, req.query_len, "r=1"));
    static const char abs3[] = "GET http://example.com HTTP/1.1\r\n\r\n";
    CHECK_INT(lv_http_parse(abs3, sizeof abs3 - 1, &req, &reason), 0);
    CHECK(eqs(req.path, req.path_len, "/"));
    CHECK_INT(req.query_len, 0);

    /* The length must be exactly the head: short is incomplete, long has extra bytes. */
    static const char body[] = "POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
    size_t scanned = 0;
    size_t end = lv_http_head_end(body, sizeof body - 1, &scanned);
    CHECK_INT(end, sizeof body - 3);
    CHECK_INT(lv_http_parse(body, end, &req, &reason), 0);
    CHECK(eqs(req.method, req.method_len, "POST"));
    CHECK_INT(lv_http_parse(body, sizeof body - 1, &req, &reason), 400);
    CHECK_INT(lv_http_parse(body, end - 2, &req, &reason), 400);
    CHECK_INT(lv_http_parse(body, end - 1, &req, &reason), 400);
    CHECK_INT(lv_http_parse(body, 0, &req, &reason), 400);
    CHECK_INT(lv_http_parse("\r\n\r\n", 4, &req, &reason), 400);

    /* A NULL reason is allowed. */
    CHECK_INT(lv_http_parse("BAD\r\n\r\n", 7, &req, NULL), 400);
}

/* ---- subprotocols ---------------------------------------------------------------------- */

static void test_subprotocols(void) {
    static const struct {
        const char *name;
        const char *headers;
        int want;
    } rows[] = {
        {"client order wins", "Sec-WebSocket-Protocol: live.v1.msgpack, live.v1.json\r\n", 1},
        {"json first", "Sec-WebSocket-Protocol: live.v1.json, live.v1.msgpack\r\n", 0},
        {"unknown", "Sec-WebSocket-Protocol: foo\r\n", -1},
        {"unknown then known", "Sec-WebSocket-Protocol: foo, live.v1.json\r\n", 0},
        {"two headers",
         "Sec-WebSocket-Protocol: foo\r\nSec-WebSocket-Protocol: live.v1.msgpack\r\n", 1},
        {"two headers, first wins",
         "Sec-WebSocket-Protocol: live.v1.msgpack\r\nsec-websocket-protocol: live.v1.json\r\n", 1},
        {"case-sensitive", "Sec-WebSocket-Protocol: LIVE.V1.JSON\r\n", -1},
        {"prefix is not a match", "Sec-WebSocket-Protocol: live.v1, live.v1.json2\r\n", -1},
        {"whitespace around items", "Sec-WebSocket-Protocol:  ,\tlive.v1.json ,\r\n", 0},
        {"empty header", "Sec-WebSocket-Protocol:\r\n", -1},
        {"no header", "", -1},
    };
    char buf[1024];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int n = snprintf(buf, sizeof buf, "%s%s%s", REQ HOST UPG CONN KEY VER, rows[i].headers,
                         END);
        run_case(rows[i].name, buf, (size_t)n, 0, 0, 1, rows[i].want);
    }

    /* No server list: never a subprotocol. */
    static const char head[] =
        REQ HOST UPG CONN KEY VER "Sec-WebSocket-Protocol: live.v1.json\r\n" END;
    lv_http_request req;
    lv_upgrade up;
    const char *reason;
    CHECK_INT(lv_http_parse(head, sizeof head - 1, &req, &reason), 0);
    CHECK_INT(lv_upgrade_check(&req, NULL, 0, &up, &reason), 0);
    CHECK_INT(up.subprotocol, -1);
    static const char *const one[] = {"live.v1.json"};
    CHECK_INT(lv_upgrade_check(&req, one, 1, &up, &reason), 0);
    CHECK_INT(up.subprotocol, 0);
}

/* ---- lv_http_head_end ------------------------------------------------------------------ */

static uint32_t rng_state = 0x2545F491u;

static uint32_t rng(void) { /* xorshift32: fixed seed, same sequence every run */
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

/* The oracle: the first "\r\n\r\n" by brute force. */
static size_t naive_end(const char *buf, size_t len) {
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

/* Feeds buf in reads of `chunk` bytes (0: random sizes in 1..max_chunk) and checks that
 * the end turns up exactly once, on the first read that completes the terminator. */
static void feed(const char *name, const char *buf, size_t len, size_t chunk, size_t max_chunk) {
    size_t want = naive_end(buf, len);
    size_t have = 0, scanned = 0, found = 0;
    while (have < len) {
        size_t before = have;
        size_t step = chunk ? chunk : 1 + rng() % max_chunk;
        have = have + step > len ? len : have + step;
        size_t end = lv_http_head_end(buf, have, &scanned);
        CHECK_ROW(scanned <= have, name);
        if (end) {
            found++;
            CHECK_ROW(end == want && before < want && have >= want, name);
            /* Asking again gives the same answer. */
            CHECK_ROW(lv_http_head_end(buf, have, &scanned) == end, name);
            break;
        }
    }
    CHECK_ROW(found == (want ? 1u : 0u), name);
}

static void test_head_end(void) {
    static const char *const heads[] = {
        REQ HOST UPG CONN KEY VER END,
        "GET / HTTP/1.1\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody\r\n\r\n",
        "GET / HTTP/1.1\r\nA: \r\r\n\rb\r\n\n\r\r\n\r\n",
        "\r\n\r\n",
        "\r\r\r\n\r\r\n\r\n",
        "\n\n\r\n\n\r\n\r\n",
    };
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        const char *buf = heads[h];
        size_t len = strlen(buf), want = naive_end(buf, len);
        char name[64];
        snprintf(name, sizeof name, "head %zu", h);
        CHECK_ROW(want != 0, name);

        /* Growing prefixes one byte at a time: 0 until exactly `want` bytes are in. */
        size_t scanned = 0, found = 0;
        for (size_t have = 0; have <= len && !found; have++) {
            size_t end = lv_http_head_end(buf, have, &scanned);
            if (end) {
                found++;
                CHECK_ROW(have == want && end == want, name);
            }
        }
        CHECK_ROW(found == 1, name);

        /* Two reads, split at every boundary. */
        for (size_t k = 0; k <= len; k++) {
            scanned = 0;
            size_t end = lv_http_head_end(buf, k, &scanned);
            if (k < want) {
                CHECK_ROW(end == 0 && scanned == k, name);
                end = lv_http_head_end(buf, len, &scanned);
            }
            CHECK_ROW(end == want, name);
        }

        /* Reads of random sizes. */
        for (int r = 0; r < 50; r++)
            feed(name, buf, len, 0, 1 + (size_t)r % 9);
        feed(name, buf, len, 1, 0);
    }

    /* Bare LF pairs never end a head. */
    size_t scanned = 0;
    CHECK_INT(lv_http_head_end("GET / HTTP/1.1\n\n", 16, &scanned), 0);
    CHECK_INT(scanned, 16);
    scanned = 0;
    CHECK_INT(lv_http_head_end("GET / HTTP/1.1\r\n\n", 17, &scanned), 0);
    scanned = 0;
    CHECK_INT(lv_http_head_end("GET / HTTP/1.1\n\r\n", 17, &scanned), 0);
    scanned = 0;
    CHECK_INT(lv_http_head_end("", 0, &scanned), 0);

    /* Random buffers over a small alphabet, against the oracle. */
    static const char alphabet[] = "\r\n\r\nx";
    char buf[96];
    for (int t = 0; t < 3000; t++) {
        size_t len = 1 + rng() % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[rng() % 5];
        feed("random buffer", buf, len, 0, 1 + (size_t)t % 13);
    }
}

/* ---- responses ------------------------------------------------------------------------- */

static void test_accept(void) {
    char acc[29];
    lv_websocket_accept(RFC_KEY, strlen(RFC_KEY), acc);
    CHECK(strcmp(acc, RFC_ACCEPT) == 0);
}

static void test_upgrade_response(void) {
    static const char head[] = REQ HOST UPG CONN KEY VER
        "Sec-WebSocket-Protocol: chat, live.v1.msgpack\r\n" END;
    lv_http_request req;
    lv_upgrade up;
    const char *reason;
    CHECK_INT(lv_http_parse(head, sizeof head - 1, &req, &reason), 0);
    CHECK_INT(lv_upgrade_check(&req, PROTOS, 2, &up, &reason), 0);
    CHECK_INT(up.subprotocol, 1);

    static const char want_plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                     "\r\n";
    static const char want_proto[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                     "Sec-WebSocket-Protocol: live.v1.msgpack\r\n"
                                     "\r\n";
    char out[512];
    size_t n = lv_upgrade_response(out, sizeof out, &up, NULL);
    CHECK_INT(n, sizeof want_plain - 1);
    CHECK(n == sizeof want_plain - 1 && memcmp(out, want_plain, n) == 0);
    n = lv_upgrade_response(out, sizeof out, &up, PROTOS[up.subprotocol]);
    CHECK_INT(n, sizeof want_proto - 1);
    CHECK(n == sizeof want_proto - 1 && memcmp(out, want_proto, n) == 0);

    /* Exactly fits, one byte short, no room. */
    CHECK_INT(lv_upgrade_response(out, sizeof want_proto - 1, &up, PROTOS[1]),
              sizeof want_proto - 1);
    CHECK_INT(lv_upgrade_response(out, sizeof want_proto - 2, &up, PROTOS[1]), 0);
    CHECK_INT(lv_upgrade_response(out, 0, &up, NULL), 0);
    /* A protocol name that would break the head is refused. */
    CHECK_INT(lv_upgrade_response(out, sizeof out, &up, "a\r\nX: y"), 0);
    CHECK_INT(lv_upgrade_response(out, sizeof out, &up, ""), 0);
    /* No accept value: nothing to send. */
    lv_upgrade none = {0, -1, "", NULL, 0};
    CHECK_INT(lv_upgrade_response(out, sizeof out, &none, NULL), 0);
}

static void test_response_head(void) {
    static const struct {
        const char *name;
        int status;
        const char *extra;
        size_t body;
        const char *want; /* NULL: expect 0 */
    } rows[] = {
        {"401 body 12", 401, NULL, 12,
         "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 12\r\n\r\n"},
        {"401 with extra", 401, "WWW-Authenticate: Bearer\r\n", 12,
         "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 12\r\n"
         "WWW-Authenticate: Bearer\r\n\r\n"},
        {"426 without extra", 426, NULL, 0,
         "HTTP/1.1 426 Upgrade Required\r\nConnection: close, Upgrade\r\nContent-Length: 0\r\n"
         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"},
        {"426 with version", 426, "Sec-WebSocket-Version: 13\r\n", 0,
         "HTTP/1.1 426 Upgrade Required\r\nConnection: close, Upgrade\r\nContent-Length: 0\r\n"
         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"},
        {"426 with both, lowercase", 426, "upgrade: websocket\r\nsec-websocket-version: 13\r\n",
         5,
         "HTTP/1.1 426 Upgrade Required\r\nConnection: close, Upgrade\r\nContent-Length: 5\r\n"
         "upgrade: websocket\r\nsec-websocket-version: 13\r\n\r\n"},
        {"400", 400, NULL, 0,
         "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"},
        {"200 two extras", 200, "Content-Type: text/plain\r\nX-A:b\r\n", 1234567890,
         "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1234567890\r\n"
         "Content-Type: text/plain\r\nX-A:b\r\n\r\n"},
        {"418 unknown", 418, NULL, 0,
         "HTTP/1.1 418 Unknown\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"},
        {"204 no length", 204, NULL, 0, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"},
        {"204 with body", 204, NULL, 3, NULL},
        {"304 no length", 304, "ETag: \"x\"\r\n", 0,
         "HTTP/1.1 304 Not Modified\r\nConnection: close\r\nETag: \"x\"\r\n\r\n"},
        {"status 99", 99, NULL, 0, NULL},
        {"status 1000", 1000, NULL, 0, NULL},
        {"extra without CRLF", 200, "X-A: b", 0, NULL},
        {"extra with bare LF", 200, "X-A: b\nX-B: c\r\n", 0, NULL},
        {"extra with empty line", 200, "X-A: b\r\n\r\n", 0, NULL},
        {"extra without colon", 200, "X-A b\r\n", 0, NULL},
        {"extra with injected CR", 200, "X-A: b\rc\r\n", 0, NULL},
    };
    char out[512];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *extra = rows[i].extra;
        size_t elen = extra ? strlen(extra) : 0;
        size_t n = lv_http_response_head(out, sizeof out, rows[i].status, extra, elen,
                                         rows[i].body);
        if (!rows[i].want) {
            CHECK_ROW(n == 0, rows[i].name);
            continue;
        }
        size_t wlen = strlen(rows[i].want);
        CHECK_ROW(n == wlen && memcmp(out, rows[i].want, n) == 0, rows[i].name);
        if (n != wlen || memcmp(out, rows[i].want, n) != 0)
            fprintf(stderr, "  got: %.*s\n", (int)n, out);
        /* Exactly fits; one byte short does not. */
        CHECK_ROW(lv_http_response_head(out, wlen, rows[i].status, extra, elen,
                                        rows[i].body) == wlen, rows[i].name);
        CHECK_ROW(lv_http_response_head(out, wlen - 1, rows[i].status, extra, elen,
                                        rows[i].body) == 0, rows[i].name);
    }
    CHECK_INT(lv_http_response_head(out, sizeof out, 200, NULL, 3, 0), 0);
}

static void test_status_text(void) {
    static const struct {
        int status;
        const char *text;
    } rows[] = {
        {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"}, {204, "No Content"},
        {301, "Moved Permanently"}, {302, "Found"}, {304, "Not Modified"},
        {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
        {405, "Method Not Allowed"}, {408, "Request Timeout"}, {413, "Content Too Large"},
        {426, "Upgrade Required"}, {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
        {501, "Not Implemented"}, {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"}, {0, "Unknown"}, {299, "Unknown"}, {-1, "Unknown"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CHECK_ROW(strcmp(lv_http_status_text(rows[i].status), rows[i].text) == 0, rows[i].text);
}

/* ---- lists ----------------------------------------------------------------------------- */

static void test_list_has(void) {
    static const struct {
        const char *value;
        const char *token;
        int want;
    } rows[] = {
        {"keep-alive, Upgrade", "upgrade", 1},
        {"Upgrade", "upgrade", 1},
        {"UPGRADE", "Upgrade", 1},
        {"upgrade2", "upgrade", 0},
        {"xupgrade", "upgrade", 0},
        {"upgrade", "upgrade2", 0},
        {"keep-alive,upgrade", "upgrade", 1},
        {"keep-alive ,\tupgrade\t", "upgrade", 1},
        {" , ,upgrade , ", "upgrade", 1},
        {"upgrade,", "upgrade", 1},
        {",,,", "upgrade", 0},
        {"", "upgrade", 0},
        {"up grade", "upgrade", 0},
        {"keep-alive", "upgrade", 0},
        {"keep-alive, close", "close", 1},
        {"websocket, foo", "websocket", 1},
        {"foo, WebSocket", "websocket", 1},
        {"\"upgrade\"", "upgrade", 0},
        {"upgrade", "", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CHECK_ROW(lv_http_list_has(rows[i].value, strlen(rows[i].value), rows[i].token) ==
                      rows[i].want,
                  rows[i].value);
    /* The length bounds the list: "upgrade" cut to "upg" is not the token. */
    CHECK_INT(lv_http_list_has("upgrade", 3, "upgrade"), 0);
    CHECK_INT(lv_http_list_has("close, upgrade", 5, "close"), 1);
    CHECK_INT(lv_http_list_has("close, upgrade", 5, "upgrade"), 0);
    CHECK_INT(lv_http_list_has(NULL, 0, "upgrade"), 0);
}

int main(void) {
    RUN(test_cases);
    RUN(test_many_headers);
    RUN(test_nul_bytes);
    RUN(test_fields);
    RUN(test_subprotocols);
    RUN(test_head_end);
    RUN(test_accept);
    RUN(test_upgrade_response);
    RUN(test_response_head);
    RUN(test_status_text);
    RUN(test_list_has);
    return check_finish("http");
}
