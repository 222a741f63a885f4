/// Stream names (docs/architecture.md §2). Other Redis keys are in ``RedisKeys``.
package enum Streams {
    /// Customer turns and lifecycle events, consumed by agent-workers (one stream per partition:
    /// ``inboundPartition(_:)``).
    package static let inbound = "tac:inbound"
    /// Messaging replies, consumed by outbound.
    package static let outbound = "tac:outbound"
    /// Entries that failed too often, with their error.
    package static let dead = "tac:dead"
    /// What every relay's reply-frame stream is named after (``voice(instance:)``).
    package static let voicePrefix = "tac:voice"
    /// The reply-frame stream of one voice-relay instance.
    package static func voice(instance: String) -> String { "\(voicePrefix):\(instance)" }
    /// One partition of the inbound stream.
    package static func inboundPartition(_ index: Int) -> String { "\(inbound):\(index)" }
}
