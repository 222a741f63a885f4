import AgentConnect
import AgentConnectCore
import Logging
import Store

extension WorkerRuntime {
    /// Records an agent reply in the history. Called after the reply is on the bus, so PostgreSQL
    /// never delays it; a failure is logged, never fatal to the turn.
    func recordOutbound(_ text: String, replyId: String, session: ConversationSession) async {
        do {
            let store = store
            _ = try await withTimeout(.seconds(10), "recording the reply") {
                try await store.appendMessage(
                    MessageRecord(
                        id: replyId, conversationId: session.conversationId, channel: session.channel, direction: .outbound,
                        authorAddress: session.aiAgentInfo.address, body: text))
            }
        } catch {
            logger.warning("could not record reply", metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
        }
    }
}
