"""Sends from threads that are not the session's loop (issue 7: "send from many threads"),
through clive_session_send and the loop's lock-free inbox. scripts/test runs this file
against the ThreadSanitizer build too."""


def test_sends_from_four_threads_arrive_complete_and_in_order_per_thread(live):
    srv = live.server("--loops", 2)
    c = live.ws(srv)
    n = 500
    c.send_text(f"/mtsend {n}")
    next_of = {t: 0 for t in range(4)}
    for _ in range(4 * n):
        thread, i = c.recv_text(timeout=30).lstrip("t").split(":")
        thread, i = int(thread), int(i)
        assert i == next_of[thread], (thread, i, next_of)  # one thread's sends keep their order
        next_of[thread] = i + 1
    assert next_of == {t: n for t in range(4)}
    assert c.command("/id").isdigit()  # the session is still fine
    c.close()
