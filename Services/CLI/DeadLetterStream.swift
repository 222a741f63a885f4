import AgentConnectCore
import EventBus
import Foundation

/// `tac:dead` as operators handle it: list, replay to the original stream, drop.
///
/// A dead entry carries the original entry's fields (`e`, the event envelope) plus what the consumer
/// recorded: `stream`, `group`, `entry`, `deliveries` and `error` (see `EventBus.deadLetter`).
struct DeadLetterStream: Sendable {
    let client: RedisClient

    /// The fields a dead-lettering consumer adds; every other field belongs to the original entry.
    static let metadataFields: Set<String> = ["stream", "group", "entry", "deliveries", "error"]

    /// One dead entry, without its body.
    struct Entry: Sendable {
        /// Its id in `tac:dead`.
        var id: String
        /// Where it came from, and what happened there.
        var stream: String?
        var group: String?
        var entry: String?
        var deliveries: Int?
        /// The consumer's error, with phone numbers masked (again: entries written before the
        /// services masked them may hold them).
        var error: String?
        /// The event's type and id, when the envelope decodes.
        var eventType: String?
        var eventId: String?

        var json: JSONValue {
            var object: [String: JSONValue] = ["id": .string(id)]
            object["stream"] = stream.map(JSONValue.string) ?? .null
            object["group"] = group.map(JSONValue.string) ?? .null
            object["entry"] = entry.map(JSONValue.string) ?? .null
            object["deliveries"] = deliveries.map { .number(Double($0)) } ?? .null
            object["error"] = error.map(JSONValue.string) ?? .null
            object["type"] = eventType.map(JSONValue.string) ?? .null
            object["eventId"] = eventId.map(JSONValue.string) ?? .null
            return .object(object)
        }
    }

    /// How many entries `tac:dead` holds.
    func count() async throws -> Int {
        Int(try await client.command("XLEN", .string(Streams.dead)).integer ?? 0)
    }

    /// Up to `limit` entries, oldest first, after `after` (exclusive) when given.
    func list(limit: Int, after: String? = nil) async throws -> [Entry] {
        let start: RedisArgument = after.map { .string("(" + $0) } ?? "-"
        let reply = try await client.command("XRANGE", .string(Streams.dead), start, "+", "COUNT", .string(String(limit)))
        return (reply.array ?? []).compactMap(Self.parse)
    }

    /// The id of the newest entry (replay/drop `--all` stop there, so entries dead-lettered meanwhile wait).
    func newestId() async throws -> String? {
        let reply = try await client.command("XREVRANGE", .string(Streams.dead), "+", "-", "COUNT", "1")
        return reply.array?.first?.array?.first?.string
    }

    /// Ids of every entry up to and including `last`, oldest first.
    func ids(through last: String) async throws -> [String] {
        var ids: [String] = []
        var after: String?
        while true {
            let start: RedisArgument = after.map { .string("(" + $0) } ?? "-"
            let reply = try await client.command("XRANGE", .string(Streams.dead), start, .string(last), "COUNT", "500")
            let page = (reply.array ?? []).compactMap { $0.array?.first?.string }
            ids += page
            guard let next = page.last, page.count == 500 else { return ids }
            after = next
        }
    }

    /// Re-publishes the entry's original (non-empty) fields to its original stream and deletes it
    /// from `tac:dead`, in one script: both happen or neither. The stream named in `KEYS[2]` must be
    /// the entry's own (read just before); an entry with no content left is refused.
    private static let replayScript = """
        local rows = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
        if #rows == 0 then return false end
        local fields = rows[1][2]
        local original = {}
        local stream = nil
        for i = 1, #fields, 2 do
          local name = fields[i]
          if name == 'stream' then
            stream = fields[i + 1]
          elseif name ~= 'group' and name ~= 'entry' and name ~= 'deliveries' and name ~= 'error' and fields[i + 1] ~= '' then
            table.insert(original, name)
            table.insert(original, fields[i + 1])
          end
        end
        if stream ~= KEYS[2] then return redis.error_reply('REPLAY the entry names another stream') end
        if #original == 0 then return redis.error_reply('REPLAY the entry carries none of the original content (trimmed before it was dead-lettered?): drop it') end
        local id = redis.call('XADD', KEYS[2], '*', unpack(original))
        redis.call('XDEL', KEYS[1], ARGV[1])
        return id
        """

    /// What became of one replayed entry.
    enum ReplayOutcome: Sendable, Equatable {
        /// On `stream` again, as entry `id`.
        case replayed(stream: String, id: String)
        case notFound
    }

    /// Replays one entry (see ``replayScript``), unless it was dead-lettered more than `windowSeconds`
    /// ago (by Redis's clock, which named the entry): its reply's delivery row may have been deleted
    /// since (``DeliveryRetentionSetting``), and the replay could send the reply a second time.
    func replay(_ id: String, windowSeconds: Int?) async throws -> ReplayOutcome {
        let reply = try await client.command("XRANGE", .string(Streams.dead), .string(id), .string(id))
        guard let row = reply.array?.first else { return .notFound }
        if let windowSeconds, let deadAt = id.split(separator: "-").first.flatMap({ Int($0) }),
            let now = try await client.command("TIME").array?.first?.string.flatMap(Int.init)
        {
            let age = now - deadAt / 1000
            if age > windowSeconds {
                throw CLIError(
                    "\(id) was dead-lettered \(age / 3600) h ago, past the replay window of \(windowSeconds / 3600) h "
                        + "(DELIVERY_RETENTION_SECONDS - BUS_STREAM_RETENTION_SECONDS): its reply's delivery row may be deleted, "
                        + "so a replay could send the reply twice; drop it")
            }
        }
        guard let stream = Self.fields(row)["stream"].map({ String(decoding: $0, as: UTF8.self) }), !stream.isEmpty else {
            throw CLIError("\(id) names no original stream; drop it instead")
        }
        let replies = try await client.send([["EVAL", .string(Self.replayScript), "2", .string(Streams.dead), .string(stream), .string(id)]])
        switch replies.first {
        case .some(.null): return .notFound
        case .some(.error(let message)): throw CLIError("\(id): \(message.replacingOccurrences(of: "REPLAY ", with: ""))")
        case .some(let value):
            guard let newId = value.string else { throw CLIError("\(id): unexpected reply \(value)") }
            return .replayed(stream: stream, id: newId)
        case .none: throw CLIError("\(id): no reply from Redis")
        }
    }

    /// Deletes one entry; false when it was not there.
    func drop(_ id: String) async throws -> Bool {
        try await client.command("XDEL", .string(Streams.dead), .string(id)).integer == 1
    }

    /// `[id, [field, value, …]]` → ``Entry``.
    static func parse(_ row: RedisValue) -> Entry? {
        guard let id = row.array?.first?.string else { return nil }
        let fields = fields(row)
        func text(_ name: String) -> String? { fields[name].map { String(decoding: $0, as: UTF8.self) } }
        let event = fields["e"].flatMap { try? BusEvent.decode($0) }
        return Entry(
            id: id, stream: text("stream"), group: text("group"), entry: text("entry"), deliveries: text("deliveries").flatMap { Int($0) },
            error: text("error").map(Masking.maskPhoneNumbers), eventType: event?.type, eventId: event?.id)
    }

    private static func fields(_ row: RedisValue) -> [String: [UInt8]] {
        let values = row.array?.dropFirst().first?.array ?? []
        var fields: [String: [UInt8]] = [:]
        var index = 0
        while index + 1 < values.count {
            if let name = values[index].string, case .bulk(let bytes) = values[index + 1] { fields[name] = bytes }
            index += 2
        }
        return fields
    }
}
