package import AgentConnect
package import AgentConnectCore
import NIOConcurrencyHelpers
import Store

/// The turn a callback is running for, so `sendResponse` can derive reply ids and routing from it.
package struct TurnContext: Sendable {
    /// The inbound event being answered.
    package let event: BusEvent
    /// The session built for it.
    package let session: ConversationSession
    /// How the conversation reaches Twilio, from the event (its replies go back the same way).
    let mode: ConversationMode
    /// The relay instance holding the call's socket (voice).
    let relayInstance: String?
    /// Whether that relay reads several frames from one event (``MessageReceived/framesInRow``).
    package let framesInRow: Bool
    private let counter = NIOLockedValueBox(0)
    /// The turn's replies (messaging, and voice replies spoken within the turn), recorded in the
    /// history with the customer's message or the caller's prompt once the turn is done (one
    /// statement for the turn instead of one per row).
    private let replies = NIOLockedValueBox<(rows: [MessageRecord], taken: Bool)>(([], false))

    init(event: BusEvent, session: ConversationSession, mode: ConversationMode, relayInstance: String?, framesInRow: Bool = false) {
        self.event = event
        self.session = session
        self.mode = mode
        self.relayInstance = relayInstance
        self.framesInRow = framesInRow
    }

    /// A reply id that is the same when the turn is redone: `<event id>:r<n>`.
    func nextReplyId() -> String {
        let n = counter.withLockedValue { value -> Int in
            value += 1
            return value
        }
        return "\(event.id):r\(n)"
    }

    /// Keeps a reply's history row for the end of the turn (``takeReplies()``); false once the turn
    /// has taken them (a task the callback left running sends after it): record the row now.
    func recordAfterTurn(_ reply: MessageRecord) -> Bool {
        replies.withLockedValue { replies in
            guard !replies.taken else { return false }
            replies.rows.append(reply)
            return true
        }
    }

    /// The reply rows kept, handed over once: later replies of this turn are recorded as they go.
    func takeReplies() -> [MessageRecord] {
        replies.withLockedValue { replies in
            defer { replies = ([], true) }
            return replies.rows
        }
    }

    @TaskLocal package static var current: TurnContext?
}
