import AgentConnectCore
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

/// ``EventBus`` on Redis Streams: `XADD` trimmed by age (`MINID ~`), consumer groups, `XAUTOCLAIM`.
///
/// Each entry carries one field, `e`, holding the JSON envelope. Streams keep `retentionSeconds` of
/// entries: acknowledged ones are removed once older, and one still pending when it is trimmed is
/// dead-lettered (with its id) and counted, never silently acknowledged.
package struct RedisStreamsEventBus: EventBus {
    /// The client commands go through.
    package let client: RedisClient
    /// How long entries stay on a stream (`XADD … MINID ~ <now − retention>`).
    package let retentionSeconds: Int
    /// When set, a deduplicated publish (an accepted webhook) returns only once the entry is in the
    /// append-only file on disk (`WAITAOF 1 0`, Redis 7.2+).
    package let durability: BusDurability

    package init(client: RedisClient, retentionSeconds: Int = 7 * 86_400, durability: BusDurability = .none) {
        self.client = client
        self.retentionSeconds = retentionSeconds
        self.durability = durability
    }

    /// The oldest entry id kept: `<now − retention>-0`.
    private func minimumId(retention: Int? = nil) -> RedisArgument {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return .string("\(max(0, now - Int64(retention ?? retentionSeconds) * 1000))-0")
    }

    package func publish(_ event: BusEvent, to stream: String) async throws -> String {
        let reply = try await client.command(
            "XADD", .string(stream), "MINID", "~", minimumId(), "*", "e", .bytes(try event.encoded()))
        guard let id = reply.string else { throw BusError(.protocolViolation, "XADD returned \(reply)") }
        return id
    }

    /// Atomic "the lease is still ours, then append": a deposed partition owner publishes nothing.
    private static let fencedScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease no longer held') end
        return redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', 'e', ARGV[3])
        """)

    package func publish(_ event: BusEvent, to stream: String, fence: LeaseFence) async throws -> String {
        let reply = try await Self.fencedScript.run(
            on: client, keys: [.string(fence.key), .string(stream)], arguments: [.string(fence.holder), minimumId(), .bytes(try event.encoded())])[0]
        if case .error(let message) = reply {
            if message.hasPrefix("FENCED") { throw BusError(.fenced, "lease \(fence.key) is no longer held by \(fence.holder)") }
            throw BusError(.server, message)
        }
        guard let id = reply.string else { throw BusError(.protocolViolation, "fenced publish returned \(reply)") }
        return id
    }

    /// Atomic "remember the key, then append" so a retried webhook is published exactly once.
    private static let dedupScript = RedisScript(
        """
        if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
          return redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', 'e', ARGV[3])
        end
        return false
        """)

    package func publish(_ event: BusEvent, to stream: String, dedupKey: String, ttlSeconds: Int) async throws -> PublishOutcome {
        let waitAOF = try await durability.usesWaitAOF(client)
        let replies = try await Self.dedupScript.run(
            on: client, keys: [.string(dedupKey), .string(stream)],
            arguments: [.string(String(ttlSeconds)), minimumId(), .bytes(try event.encoded())],
            then: waitAOF ? [["WAITAOF", "1", "0", .string(String(BusDurability.waitMilliseconds))]] : [])
        if waitAOF {
            // Also for a duplicate: the first copy's append may not be on disk yet.
            let counts = replies[1].array?.compactMap(\.integer) ?? []
            guard let local = counts.first, local >= 1 else {
                throw BusError(.unavailable, "Redis did not confirm the append-only file write (WAITAOF: \(replies[1]))")
            }
        }
        let reply = replies[0]
        switch reply {
        case .null: return .duplicate
        case .error(let message): throw BusError(.server, message)
        default:
            guard let id = reply.string else { throw BusError(.protocolViolation, "dedup publish returned \(reply)") }
            return .published(id)
        }
    }

    package func ensureGroup(_ group: String, on stream: String) async throws {
        let reply = try await client.send([["XGROUP", "CREATE", .string(stream), .string(group), "0", "MKSTREAM"]])[0]
        if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") {
            throw BusError(.server, message)
        }
    }

    package func readGroup(_ group: String, consumer: String, streams: [String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
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

    package func ack(_ group: String, stream: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await client.command(["XACK", .string(stream), .string(group)] + ids.map { .string($0) })
    }

    package func reclaim(_ group: String, consumer: String, stream: String, minIdleMilliseconds: Int, count: Int) async throws -> [BusEntry] {
        let reply = try await client.command(
            "XAUTOCLAIM", .string(stream), .string(group), .string(consumer), .string(String(minIdleMilliseconds)),
            "0-0", "COUNT", .string(String(count)))
        guard let parts = reply.array, parts.count >= 2, let claimed = parts[1].array else {
            throw BusError(.protocolViolation, "XAUTOCLAIM returned \(reply)")
        }
        var entries = try claimed.compactMap { try Self.parseEntry($0, stream: stream) }
        // Entries trimmed away while still pending (older than the retention) come back as ids only
        // (Redis 7): their content is gone, so they go to the dead-letter stream with their ids, counted.
        if parts.count >= 3, let deleted = parts[2].array?.compactMap(\.string), !deleted.isEmpty {
            for id in deleted {
                try await deadLetter(
                    BusEntry(stream: stream, id: id, event: nil, raw: [], deliveries: 0), group: group,
                    error: "trimmed from the stream while still pending (older than the retention)")
            }
            Counter(label: "agentconnect_trimmed_pending_total", dimensions: [("stream", streamLabel(stream))]).increment(by: deleted.count)
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

    /// Append to the dead-letter stream, then acknowledge — in one script, so the acknowledgement
    /// runs only when the append succeeded (a failing command aborts the script).
    private static let deadLetterScript = RedisScript(
        """
        local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[1], '*', 'e', ARGV[2], 'stream', KEYS[1], 'group', ARGV[3],
          'entry', ARGV[4], 'deliveries', ARGV[5], 'error', ARGV[6])
        redis.call('XACK', KEYS[1], ARGV[3], ARGV[4])
        return id
        """)

    /// Dead letters are kept at least 30 days, however short the streams' retention.
    static let deadLetterRetentionSeconds = 30 * 86_400

    package func deadLetter(_ entry: BusEntry, group: String, error: String) async throws {
        let reply = try await Self.deadLetterScript.run(
            on: client, keys: [.string(entry.stream), .string(Streams.dead)],
            arguments: [
                minimumId(retention: max(retentionSeconds, Self.deadLetterRetentionSeconds)), .bytes(entry.raw), .string(group),
                .string(entry.id), .string(String(entry.deliveries)), .string(Masking.maskPhoneNumbers(error)),
            ])[0]
        if case .error(let message) = reply { throw BusError(.server, "dead-letter failed: \(message)") }
    }

    package func touch(_ group: String, consumer: String, stream: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await client.command(
            ["XCLAIM", .string(stream), .string(group), .string(consumer), "0"] + ids.map { .string($0) } + ["JUSTID"])
    }

    package func read(after positions: [String: String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
        guard !positions.isEmpty else { return [] }
        let ordered = positions.sorted { $0.key < $1.key }
        var arguments: [RedisArgument] = ["XREAD", "COUNT", .string(String(count)), "BLOCK", .string(String(blockMilliseconds)), "STREAMS"]
        arguments += ordered.map { .string($0.key) }
        arguments += ordered.map { .string($0.value) }
        let reply = try await client.withBlockingConnection { try await $0.command(arguments) }
        return try Self.parseStreams(reply)
    }

    package func pendingCount(_ group: String, stream: String) async throws -> Int {
        let reply = try await client.send([["XPENDING", .string(stream), .string(group)]])[0]
        if case .error(let message) = reply {
            if message.contains("NOGROUP") { return 0 }
            throw BusError(.server, message)
        }
        return Int(reply.array?.first?.integer ?? 0)
    }

    package func length(of stream: String) async throws -> Int {
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

/// What a deduplicated publish (an accepted webhook) waits for before it counts as on the bus.
package enum BusDurability: Sendable {
    /// Nothing beyond Redis's reply: what survives a Redis crash is what the server's own
    /// `appendfsync` setting has written (ship `appendfsync always` for no loss).
    case none
    /// `WAITAOF 1 0` after the append: the entry is fsynced to the local append-only file.
    case waitAOF
    /// `WAITAOF` when the server supports it (7.2+) and has the append-only file on, fsynced by
    /// Redis (`appendfsync` not `no`, which never confirms a `WAITAOF`); else `.none`.
    case auto(AutoDetected)

    /// How long `WAITAOF` may wait for the fsync.
    static let waitMilliseconds = 1000

    /// Reads `BUS_DURABILITY`: `auto` (default), `waitaof` or `none`.
    package static func fromSetting(_ value: String?) -> BusDurability? {
        switch value?.lowercased() ?? "auto" {
        case "auto", "": return .auto(AutoDetected())
        case "waitaof": return .waitAOF
        case "none": return BusDurability.none
        default: return nil
        }
    }

    func usesWaitAOF(_ client: RedisClient) async throws -> Bool {
        switch self {
        case .none: return false
        case .waitAOF: return true
        case .auto(let detected): return try await detected.resolve(client)
        }
    }

    /// The server's support for `WAITAOF`, read once from `INFO` (and `CONFIG GET appendfsync`
    /// where `CONFIG` is allowed).
    package final class AutoDetected: Sendable {
        private let known = NIOLockedValueBox<Bool?>(nil)

        package init() {}

        func resolve(_ client: RedisClient) async throws -> Bool {
            if let known = known.withLockedValue({ $0 }) { return known }
            let info = try await client.command("INFO", "server").string ?? ""
            let persistence = try await client.command("INFO", "persistence").string ?? ""
            // With `appendfsync no` Redis never fsyncs on its own account, so `WAITAOF` would time out
            // on every publish. Managed services often refuse CONFIG: then the setting stays unknown.
            let fsyncReply = try await client.send([["CONFIG", "GET", "appendfsync"]])[0]
            let result = Self.decide(info: info, persistence: persistence, appendfsync: fsyncReply.array?.dropFirst().first?.string)
            known.withLockedValue { $0 = result }
            return result
        }

        /// ``BusDurability/waitAOFConfirms(redisVersion:aofEnabled:appendfsync:)`` from `INFO server`
        /// and `INFO persistence` text.
        static func decide(info: String, persistence: String, appendfsync: String?) -> Bool {
            func value(_ key: String, in text: String) -> String? {
                text.split(whereSeparator: \.isNewline).first { $0.hasPrefix(key + ":") }.map {
                    String($0.dropFirst(key.count + 1)).trimmingCharacters(in: .whitespaces)
                }
            }
            return BusDurability.waitAOFConfirms(
                redisVersion: value("redis_version", in: info) ?? "0", aofEnabled: value("aof_enabled", in: persistence) == "1",
                appendfsync: appendfsync)
        }
    }

    /// Whether the server has `WAITAOF` at all: Redis 7.2 or later.
    package static func waitAOFSupported(redisVersion: String) -> Bool {
        let parts = redisVersion.split(separator: ".").compactMap { Int($0) }
        return parts.count >= 2 && (parts[0], parts[1]) >= (7, 2)
    }

    /// Whether `WAITAOF` can confirm appends on this server: 7.2+, the append-only file on, and
    /// `appendfsync` anything but `no` (under which Redis never fsyncs; `nil`: unknown, e.g. CONFIG refused).
    package static func waitAOFConfirms(redisVersion: String, aofEnabled: Bool, appendfsync: String?) -> Bool {
        waitAOFSupported(redisVersion: redisVersion) && aofEnabled && appendfsync?.lowercased() != "no"
    }
}
