/* libFuzzer harness for the TLS server side (CLive/src/tls.c): any bytes a client sends
 * to a TLS port reach lv_tls_feed before anything else. The input is split into reads of
 * sizes the first byte picks, as the socket would deliver them, and fed to a fresh
 * session; plaintext runs must fit the buffer they are given, and what OpenSSL writes back
 * (alerts, a ServerHello) goes to the loop's output buffer. The certificate is a throwaway
 * one made for this harness. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

static const char cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdDCCARugAwIBAgIUPwsBs7XBLMgy5c+4Vwuqo8rk+WMwCgYIKoZIzj0EAwIw\n"
    "DzENMAsGA1UEAwwEZnV6ejAgFw0yNjEyMDMxMDIyNTNaGA8yMTI2MTEwOTEwMjI1\n"
    "M1owDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAtH\n"
    "sDtVE5ORGpXFO7+g3OG2GOCgQwTBOH5FARwHyJOacJxZoiNMVI3Lt6of4QRoFqHZ\n"
    "uHyb0nMDF1M+NJYkWCmjUzBRMB0GA1UdDgQWBBR680wpIQbgnkJnHp8EJ7IKHAom\n"
    "eDAfBgNVHSMEGDAWgBR680wpIQbgnkJnHp8EJ7IKHAomeDAPBgNVHRMBAf8EBTAD\n"
    "AQH/MAoGCCqGSM49BAMCA0cAMEQCIBFySOckKFaDrS3F+7deEbgV4jw1XdRJJvXA\n"
    "7/o046OyAiB2YMwesBmLlsmdXs10o0rzh2VoBuPISY/GoJQmfcIQ9w==\n"
    "-----END CERTIFICATE-----\n";
static const char key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoq6N3+GEd0xKMUmr\n"
    "HeeQumBFuMqrZkbLmm8IrX4zWWahRANCAAQLR7A7VROTkRqVxTu/oNzhthjgoEME\n"
    "wTh+RQEcB8iTmnCcWaIjTFSNy7eqH+EEaBah2bh8m9JzAxdTPjSWJFgp\n"
    "-----END PRIVATE KEY-----\n";

static clive_tls *tls;

static void write_temp(char *path, const char *text) {
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) abort();
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char cert[] = "/tmp/live-fuzz-cert-XXXXXX", key[] = "/tmp/live-fuzz-key-XXXXXX", why[256];
    write_temp(cert, cert_pem);
    write_temp(key, key_pem);
    if (clive_tls_new(cert, key, &tls, why, sizeof why) != CLIVE_OK) {
        fprintf(stderr, "fuzz_tls: %s\n", why);
        abort();
    }
    unlink(cert);
    unlink(key);
    return 0;
}

static uint8_t plain[4096];
static size_t plain_total;

static void on_plain(void *ctx, uint8_t *p, size_t n) {
    (void)ctx;
    if (p != plain || n == 0 || n > sizeof plain) abort();
    plain_total += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len == 0) return 0;
    size_t step = 1 + data[0] % 97;
    data++;
    len--;
    (void)lv_tls_looks_like_http(data, len);
    lv_tls_io io = {0};
    lv_tls_conn *c = lv_tls_conn_new(tls, &io);
    if (c == NULL) abort();
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        bool done = false;
        char reason[160];
        lv_tls_result r = lv_tls_feed(c, data + at, n, plain, sizeof plain, on_plain, NULL, &done,
                                      reason, sizeof reason);
        if (io.out_len > io.out_cap) abort();
        io.out_len = 0; /* sent, as a session would */
        if (r != LV_TLS_MORE) break;
    }
    lv_tls_conn_free(c);
    free(io.out);
    return 0;
}
