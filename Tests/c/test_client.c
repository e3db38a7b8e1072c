/* A WebSocket client for the end-to-end tests of the core's client side (clive_client_*),
 * written against the public C API only, so that it builds under the sanitizers.
 *
 *   test_client HOST PORT TARGET [--protocol P]... [--header "Name: value"]...
 *               [--echo] [--max-message N] [--ping-ms N] [--idle-ms N] [--close-ms N]
 *               [--handshake-ms N] [--tls [--ca FILE] | --insecure]  (wss: verified against FILE
 *               or the system store; --insecure: unchecked)
 *
 * Prints one line per event on stdout:
 *   OPEN <subprotocol index or -1>
 *   TEXT <payload>          (a text message)
 *   BINARY <length>         (a binary message)
 *   CLOSE <kind> <code> <http status> <reason>
 * and reads commands from stdin, one a line, sent from this (non-loop) thread:
 *   text <payload>    send a text message        -> "SENT <rc>" when rc != 0
 *   binary <n>        send n zero bytes, binary
 *   close <code> [reason]
 * --echo sends every message back as it came (Autobahn's fuzzingserver mode), from the
 * loop thread. Exits 0 after on_close (once stdin has ended or been left unread). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clive.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int closed, echo;
static clive_client *client;

static const char *kind_name(clive_client_close_kind k) {
    switch (k) {
    case CLIVE_CLIENT_CONNECT_FAILED: return "connect_failed";
    case CLIVE_CLIENT_HANDSHAKE_FAILED: return "handshake_failed";
    case CLIVE_CLIENT_CLOSED_BY_SERVER: return "by_server";
    case CLIVE_CLIENT_CLOSED_BY_CLIENT: return "by_client";
    case CLIVE_CLIENT_PROTOCOL: return "protocol";
    case CLIVE_CLIENT_IDLE: return "idle";
    case CLIVE_CLIENT_ABNORMAL: return "abnormal";
    }
    return "?";
}

static void on_open(clive_client *c, int subprotocol, void *user) {
    (void)c;
    (void)user;
    printf("OPEN %d\n", subprotocol);
    fflush(stdout);
}

static void on_message(clive_client *c, int binary, const uint8_t *data, size_t len, void *user) {
    (void)user;
    if (echo) {
        clive_client_send(c, binary, data, len);
        return;
    }
    if (binary)
        printf("BINARY %zu\n", len);
    else
        printf("TEXT %.*s\n", (int)len, (const char *)data);
    fflush(stdout);
}

static void on_close(clive_client *c, clive_client_close_kind kind, int code, const char *reason,
                     size_t reason_len, int http_status, void *user) {
    (void)c;
    (void)user;
    printf("CLOSE %s %d %d %.*s\n", kind_name(kind), code, http_status, (int)reason_len, reason);
    fflush(stdout);
    pthread_mutex_lock(&mu);
    closed = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void *read_commands(void *arg) {
    (void)arg;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = 0;
        int rc = 0;
        if (strncmp(line, "text ", 5) == 0) {
            rc = clive_client_send(client, 0, line + 5, (size_t)n - 5);
        } else if (strncmp(line, "binary ", 7) == 0) {
            size_t len = strtoul(line + 7, NULL, 10);
            void *z = calloc(1, len ? len : 1);
            rc = clive_client_send(client, 1, z, len);
            free(z);
        } else if (strncmp(line, "close ", 6) == 0) {
            char *end;
            unsigned code = (unsigned)strtoul(line + 6, &end, 10);
            const char *reason = *end == ' ' ? end + 1 : "";
            rc = clive_client_close(client, (uint16_t)code, reason, strlen(reason));
        }
        if (rc != 0) {
            printf("SENT %d %s\n", rc, clive_strerror(rc));
            fflush(stdout);
        }
    }
    free(line);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_client HOST PORT TARGET [options]\n");
        return 2;
    }
    const char *protocols[8];
    size_t nprotocols = 0;
    char headers[4096] = "";
    size_t hlen = 0;
    clive_client_options o = {
        .host = argv[1],
        .port = (uint16_t)atoi(argv[2]),
        .target = argv[3],
        .callbacks = {on_open, on_message, on_close, NULL},
    };
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (strcmp(a, "--echo") == 0) {
            echo = 1;
            continue;
        }
        if (strcmp(a, "--tls") == 0 || strcmp(a, "--insecure") == 0) {
            o.tls = 1;
            o.tls_insecure = strcmp(a, "--insecure") == 0;
            continue;
        }
        i++;
        if (strcmp(a, "--protocol") == 0 && nprotocols < 8)
            protocols[nprotocols++] = v;
        else if (strcmp(a, "--header") == 0)
            hlen += (size_t)snprintf(headers + hlen, sizeof headers - hlen, "%s\r\n", v);
        else if (strcmp(a, "--max-message") == 0)
            o.max_message = strtoul(v, NULL, 10);
        else if (strcmp(a, "--ping-ms") == 0)
            o.ping_interval_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--idle-ms") == 0)
            o.idle_timeout_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--close-ms") == 0)
            o.close_timeout_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--handshake-ms") == 0)
            o.handshake_timeout_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--ca") == 0)
            o.tls_ca_file = v;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    o.subprotocols = protocols;
    o.subprotocol_count = nprotocols;
    o.headers = headers;
    o.headers_len = hlen;
    int rc = clive_client_connect(&o, &client);
    if (rc != 0) {
        printf("CONNECT %d %s\n", rc, clive_strerror(rc));
        return 1;
    }
    pthread_t reader;
    pthread_create(&reader, NULL, read_commands, NULL);
    pthread_detach(reader);
    pthread_mutex_lock(&mu);
    while (!closed)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    /* the handle stays: the stdin thread may still be using it as the process exits */
    return 0;
}
