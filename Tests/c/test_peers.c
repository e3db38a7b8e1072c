/* Connections per client address: IPv4 counts per address, IPv6 per /64, IPv4-mapped IPv6
 * as the IPv4 address it is; entries go with their last connection. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "peers.h"

static struct sockaddr_storage v4(const char *ip) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

static void test_counts_per_address(void) {
    lv_peers p;
    lv_peers_init(&p);
    bool over;
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2");
    lv_peer *a1 = lv_peers_add(&p, &a, 2, &over);
    CHECK(a1 && !over);
    lv_peer *a2 = lv_peers_add(&p, &a, 2, &over);
    CHECK(a2 == a1 && !over);
    lv_peer *a3 = lv_peers_add(&p, &a, 2, &over);
    CHECK(a3 == a1 && over); /* the third from one address is over a limit of 2 */
    lv_peer *b1 = lv_peers_add(&p, &b, 2, &over);
    CHECK(b1 && b1 != a1 && !over);
    lv_peers_remove(&p, a3);
    lv_peers_remove(&p, a2);
    lv_peer *again = lv_peers_add(&p, &a, 2, &over);
    CHECK(again == a1 && !over); /* back to two */
    lv_peers_remove(&p, again);
    lv_peers_remove(&p, a1);
    CHECK_INT(p.table.count, 1); /* a's entry went with its last connection */
    lv_peers_remove(&p, b1);
    CHECK_INT(p.table.count, 0);
    lv_peers_free(&p);
}

static void test_ipv6_counts_per_64(void) {
    lv_peers p;
    lv_peers_init(&p);
    bool over;
    struct sockaddr_storage x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff::9"),
                            z = v6("2001:db8:1:3::1"), m = v6("::ffff:10.0.0.1"), four = v4("10.0.0.1");
    lv_peer *px = lv_peers_add(&p, &x, 1, &over);
    CHECK(px && !over);
    CHECK(lv_peers_add(&p, &y, 1, &over) == px && over); /* same /64: one host */
    lv_peer *pz = lv_peers_add(&p, &z, 1, &over);
    CHECK(pz != px && !over);
    lv_peer *pm = lv_peers_add(&p, &m, 1, &over);
    CHECK(pm && !over);
    CHECK(lv_peers_add(&p, &four, 1, &over) == pm && over); /* mapped IPv4 is that IPv4 */
    lv_peers_remove(&p, pm);
    lv_peers_remove(&p, pm);
    lv_peers_remove(&p, pz);
    lv_peers_remove(&p, px);
    lv_peers_remove(&p, px);
    CHECK_INT(p.table.count, 0);
    lv_peers_free(&p);
}

int main(void) {
    RUN(test_counts_per_address);
    RUN(test_ipv6_counts_per_64);
    return check_finish("peers");
}
