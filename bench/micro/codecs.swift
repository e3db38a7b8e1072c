// Microbenchmarks of the Swift codecs: encode and decode of a typical Message with
// JSONCodec and MessagePackCodec, in ns per operation.
//
// Build and run (needs the `live-bench-codecs` target in Package.swift, see
// bench/micro/README.md):
//   swift build -c release --product live-bench-codecs
//   taskset -c 1 .build/release/live-bench-codecs [--quick]
//
// Method, as in micro.c: CLOCK_MONOTONIC; a warm-up that calibrates the iteration count,
// then 20 samples of 30 ms (0.6 s; with --quick 5 samples of 4 ms, 0.02 s); the line gives
// the fastest sample and, in parentheses, the median one. Every result feeds a checksum
// that is printed, and the input passes through an opaque function each iteration, so the
// optimizer can neither drop the work nor hoist it out of the loop.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Live

@inline(never) @_optimize(none)
func opaque<T>(_ value: T) -> T { value }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

struct Harness {
    var total = 0.6
    var samples = 20
    var checksum = 0

    /// Seconds per iteration of body(iterations), which returns a value for the checksum:
    /// (fastest sample, median sample).
    mutating func measure(_ body: (Int) throws -> Int) rethrows -> (best: Double, median: Double) {
        let sample = total / Double(samples)
        checksum &+= try body(1)
        var iterations = 1
        var t = 0.0
        while true {
            let t0 = now()
            checksum &+= try body(iterations)
            t = now() - t0
            if t >= sample / 4 { break }
            iterations *= t < sample / 1000 ? 16 : 2
        }
        iterations = Int(Double(iterations) * sample / t) + 1
        var v: [Double] = []
        for _ in 0..<samples {
            let t0 = now()
            checksum &+= try body(iterations)
            v.append((now() - t0) / Double(iterations))
        }
        v.sort()
        return (v[0], v[v.count / 2])
    }
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

func fixed(_ x: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let r = (x * scale).rounded() / scale
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < decimals { s += String(repeating: "0", count: decimals - have) }
    }
    return s
}

func report(_ name: String, _ size: String, _ t: (best: Double, median: Double)) {
    let best = fixed(t.best * 1e9, 1), median = "(" + fixed(t.median * 1e9, 1) + ")"
    print(pad(name, 30) + " " + pad(size, 12) + " " + String(repeating: " ", count: max(0, 10 - best.count))
        + best + " ns/op " + String(repeating: " ", count: max(0, 12 - median.count)) + median)
}

@main
struct CodecBench {
    static func main() throws {
        var h = Harness()
        for arg in CommandLine.arguments.dropFirst() {
            guard arg == "--quick" else {
                print("usage: live-bench-codecs [--quick]")
                exit(2)
            }
            h.total = 0.02
            h.samples = 5
        }

        // {"s":1,"t":123456789,"p":"xxx..."}: 64 bytes of JSON
        let body = #"{"s":1,"t":123456789,"p":""# + String(repeating: "x", count: 36) + #""}"#
        precondition(body.utf8.count == 64)
        let message = Message(type: "message", topic: "room:lobby", body: Bytes(body))

        print("Live codecs: \(h.total) s per figure in \(h.samples) samples; fastest sample (median)")
        print("message: type \"message\", topic \"room:lobby\", 64-byte JSON body")
        let codecs: [(String, any Codec)] = [("json", JSONCodec()), ("msgpack", MessagePackCodec())]
        for (label, codec) in codecs {
            let frame = try codec.encode(message)
            guard try codec.decode(frame) == message else {
                print("\(label): the round trip changed the message")
                exit(1)
            }
            let size = "\(frame.payload.count) B frame"
            let enc = try h.measure { n in
                var sum = 0
                for _ in 0..<n { sum &+= try codec.encode(opaque(message)).payload.count }
                return sum
            }
            report("\(label) encode", size, enc)
            let dec = try h.measure { n in
                var sum = 0
                for _ in 0..<n {
                    let m = try codec.decode(opaque(frame))
                    sum &+= m.body.count &+ m.topic.utf8.count &+ m.type.utf8.count
                }
                return sum
            }
            report("\(label) decode", size, dec)
        }
        print("(checksum \(h.checksum & 0xff))")
    }
}
