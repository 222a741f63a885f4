import AgentConnectCore
import NIOConcurrencyHelpers

/// The turn a callback is running for, so `sendResponse` can derive reply ids and routing from it.
struct TurnContext: Sendable {
    /// The inbound event being answered.
    let event: BusEvent
    /// The session built for it.
    let session: ConversationSession
    /// The relay instance holding the call's socket (voice).
    let relayInstance: String?
    private let counter = NIOLockedValueBox(0)

    init(event: BusEvent, session: ConversationSession, relayInstance: String?) {
        self.event = event
        self.session = session
        self.relayInstance = relayInstance
    }

    /// A reply id that is the same when the turn is redone: `<event id>:r<n>`.
    func nextReplyId() -> String {
        let n = counter.withLockedValue { value -> Int in
            value += 1
            return value
        }
        return "\(event.id):r\(n)"
    }

    @TaskLocal static var current: TurnContext?
}
