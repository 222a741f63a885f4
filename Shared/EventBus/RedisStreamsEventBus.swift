import AgentConnectCore
import Logging

/// ``EventBus`` on Redis Streams: `XADD` with approximate `MAXLEN`, consumer groups, `XAUTOCLAIM`.
///
/// Each entry carries one field, `e`, holding the JSON envelope.
public struct RedisStreamsEventBus: EventBus {
    /// The client commands go through.
    public let client: RedisClient
    /// Approximate cap on each stream's length (`MAXLEN ~`).
    public let maxLength: Int

    public init(client: RedisClient, maxLength: Int = 1_000_000) {
        self.client = client
        self.maxLength = maxLength
    }

    public func publish(_ event: BusEvent, to stream: String) async throws -> String {
        let reply = try await client.command(
            "XADD", .string(stream), "MAXLEN", "~", .string(String(maxLength)), "*", "e", .bytes(try event.encoded()))
        guard let id = reply.string else { throw BusError(.protocolViolation, "XADD returned \(reply)") }
        return id
    }

    /// Atomic "remember the key, then append" so a retried webhook is published exactly once.
    private static let dedupScript = """
        if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
          return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[3])
        end
        return false
        """

    public func publish(_ event: BusEvent, to stream: String, dedupKey: String, ttlSeconds: Int) async throws -> PublishOutcome {
        let reply = try await client.command(
            "EVAL", .string(Self.dedupScript), "2", .string(dedupKey), .string(stream),
            .string(String(ttlSeconds)), .string(String(maxLength)), .bytes(try event.encoded()))
        switch reply {
        case .null: return .duplicate
        default:
            guard let id = reply.string else { throw BusError(.protocolViolation, "dedup publish returned \(reply)") }
            return .published(id)
        }
    }

    public func ensureGroup(_ group: String, on stream: String) async throws {
        let reply = try await client.send([["XGROUP", "CREATE", .string(stream), .string(group), "0", "MKSTREAM"]])[0]
        if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") {
            throw BusError(.server, message)
        }
    }

    public func readGroup(_ group: String, consumer: String, streams: [String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
        guard !streams.isEmpty else { return [] }
        var arguments: [RedisArgument] = [
            "XREADGROUP", "GROUP", .string(group), .string(consumer), "COUNT", .string(String(count)),
            "BLOCK", .string(String(blockMilliseconds)), "STREAMS",
        ]
        arguments += streams.map { .string($0) }
        arguments += streams.map { _ in ">" }
        let reply = try await client.withBlockingConnection { try await $0.command(arguments) }
        return try Self.parseStreams(reply)
    }

    public func ack(_ group: String, stream: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await client.command(["XACK", .string(stream), .string(group)] + ids.map { .string($0) })
    }

    public func reclaim(_ group: String, consumer: String, stream: String, minIdleMilliseconds: Int, count: Int) async throws -> [BusEntry] {
        let reply = try await client.command(
            "XAUTOCLAIM", .string(stream), .string(group), .string(consumer), .string(String(minIdleMilliseconds)),
            "0-0", "COUNT", .string(String(count)))
        guard let parts = reply.array, parts.count >= 2, let claimed = parts[1].array else {
            throw BusError(.protocolViolation, "XAUTOCLAIM returned \(reply)")
        }
        var entries = try claimed.compactMap { try Self.parseEntry($0, stream: stream) }
        // Entries trimmed away while pending come back as ids only (Redis 7): acknowledge them.
        if parts.count >= 3, let deleted = parts[2].array?.compactMap(\.string), !deleted.isEmpty {
            try await ack(group, stream: stream, ids: deleted)
        }
        guard let first = entries.first?.id, let last = entries.last?.id else { return entries }
        let pending = try await client.command(
            "XPENDING", .string(stream), .string(group), .string(first), .string(last), .string(String(entries.count * 2)),
            .string(consumer))
        var deliveries: [String: Int] = [:]
        for row in pending.array ?? [] {
            if let fields = row.array, fields.count >= 4, let id = fields[0].string, let count = fields[3].integer {
                deliveries[id] = Int(count)
            }
        }
        for index in entries.indices {
            entries[index].deliveries = deliveries[entries[index].id] ?? 2
        }
        return entries
    }

    public func deadLetter(_ entry: BusEntry, group: String, error: String) async throws {
        let replies = try await client.send([
            ["MULTI"],
            [
                "XADD", .string(Streams.dead), "MAXLEN", "~", .string(String(maxLength)), "*", "e", .bytes(entry.raw),
                "stream", .string(entry.stream), "group", .string(group), "entry", .string(entry.id),
                "deliveries", .string(String(entry.deliveries)), "error", .string(error),
            ],
            ["XACK", .string(entry.stream), .string(group), .string(entry.id)],
            ["EXEC"],
        ])
        if let failure = replies.first(where: \.isError) { throw BusError(.server, "dead-letter failed: \(failure)") }
    }

    public func read(after positions: [String: String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
        guard !positions.isEmpty else { return [] }
        let ordered = positions.sorted { $0.key < $1.key }
        var arguments: [RedisArgument] = ["XREAD", "COUNT", .string(String(count)), "BLOCK", .string(String(blockMilliseconds)), "STREAMS"]
        arguments += ordered.map { .string($0.key) }
        arguments += ordered.map { .string($0.value) }
        let reply = try await client.withBlockingConnection { try await $0.command(arguments) }
        return try Self.parseStreams(reply)
    }

    public func pendingCount(_ group: String, stream: String) async throws -> Int {
        let reply = try await client.send([["XPENDING", .string(stream), .string(group)]])[0]
        if case .error(let message) = reply {
            if message.contains("NOGROUP") { return 0 }
            throw BusError(.server, message)
        }
        return Int(reply.array?.first?.integer ?? 0)
    }

    public func length(of stream: String) async throws -> Int {
        Int(try await client.command("XLEN", .string(stream)).integer ?? 0)
    }

    /// Parses `[[stream, [[id, [field, value, …]], …]], …]`; a nil reply (timeout) is no entries.
    static func parseStreams(_ reply: RedisValue) throws -> [BusEntry] {
        guard case .array(let streams) = reply else { return [] }
        var entries: [BusEntry] = []
        for item in streams {
            guard let pair = item.array, pair.count == 2, let name = pair[0].string, let rows = pair[1].array else {
                throw BusError(.protocolViolation, "unexpected stream reply")
            }
            for row in rows {
                if let entry = try parseEntry(row, stream: name) { entries.append(entry) }
            }
        }
        return entries
    }

    static func parseEntry(_ row: RedisValue, stream: String) throws -> BusEntry? {
        guard let pair = row.array, pair.count == 2, let id = pair[0].string else { return nil }
        guard let fields = pair[1].array else { return nil }
        var raw: [UInt8] = []
        var index = 0
        while index + 1 < fields.count {
            if fields[index].string == "e", case .bulk(let bytes) = fields[index + 1] { raw = bytes }
            index += 2
        }
        return BusEntry(stream: stream, id: id, event: try? BusEvent.decode(raw), raw: raw)
    }
}
