internal import CNSS
import Synchronization

/// An NSPR I/O layer between the TCP socket and the SSL layer that reads
/// ahead: one `recv(2)` of up to ``capacity`` bytes serves NSS's small reads.
///
/// NSS gathers each TLS record with two reads, the 5-byte header and then the
/// body, so a bulk transfer made two `recv(2)` calls per 16 KiB record (8,511
/// for 64 MiB in a strace of the echo server, where the NIOSSL server made
/// 1,037 reads of up to 64 KiB). With this layer most records come out of
/// the buffer.
///
/// - The buffer exists only while it holds bytes: it is allocated when a read
///   reaches the kernel and freed once drained, so an idle connection costs
///   nothing.
/// - The layer's `poll` reports a read as ready at once while bytes are
///   buffered (as the SSL layer does for `SSL_DataPending`), and otherwise
///   asks the layer below. A read that ends in `PR_WOULD_BLOCK_ERROR` has
///   always drained the buffer first (NSS keeps calling `recv` until the
///   record is complete or the kernel has nothing), so a task that waits for
///   readability after a would-block never waits on bytes held here, and
///   the kernel's readiness of the native descriptor stays exact for it.
/// - Reads are serialised: NSS calls `recv` with its receive lock held, and
///   AsyncNSS calls NSS only inside ``SocketHandle/withFD(_:_:)``. Only
///   `poll`, from the poll thread, runs concurrently with them, and it reads
///   an atomic count.
enum ReadAheadLayer {
    /// The most one read takes from the kernel.
    static let capacity = 64 * 1024

    private static let identity: PRDescIdentity = PR_GetUniqueIdentity("AsyncNSS read-ahead")

    // nonisolated(unsafe): written once, in this lazily initialised global
    // (Swift runs the initialiser exactly once, thread-safely), and only
    // read afterwards; NSPR keeps the pointer for the life of every layer.
    private nonisolated(unsafe) static let methods: UnsafePointer<PRIOMethods> = {
        let table = UnsafeMutablePointer<PRIOMethods>.allocate(capacity: 1)
        table.initialize(to: PR_GetDefaultIOMethods().pointee)
        table.pointee.recv = readAheadRecv
        table.pointee.read = readAheadRead
        table.pointee.poll = readAheadPoll
        table.pointee.available = readAheadAvailable
        table.pointee.close = readAheadClose
        table.pointee.shutdown = readAheadShutdown
        table.pointee.send = readAheadSend
        table.pointee.write = readAheadWrite
        return UnsafePointer(table)
    }()

    fileprivate static let defaultClose: PRCloseFN? = PR_GetDefaultIOMethods().pointee.close

    /// Pushes the layer onto `fd` (a TCP socket not yet imported into NSS).
    /// On failure `fd` is unchanged and the error is NSPR's.
    static func push(onto fd: UnsafeMutablePointer<PRFileDesc>, operation: @autoclosure () -> String) throws {
        guard let layer = PR_CreateIOLayerStub(identity, methods) else {
            throw TLSError.fromLastNSSError(operation())
        }
        let buffer = Unmanaged.passRetained(Buffer())
        layer.pointee.secret = OpaquePointer(buffer.toOpaque())
        guard PR_PushIOLayer(fd, PR_TOP_IO_LAYER, layer) == PR_SUCCESS else {
            let error = TLSError.fromLastNSSError(operation())
            layer.pointee.secret = nil
            buffer.release()
            layer.pointee.dtor?(layer)
            throw error
        }
    }

    /// Pushes the layer onto `tcp`, then makes the SSL socket above it with
    /// `importSSL` (`SSL_ImportFD`, from a model socket or from none). On any
    /// failure `tcp` is closed and the error is thrown; on success closing the
    /// SSL socket closes everything below it.
    static func pushThenImport(
        _ tcp: UnsafeMutablePointer<PRFileDesc>,
        operation: @autoclosure () -> String,
        importSSL: (UnsafeMutablePointer<PRFileDesc>) throws -> UnsafeMutablePointer<PRFileDesc>?
    ) throws -> UnsafeMutablePointer<PRFileDesc> {
        let imported: UnsafeMutablePointer<PRFileDesc>?
        do {
            try push(onto: tcp, operation: operation())
            imported = try importSSL(tcp)
        } catch {
            PR_Close(tcp)
            throw error
        }
        guard let fd = imported else {
            let error = TLSError.fromLastNSSError(operation())
            PR_Close(tcp)
            throw error
        }
        return fd
    }

    /// Reads what the kernel has for `fd`'s stack into this layer's buffer,
    /// after the bytes it holds already, without handing anything to the
    /// layers above: they read it later as if it came from the socket. What
    /// `recv(2)` returned: the count, 0 at EOF, -1 with NSPR's error set
    /// (`PR_WOULD_BLOCK_ERROR` when there is nothing yet, or when the buffer
    /// is full).
    static func readMore(_ fd: UnsafeMutablePointer<PRFileDesc>) -> Int32 {
        guard let layer = PR_GetIdentitiesLayer(fd, identity), let buffer = buffer(layer),
              let lower = layer.pointee.lower, let recv = lower.pointee.methods.pointee.recv else {
            PR_SetError(PRErrorCode(PR_INVALID_ARGUMENT_ERROR), 0)
            return -1
        }
        return buffer.append { storage, capacity in recv(lower, storage, capacity, 0, PRIntervalTime(PR_INTERVAL_NO_WAIT)) }
    }

    /// Makes the layer's `poll` report a read as ready only when the kernel
    /// has bytes, not while it holds some (`true`), or again as usual
    /// (`false`). While bytes are collected with ``readMore(_:)`` for a look
    /// before NSS reads them, those bytes are not what the waiter waits for:
    /// the usual answer would wake it at once, again and again.
    static func setCollecting(_ fd: UnsafeMutablePointer<PRFileDesc>, _ collecting: Bool) {
        guard let layer = PR_GetIdentitiesLayer(fd, identity), let buffer = buffer(layer) else { return }
        buffer.collecting.store(collecting, ordering: .releasing)
    }

    /// A copy of the bytes this layer of `fd`'s stack holds.
    static func buffered(_ fd: UnsafeMutablePointer<PRFileDesc>) -> [UInt8] {
        guard let layer = PR_GetIdentitiesLayer(fd, identity), let buffer = buffer(layer) else { return [] }
        return buffer.contents
    }

    /// Drops the first `count` bytes this layer of `fd`'s stack holds (a
    /// PROXY protocol header, which the layers above must never see).
    /// Returns how many it dropped.
    static func discard(_ fd: UnsafeMutablePointer<PRFileDesc>, count: Int) -> Int {
        guard count > 0, let layer = PR_GetIdentitiesLayer(fd, identity), let buffer = buffer(layer) else { return 0 }
        return buffer.discard(count)
    }

    /// Starts watching the first bytes `fd`'s stack receives and sends for a
    /// ClientHello, whose random a key log names each secret by (NSS has no
    /// interface that gives it out). Only connections with a key log pay
    /// for this.
    static func watchClientHello(_ fd: UnsafeMutablePointer<PRFileDesc>) {
        guard let layer = PR_GetIdentitiesLayer(fd, identity), let buffer = buffer(layer) else { return }
        buffer.hello.watching.store(true, ordering: .releasing)
    }

    /// The 32-byte random of the ClientHello that `fd`'s stack received (a
    /// server) or sent (a client); nil until one has passed, or when nobody
    /// watches.
    static func clientRandom(_ fd: UnsafeMutablePointer<PRFileDesc>) -> [UInt8]? {
        guard let layer = PR_GetIdentitiesLayer(fd, identity), let buffer = buffer(layer) else { return nil }
        return buffer.hello.random
    }

    /// Whether `fd`'s stack has this layer; for tests and diagnostics.
    static func isPushed(on fd: UnsafeMutablePointer<PRFileDesc>) -> Bool {
        PR_GetIdentitiesLayer(fd, identity) != nil
    }

    fileprivate static func buffer(_ fd: UnsafeMutablePointer<PRFileDesc>) -> Buffer? {
        fd.pointee.secret.map { Unmanaged<Buffer>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
    }

    /// The bytes read ahead. `storage`, `start` and `end` are touched only by
    /// the serialised reads; `count` mirrors `end - start` for `poll`.
    // @unchecked Sendable: it never crosses tasks; NSPR hands it to reads,
    // which are serialised (see the type's comment), and to `poll`, which
    // reads only the atomic `count`.
    fileprivate final class Buffer: @unchecked Sendable {
        var storage: UnsafeMutablePointer<UInt8>?
        var start = 0
        var end = 0
        let count = Atomic<Int>(0)
        /// Set once the layer above shut down sending.
        let outputShutDown = Atomic<Bool>(false)
        /// The ClientHello's random, for a key log.
        let hello = ClientHelloWatch()
        /// See ``ReadAheadLayer/setCollecting(_:_:)``.
        let collecting = Atomic<Bool>(false)

        deinit { storage?.deallocate() }

        /// Copies up to `amount` buffered bytes to `destination`; consumes
        /// them unless `peek`. Frees the storage once drained.
        func take(into destination: UnsafeMutableRawPointer, amount: Int, peek: Bool) -> Int {
            guard let storage else { return 0 }
            let taken = min(amount, end - start)
            destination.copyMemory(from: storage + start, byteCount: taken)
            if !peek { consume(taken) }
            return taken
        }

        /// Drops up to `amount` buffered bytes; frees the storage once drained.
        func discard(_ amount: Int) -> Int {
            let dropped = min(amount, end - start)
            consume(dropped)
            return dropped
        }

        /// Moves past `amount` held bytes; frees the storage once drained.
        private func consume(_ amount: Int) {
            guard let storage else { return }
            start += amount
            count.store(end - start, ordering: .releasing)
            if start == end {
                storage.deallocate()
                self.storage = nil
                start = 0
                end = 0
            }
        }

        /// The bytes held, in order.
        var contents: [UInt8] {
            guard let storage else { return [] }
            return Array(UnsafeBufferPointer(start: storage + start, count: end - start))
        }

        /// Reads with `read` into the room after the bytes held, up to
        /// ``ReadAheadLayer/capacity`` in all: what `read` returned, or -1
        /// with `PR_WOULD_BLOCK_ERROR` when there is no room left.
        func append(_ read: (UnsafeMutableRawPointer, Int32) -> Int32) -> Int32 {
            guard let storage else { return fill(read) }
            if start > 0 {
                // Overlapping ranges: copyMemory moves like memmove.
                UnsafeMutableRawPointer(storage).copyMemory(from: storage + start, byteCount: end - start)
                end -= start
                start = 0
            }
            guard end < ReadAheadLayer.capacity else {
                PR_SetError(PRErrorCode(PR_WOULD_BLOCK_ERROR), 0)
                return -1
            }
            let result = read(storage + end, Int32(ReadAheadLayer.capacity - end))
            if result > 0 {
                end += Int(result)
                count.store(end, ordering: .releasing)
            }
            return result
        }

        /// Reads up to ``ReadAheadLayer/capacity`` bytes from `lower` into an
        /// empty buffer with `read`: what it returned (0 at EOF, -1 with
        /// NSPR's error set, as the layer below reported it).
        func fill(_ read: (UnsafeMutableRawPointer, Int32) -> Int32) -> Int32 {
            let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: ReadAheadLayer.capacity)
            let result = read(storage, Int32(ReadAheadLayer.capacity))
            guard result > 0 else {
                storage.deallocate()
                return result
            }
            self.storage = storage
            start = 0
            end = Int(result)
            count.store(end, ordering: .releasing)
            return result
        }
    }
}

// The layer's methods. They capture nothing; the buffer comes through `secret`.

/// Serves from the buffer; reads ahead when it is empty and the caller asked
/// for less than a buffer's worth.
private let readAheadRecv: PRRecvFN = { fd, destination, amount, flags, timeout in
    guard let fd, let lower = fd.pointee.lower, let recv = lower.pointee.methods.pointee.recv else { return -1 }
    guard let destination, amount > 0, let buffer = ReadAheadLayer.buffer(fd) else {
        return recv(lower, destination, amount, flags, timeout)
    }
    let peek = flags & PRIntn(PR_MSG_PEEK) != 0
    let buffered = buffer.take(into: destination, amount: Int(amount), peek: peek)
    if buffered > 0 {
        if !peek { buffer.hello.observe(destination, count: buffered, inbound: true) }
        return Int32(buffered)
    }
    if flags != 0 || Int(amount) >= ReadAheadLayer.capacity {
        let received = recv(lower, destination, amount, flags, timeout)
        if received > 0, !peek { buffer.hello.observe(destination, count: Int(received), inbound: true) }
        return received
    }
    let read = buffer.fill { storage, capacity in recv(lower, storage, capacity, 0, timeout) }
    guard read > 0 else { return read }
    let taken = buffer.take(into: destination, amount: Int(amount), peek: false)
    buffer.hello.observe(destination, count: taken, inbound: true)
    return Int32(taken)
}

private let readAheadRead: PRReadFN = { fd, destination, amount in
    guard let fd, let lower = fd.pointee.lower, let read = lower.pointee.methods.pointee.read else { return -1 }
    guard let destination, amount > 0, let buffer = ReadAheadLayer.buffer(fd) else {
        return read(lower, destination, amount)
    }
    let buffered = buffer.take(into: destination, amount: Int(amount), peek: false)
    if buffered > 0 {
        buffer.hello.observe(destination, count: buffered, inbound: true)
        return Int32(buffered)
    }
    if Int(amount) >= ReadAheadLayer.capacity {
        let direct = read(lower, destination, amount)
        if direct > 0 { buffer.hello.observe(destination, count: Int(direct), inbound: true) }
        return direct
    }
    let result = buffer.fill { storage, capacity in read(lower, storage, capacity) }
    guard result > 0 else { return result }
    let taken = buffer.take(into: destination, amount: Int(amount), peek: false)
    buffer.hello.observe(destination, count: taken, inbound: true)
    return Int32(taken)
}

/// Ready to read at once while bytes are buffered; otherwise the layer below decides.
private let readAheadPoll: PRPollFN = { fd, flags, outFlags in
    guard let fd, let lower = fd.pointee.lower, let poll = lower.pointee.methods.pointee.poll else { return flags }
    if flags & Int16(PR_POLL_READ) != 0, let buffer = ReadAheadLayer.buffer(fd),
       buffer.count.load(ordering: .acquiring) > 0, !buffer.collecting.load(ordering: .acquiring) {
        outFlags?.pointee = Int16(PR_POLL_READ)
        return flags
    }
    return poll(lower, flags, outFlags)
}

private let readAheadAvailable: PRAvailableFN = { fd in
    guard let fd, let lower = fd.pointee.lower, let available = lower.pointee.methods.pointee.available else { return -1 }
    let below = available(lower)
    let buffered = ReadAheadLayer.buffer(fd)?.count.load(ordering: .acquiring) ?? 0
    return below < 0 ? below : below + Int32(buffered)
}

/// Passes a shutdown down, and remembers one of the sending side (a TLS
/// half-close, after the SSL layer's close_notify): from then on writes are
/// dropped instead of sent (see `readAheadSend`).
private let readAheadShutdown: PRShutdownFN = { fd, how in
    guard let fd, let lower = fd.pointee.lower, let shutdown = lower.pointee.methods.pointee.shutdown else { return PR_FAILURE }
    if how != PRIntn(PR_SHUTDOWN_RCV.rawValue) {
        ReadAheadLayer.buffer(fd)?.outputShutDown.store(true, ordering: .releasing)
    }
    return shutdown(lower, how)
}

/// Sends, unless this side has shut down sending: then it reports the
/// bytes as sent and drops them.
///
/// After its close_notify NSS may still have something to write: a TLS 1.3
/// KeyUpdate the peer asked to be answered, or the refusal of a
/// renegotiation. The peer ignores whatever follows close_notify (RFC 8446
/// §6.1), and on a socket shut down for sending the write fails with EPIPE
/// (which NSPR reports as `PR_CONNECT_RESET_ERROR`): NSS then fails the read
/// that met the peer's message and drops the records after it, the reply a
/// half-closed client was waiting for.
private let readAheadSend: PRSendFN = { fd, source, amount, flags, timeout in
    guard let fd, let lower = fd.pointee.lower, let send = lower.pointee.methods.pointee.send else { return -1 }
    guard let buffer = ReadAheadLayer.buffer(fd) else { return send(lower, source, amount, flags, timeout) }
    if buffer.outputShutDown.load(ordering: .acquiring) { return amount }
    let sent = send(lower, source, amount, flags, timeout)
    if sent > 0, let source { buffer.hello.observe(source, count: Int(sent), inbound: false) }
    return sent
}

private let readAheadWrite: PRWriteFN = { fd, source, amount in
    guard let fd, let lower = fd.pointee.lower, let write = lower.pointee.methods.pointee.write else { return -1 }
    guard let buffer = ReadAheadLayer.buffer(fd) else { return write(lower, source, amount) }
    if buffer.outputShutDown.load(ordering: .acquiring) { return amount }
    let written = write(lower, source, amount)
    if written > 0, let source { buffer.hello.observe(source, count: Int(written), inbound: false) }
    return written
}

/// Releases the buffer, then closes the rest of the stack and pops this
/// layer as NSPR's default `close` does.
private let readAheadClose: PRCloseFN = { fd in
    guard let fd else { return PR_FAILURE }
    if let secret = fd.pointee.secret {
        fd.pointee.secret = nil
        Unmanaged<ReadAheadLayer.Buffer>.fromOpaque(UnsafeRawPointer(secret)).release()
    }
    return ReadAheadLayer.defaultClose?(fd) ?? PR_FAILURE
}

/// Finds the ClientHello among the first bytes a connection receives (a
/// server) or sends (a client) and keeps its random. Costs one atomic load
/// per read and write while nobody watches. Held inline by its buffer: not
/// an object of its own, since most connections keep no key log.
struct ClientHelloWatch: ~Copyable, Sendable {
    /// The record header (5 bytes), the handshake header (4), the version
    /// (2), then the 32-byte random.
    static let randomRange = 11..<43

    // Not private: a private type in this ~Copyable struct crashes the
    // compiler (Swift 6.3) when a @testable test module uses the struct.
    struct State {
        var inbound: [UInt8] = []
        var outbound: [UInt8] = []
        var random: [UInt8]?
    }

    let watching = Atomic<Bool>(false)
    private let state = Mutex(State())

    var random: [UInt8]? { state.withLock { $0.random } }

    func observe(_ bytes: UnsafeRawPointer, count: Int, inbound: Bool) {
        guard watching.load(ordering: .acquiring), count > 0 else { return }
        let found = state.withLock { state -> Bool in
            if state.random != nil { return true }
            let prefix = inbound ? state.inbound : state.outbound
            let needed = Self.randomRange.upperBound - prefix.count
            guard needed > 0 else { return false }
            let added = prefix + UnsafeRawBufferPointer(start: bytes, count: min(needed, count))
            if inbound { state.inbound = added } else { state.outbound = added }
            state.random = Self.clientRandom(inPrefix: added)
            return state.random != nil
        }
        if found { watching.store(false, ordering: .releasing) }
    }

    /// The random of the ClientHello that `prefix` (the first bytes of a
    /// stream) starts with; nil when it is too short or starts otherwise.
    static func clientRandom(inPrefix prefix: [UInt8]) -> [UInt8]? {
        guard prefix.count >= randomRange.upperBound, prefix[0] == 0x16, prefix[5] == 0x01 else { return nil }
        return Array(prefix[randomRange])
    }
}