// libFuzzer harnesses for the codecs' decoders, compiled together with the codec sources
// (Tests/fuzz/run builds one binary per codec with -D FUZZ_JSON or -D FUZZ_MSGPACK).
// Each decoded message is encoded and decoded again, and must come back the same.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Bytes(copying: data, count: size)
    #if FUZZ_JSON
        let codec = JSONCodec()
        guard validUTF8(bytes) else { return 0 }  // the core delivers text frames as UTF-8 only
        let frame = Frame(kind: .text, payload: bytes)
    #else
        let codec = MessagePackCodec()
        let frame = Frame(kind: .binary, payload: bytes)
    #endif
    guard let message = try? codec.decode(frame) else { return 0 }
    guard let again = try? codec.decode(try! codec.encode(message)) else {
        fatalError("a decoded message did not survive encode + decode: \(message)")
    }
    precondition(again == message, "round trip changed the message: \(message) -> \(again)")
    return 0
}
