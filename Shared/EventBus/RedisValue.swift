import CHiredis

/// A RESP2 reply, deep-copied out of hiredis's reply tree so it can cross threads.
package enum RedisValue: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    /// Copies a hiredis reply (the caller frees it).
    init(reply pointer: UnsafePointer<redisReply>) {
        let reply = pointer.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            self = .bulk(Array(UnsafeRawBufferPointer(start: reply.str, count: reply.len)))
        case REDIS_REPLY_ARRAY:
            self = .array(
                (0..<Int(reply.elements)).map { index in
                    reply.element[index].map { RedisValue(reply: UnsafePointer($0)) } ?? .null
                })
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(reply.integer))
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: UnsafeRawBufferPointer(start: reply.str, count: reply.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: UnsafeRawBufferPointer(start: reply.str, count: reply.len), as: UTF8.self))
        default:
            self = .null
        }
    }

    /// The value as text (bulk or status).
    package var string: String? {
        switch self {
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        case .integer(let value): return String(value)
        default: return nil
        }
    }

    /// The elements of an array reply.
    package var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// The integer of an integer reply.
    package var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulk, .status: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    /// Whether this is an error reply.
    package var isError: Bool {
        if case .error = self { return true }
        return false
    }
}
