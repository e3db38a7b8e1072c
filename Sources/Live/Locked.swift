#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A value behind a pthread mutex, for state that several threads touch.
///
/// Not the standard library's `Mutex`: on Linux it waits on a futex, which ThreadSanitizer
/// cannot see, so under TSan two threads taking turns on a `Mutex` read as a data race on
/// its value (the Swift tests' TSan run reported exactly that). A pthread mutex is what
/// TSan understands, and uncontended it costs the same.
package final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    package init(_ value: Value) {
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
