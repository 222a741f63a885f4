import AgentConnectCore

/// One entry read from a stream.
package struct BusEntry: Sendable {
    /// The stream it was read from.
    package var stream: String
    /// The stream entry id (`1700000000000-0`).
    package var id: String
    /// The decoded event, or `nil` when the entry could not be decoded (see `raw`).
    package var event: BusEvent?
    /// The raw `e` field, kept for dead-lettering entries that do not decode.
    package var raw: [UInt8]
    /// How many times the group has delivered this entry (1 on first delivery).
    package var deliveries: Int

    package init(stream: String, id: String, event: BusEvent?, raw: [UInt8], deliveries: Int = 1) {
        self.stream = stream
        self.id = id
        self.event = event
        self.raw = raw
        self.deliveries = deliveries
    }
}

/// A lease a publish depends on: the Redis key and the value it must still hold.
package struct LeaseFence: Sendable, Equatable {
    package var key: String
    package var holder: String
    /// The Redis the lease is on: "" for `REDIS_URL`'s, ``voiceScope`` for `VOICE_REDIS_URL`'s. A fence
    /// guards publishes to streams on its own Redis only.
    package var scope: String

    /// The scope of leases on `VOICE_REDIS_URL`'s Redis.
    package static let voiceScope = "voice"

    package init(key: String, holder: String, scope: String = "") {
        self.key = key
        self.holder = holder
        self.scope = scope
    }

    /// The fence of the turn running in this task, set by the inbound consumer around each turn.
    @TaskLocal package static var current: LeaseFence?
}

/// The outcome of a deduplicated publish.
package enum PublishOutcome: Sendable, Equatable {
    /// The event is on the stream with this entry id.
    case published(String)
    /// The dedup key was seen before; nothing was published.
    case duplicate
}

/// Normalized events between services (docs/architecture.md §2): at-least-once delivery through consumer
/// groups, reclaiming of entries a dead consumer left pending, and a dead-letter stream.
package protocol EventBus: Sendable {
    /// Appends `event` to `stream`; returns the entry id once the event is on the bus.
    func publish(_ event: BusEvent, to stream: String) async throws -> String

    /// Appends `event` unless `dedupKey` was used within `ttlSeconds`; the check and the append are atomic.
    func publish(_ event: BusEvent, to stream: String, dedupKey: String, ttlSeconds: Int) async throws -> PublishOutcome

    /// Creates `group` on `stream` (and the stream) if missing; harmless when it exists.
    func ensureGroup(_ group: String, on stream: String) async throws

    /// Reads new entries for `consumer` in `group`, waiting up to `blockMilliseconds` when there are none.
    func readGroup(_ group: String, consumer: String, streams: [String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry]

    /// Acknowledges entries so they are not delivered again.
    func ack(_ group: String, stream: String, ids: [String]) async throws

    /// Takes over entries pending longer than `minIdleMilliseconds` (a dead or stuck consumer's),
    /// with their delivery counts.
    func reclaim(_ group: String, consumer: String, stream: String, minIdleMilliseconds: Int, count: Int) async throws -> [BusEntry]

    /// Moves an entry to ``Streams/dead`` with the error, and acknowledges it.
    func deadLetter(_ entry: BusEntry, group: String, error: String) async throws

    /// Reads entries after the given ids without a group (`XREAD`), waiting up to `blockMilliseconds`.
    func read(after positions: [String: String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry]

    /// Entries in the group not yet acknowledged.
    func pendingCount(_ group: String, stream: String) async throws -> Int

    /// Resets the idle time of entries this consumer is still working on (`XCLAIM … JUSTID`, which
    /// does not count a delivery), so no peer reclaims work in flight.
    func touch(_ group: String, consumer: String, stream: String, ids: [String]) async throws

    /// Appends `event` only while `fence` still holds (the publisher's partition lease): a deposed
    /// owner's publish is refused atomically with ``BusError/Code/fenced``.
    func publish(_ event: BusEvent, to stream: String, fence: LeaseFence) async throws -> String

    /// Number of entries on a stream.
    func length(of stream: String) async throws -> Int
}

/// Chooses the inbound partition of a conversation so all its events land on one stream.
package enum Partitioner {
    /// A stable hash (FNV-1a, 64-bit) of the conversation id modulo `partitions`.
    package static func partition(of conversationId: String, partitions: Int) -> Int {
        Int(stableHash(conversationId) % UInt64(max(1, partitions)))
    }

    /// The inbound stream for a conversation.
    package static func inboundStream(for conversationId: String, partitions: Int) -> String {
        Streams.inboundPartition(partition(of: conversationId, partitions: partitions))
    }
}

extension EventBus {
    /// A deduplicated publish that rides out a Redis blip: retried with backoff (100 ms doubling to
    /// 2 s) while Redis is unavailable, up to `attempts` times; the last error is thrown. For events
    /// nobody will resend (a call's end noticed on a socket close).
    package func publishRetrying(
        _ event: BusEvent, to stream: String, dedupKey: String, ttlSeconds: Int, attempts: Int = 8
    ) async throws -> PublishOutcome {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        for attempt in 1...max(1, attempts) {
            do {
                return try await publish(event, to: stream, dedupKey: dedupKey, ttlSeconds: ttlSeconds)
            } catch let error where BusError.isUnavailable(error) && attempt < attempts && !Task.isCancelled {
                try await Task.sleep(for: backoff.next())
            }
        }
        throw BusError(.unavailable, "unreachable")  // not reached: the last attempt throws or returns
    }
}
