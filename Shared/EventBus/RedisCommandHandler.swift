import CHiredis
import NIOCore
import NIOSSL

/// A batch of encoded commands written in one outbound message, with where its replies go.
struct RedisRequest: Sendable {
    var bytes: ByteBuffer
    var replies: RedisReplies
    /// When the replies must have arrived (`nil`: no deadline); past it the connection is closed.
    var deadline: NIODeadline? = nil
    /// The time allowed, for the error message.
    var timeout: TimeAmount = .zero
}

/// The replies of one request, gathered on the connection's event loop: the caller is resumed once,
/// with every reply in order, or with the first failure (the connection closed, a deadline passed).
///
/// One continuation per request instead of a promise (and a future to await) per command: an
/// `EventLoopFuture` per command cost a few thousand instructions (its allocation, its callbacks, and
/// the generic metadata of an unspecialized `EventLoopFuture<RedisValue>` on every `init`/`deinit`).
final class RedisReplies: @unchecked Sendable {
    /// How many replies the request waits for.
    let count: Int
    private var values: [RedisValue] = []
    private var continuation: CheckedContinuation<[RedisValue], any Error>?

    init(count: Int, continuation: CheckedContinuation<[RedisValue], any Error>) {
        self.count = count
        self.continuation = continuation
        values.reserveCapacity(count)
    }

    /// Adds the next reply (on the event loop); the caller resumes with the last.
    func add(_ value: RedisValue) {
        guard continuation != nil else { return }
        values.append(value)
        guard values.count == count else { return }
        continuation?.resume(returning: values)
        continuation = nil
    }

    /// Fails the request unless it already finished (on the event loop).
    func fail(_ error: any Error) {
        continuation?.resume(throwing: error)
        continuation = nil
    }
}

/// Encodes commands as RESP arrays of bulk strings (binary-safe).
enum RESPEncoder {
    static func encode(_ command: [RedisArgument], into buffer: inout ByteBuffer) {
        header(UInt8(ascii: "*"), command.count, afterArgument: false, into: &buffer)
        var afterArgument = false
        for argument in command {
            switch argument {
            case .string(let text):
                header(UInt8(ascii: "$"), text.utf8.count, afterArgument: afterArgument, into: &buffer)
                buffer.writeString(text)
            case .bytes(let bytes):
                header(UInt8(ascii: "$"), bytes.count, afterArgument: afterArgument, into: &buffer)
                buffer.writeBytes(bytes)
            }
            afterArgument = true
        }
        if afterArgument { buffer.writeStaticString("\r\n") }
    }

    /// `*3\r\n` or `$12\r\n` (after an argument, with the argument's closing `\r\n` first), put
    /// together on the stack and written at once: each `ByteBuffer` write has a fixed cost of a few
    /// hundred instructions, and a command has a header per argument.
    private static func header(_ marker: UInt8, _ count: Int, afterArgument: Bool, into buffer: inout ByteBuffer) {
        // At most `\r\n` + marker + 19 digits + `\r\n`: 25 bytes.
        var bytes:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { raw in
            // Written from the end backwards: `\r\n`, the digits, the marker, then `\r\n` before it.
            var index = raw.count
            index -= 2
            raw[index] = UInt8(ascii: "\r")
            raw[index + 1] = UInt8(ascii: "\n")
            var value = count
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            index -= 1
            raw[index] = marker
            if afterArgument {
                index -= 2
                raw[index] = UInt8(ascii: "\r")
                raw[index + 1] = UInt8(ascii: "\n")
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[index...]))
        }
    }
}

/// One argument of a Redis command.
package enum RedisArgument: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case bytes([UInt8])

    package init(stringLiteral value: String) { self = .string(value) }
    package init(integerLiteral value: Int) { self = .string(String(value)) }
}

/// Owns hiredis's `redisReader`, confined to one event loop.
final class HiredisReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        reader = redisReaderCreate()
    }

    deinit {
        redisReaderFree(reader)
    }

    func feed(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            _ = bytes.withMemoryRebound(to: CChar.self) { chars in
                redisReaderFeed(reader, chars.baseAddress, chars.count)
            }
        }
    }

    /// The next complete reply, `nil` when more input is needed; throws on a protocol error.
    func next() throws -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            let message = withUnsafeBytes(of: reader.pointee.errstr) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw BusError(.protocolViolation, "RESP parse error: \(message)")
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self))
    }
}

/// Writes command batches and hands replies, in order, to the requests that wait for them, parsing
/// with hiredis.
///
/// Each reply has a deadline. One timer is scheduled for the earliest deadline written; when it
/// fires and any pending reply is past its deadline, every pending command fails with
/// ``BusError/Code/unavailable`` and the connection is closed (a half-open connection must not hold
/// commands such as lease renewals for minutes); otherwise it re-arms for the earliest one left.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    /// A command written whose reply has not come yet (a request of n commands has n of these).
    private struct PendingReply {
        var replies: RedisReplies
        var deadline: NIODeadline?
        var timeout: TimeAmount
    }

    private let reader = HiredisReader()
    private var pending = CircularBuffer<PendingReply>(initialCapacity: 64)
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        // A write on a connection that already closed (channelInactive ran): its replies will never
        // come. On an open one, a failed socket write closes the channel, and channelInactive fails
        // what is pending.
        guard context.channel.isActive else {
            request.replies.fail(BusError(.unavailable, "write failed: connection closed"))
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        for _ in 0..<request.replies.count {
            pending.append(PendingReply(replies: request.replies, deadline: request.deadline, timeout: request.timeout))
        }
        if let deadline = request.deadline { armTimer(at: deadline, context: context) }
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.feed(unwrapInboundIn(data))
        do {
            while let value = try reader.next() {
                guard let reply = pending.popFirst() else {
                    failAll(BusError(.protocolViolation, "reply without a request"))
                    context.close(promise: nil)
                    return
                }
                reply.replies.add(value)
            }
        } catch {
            failAll(error)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(BusError(.unavailable, "connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(BusError(.unavailable, "connection error: \(Self.describe(error))"))
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    /// Schedules the one timer for `deadline`, unless one is scheduled for that moment or earlier
    /// (a timer that fires before a later deadline just re-arms).
    private func armTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        if timer != nil, let scheduled = timerDeadline, scheduled <= deadline { return }
        cancelTimer()
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timerDeadline = deadline
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            bound.value.handler.deadlineTimerFired(context: bound.value.context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    private func deadlineTimerFired(context: ChannelHandlerContext) {
        timer = nil
        timerDeadline = nil
        let now = NIODeadline.now()
        var earliest: NIODeadline?
        for reply in pending {
            guard let deadline = reply.deadline else { continue }
            if deadline <= now {
                let milliseconds = reply.timeout.nanoseconds / 1_000_000
                failAll(BusError(.unavailable, "Redis did not answer within the \(milliseconds) ms command deadline; connection closed"))
                context.close(promise: nil)
                return
            }
            earliest = min(earliest ?? deadline, deadline)
        }
        if let earliest { armTimer(at: earliest, context: context) }
    }

    /// Marks in a ``BusError`` message that the TLS handshake was refused (certificate, CA, host
    /// name or protocol): a configuration problem, not an outage.
    static let tlsRefusedMarker = "TLS handshake refused"

    /// The error's text, with ``tlsRefusedMarker`` in front of a TLS failure.
    static func describe(_ error: any Error) -> String {
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            return "\(tlsRefusedMarker): \(error)"
        }
        return "\(error)"
    }

    private func failAll(_ error: any Error) {
        cancelTimer()
        while let reply = pending.popFirst() {
            reply.replies.fail(error)
        }
    }
}
