// RedisURL: what live-server --redis and RedisBroker accept, and what they refuse.

import LiveRedis
import Testing

@Suite struct RedisURLTests {
    @Test func hostPortPasswordAndDatabase() throws {
        #expect(try RedisURL("redis://127.0.0.1:6380/3") == RedisURL(host: "127.0.0.1", port: 6380, db: 3))
        #expect(try RedisURL("redis://cache.internal") == RedisURL(host: "cache.internal"))
        #expect(try RedisURL("redis://:s3cret@h:1") == RedisURL(host: "h", port: 1, password: "s3cret"))
        #expect(try RedisURL("redis://user:p@ss@h:2/") == RedisURL(host: "h", port: 2, password: "p@ss"))
        #expect(try RedisURL("redis://[::1]:7000/15") == RedisURL(host: "::1", port: 7000, db: 15))
    }

    @Test func theDescriptionNeverShowsThePassword() throws {
        let url = try RedisURL("redis://:s3cret@h:6379/2")
        #expect(url.description == "redis://h:6379/2")
        #expect(try RedisURL("redis://[::1]:7000").description == "redis://[::1]:7000")
    }

    @Test(arguments: ["http://h:1", "redis://", "redis://h:0", "redis://h:65536", "redis://h:x",
                      "redis://h:1/db", "redis://h:1/-1", "redis://[::1", "redis://[::1]x", "rediss://h:1"])
    func refused(_ text: String) {
        #expect(throws: RedisURLError.self) { try RedisURL(text) }
    }
}
