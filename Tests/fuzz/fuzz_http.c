/* libFuzzer harness: the HTTP request-head parser and the upgrade checks, fed the input
 * split at a point the input itself chooses (first byte), as reads would split it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t split = data[0] % (size);
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    size_t scanned = 0;
    size_t end = lv_http_head_end(buf, split < len ? split : len, &scanned);
    if (end == 0) end = lv_http_head_end(buf, len, &scanned);
    if (end == 0) return 0;
    lv_http_request req;
    const char *reason = NULL;
    if (lv_http_parse(buf, end, &req, &reason) != 0) return 0;
    static const char *const protocols[] = {"live.v1.json", "live.v1.msgpack"};
    lv_upgrade up;
    if (lv_upgrade_check(&req, protocols, 2, &up, &reason) != 0) return 0;
    char out[512];
    if (up.is_upgrade)
        lv_upgrade_response(out, sizeof out, &up, up.subprotocol >= 0 ? protocols[up.subprotocol] : NULL);
    lv_http_response_head(out, sizeof out, 200, NULL, 0, 5);
    return 0;
}
