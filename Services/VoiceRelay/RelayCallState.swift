import NIOConcurrencyHelpers

/// What the relay knows about a call beyond its socket: the `setup` frame's details (they travel
/// with every prompt to the agent's session) and whether a reply is streaming to the caller right
/// now (frames of a turn forwarded, its `last: true` not yet), which decides whether an `interrupt`
/// is acknowledged and whether a prompt cuts the reply.
final class RelayCallState: Sendable {
    private struct State {
        var setup: [String: String] = [:]
        var streamingTurn: String?
    }

    private let state = NIOLockedValueBox(State())

    /// `callerName`, `forwardedFrom`, `parentCallSid`, `callType`, `sessionId`, `accountSid` (non-empty ones).
    var setup: [String: String] {
        get { state.withLockedValue { $0.setup } }
        set { state.withLockedValue { $0.setup = newValue } }
    }

    /// A text frame of `turnId` reached the caller; `isLast` ends the reply.
    func forwarded(turnId: String, isLast: Bool) {
        state.withLockedValue { state in
            if isLast {
                if state.streamingTurn == turnId { state.streamingTurn = nil }
            } else {
                state.streamingTurn = turnId
            }
        }
    }

    /// Whether a reply is streaming.
    var isStreaming: Bool { state.withLockedValue { $0.streamingTurn != nil } }

    /// The reply (if any) stops here; returns whether one was streaming.
    @discardableResult
    func stopStreaming() -> Bool {
        state.withLockedValue { state in
            defer { state.streamingTurn = nil }
            return state.streamingTurn != nil
        }
    }
}
