import AgentConnectCore

/// `DELIVERY_RETENTION_SECONDS`: how long outbound keeps a finished delivery row, read the same way
/// by outbound (which deletes the rows) and by `agentconnect dead-letters replay` (which must not
/// bring back a reply whose row may be gone).
///
/// A delivery row is what stops a second send of its reply. It is created while the reply's entry,
/// or the inbound entry whose turn publishes it, is on its stream, at most
/// `BUS_STREAM_RETENTION_SECONDS` before that entry is trimmed or dead-lettered. So a stream entry
/// can never outlive its row, and a dead letter replayed within ``replayWindowSeconds(retention:streamRetention:)``
/// of being dead-lettered still finds it.
package enum DeliveryRetentionSetting {
    /// The least retention beyond the streams': one day of dead letters can be replayed.
    package static let minimumReplayWindow = 86_400

    /// The setting, checked against the streams' retention: 0 (rows kept forever) or at least a day
    /// longer. Default: 30 days, or the streams' retention and a week when that is longer.
    package static func seconds(_ environment: Environment, streamRetentionSeconds: Int) throws -> Int {
        let seconds = try environment.int(
            "DELIVERY_RETENTION_SECONDS", default: max(30 * 86_400, streamRetentionSeconds + 7 * 86_400), range: 0...3650 * 86_400)
        if seconds > 0, seconds < streamRetentionSeconds + minimumReplayWindow {
            throw ConfigurationError(
                variable: "DELIVERY_RETENTION_SECONDS",
                reason: "must be 0 (keep forever) or at least BUS_STREAM_RETENTION_SECONDS (\(streamRetentionSeconds)) + 86400, got \(seconds): "
                    + "a delivery row must outlive every entry that could send its reply again")
        }
        return seconds
    }

    /// How long after being dead-lettered an entry may be replayed without risking a second send:
    /// nil when rows are kept forever.
    package static func replayWindowSeconds(retention: Int, streamRetention: Int) -> Int? {
        retention == 0 ? nil : retention - streamRetention
    }
}
