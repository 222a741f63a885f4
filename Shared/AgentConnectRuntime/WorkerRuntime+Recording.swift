import AgentConnect
import AgentConnectCore
import Logging
import Store

extension WorkerRuntime {
    /// Records an agent reply in the history. Called after the reply is on the bus, so PostgreSQL
    /// never delays it; a failure is logged, never fatal to the turn.
    func recordOutbound(_ text: String, replyId: String, session: ConversationSession) async {
        await recordOutbound([Self.outboundRecord(text, replyId: replyId, session: session)])
    }

    /// Records agent replies (rows made with ``outboundRecord(_:replyId:session:)``) in one statement.
    func recordOutbound(_ replies: [MessageRecord]) async {
        guard let first = replies.first else { return }
        do {
            _ = try await withDeadline(.seconds(10), "recording the reply") { try await store.appendMessages(replies) }
        } catch {
            logger.warning("could not record reply", metadata: ["conversation.id": "\(first.conversationId)", "error": "\(error)"])
        }
    }

    /// A reply's history row, stamped now.
    static func outboundRecord(_ text: String, replyId: String, session: ConversationSession) -> MessageRecord {
        MessageRecord(
            id: replyId, conversationId: session.conversationId, channel: session.channel, direction: .outbound,
            authorAddress: session.aiAgentInfo.address, body: text)
    }
}
