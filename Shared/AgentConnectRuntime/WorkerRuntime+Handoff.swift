import AgentConnect
import AgentConnectCore
import EventBus
import Logging
import NIOConcurrencyHelpers
import ServiceSupport

/// Handoffs waiting for the end of the turn: voice sends the `end` frame after the goodbye.
final class PendingHandoffs: Sendable {
    private let pending = NIOLockedValueBox<[String: String]>([:])

    func set(_ conversationId: String, handoffData: String) {
        pending.withLockedValue { $0[conversationId] = handoffData }
    }

    func take(_ conversationId: String) -> String? {
        pending.withLockedValue { $0.removeValue(forKey: conversationId) }
    }
}

extension WorkerRuntime {
    /// Hands the conversation to a person (``TAC/handoff(_:reason:attributes:)``, docs/architecture.md §6.7):
    /// on messaging through the outbound service, then `conversation.ended`; on voice the `end` frame
    /// with the handoff data after the turn's reply (at once outside a turn).
    func handoff(_ session: ConversationSession, attributes: [String: String]) async throws {
        let turn = TurnContext.current.flatMap { $0.session.conversationId == session.conversationId ? $0 : nil }
        let mode = turn?.mode ?? session.metadata["mode"].flatMap(ConversationMode.init(rawValue:)) ?? .orchestrator
        let body: JSONValue = [
            "conversationId": .string(session.conversationId), "profileId": .string(session.profileId ?? ""),
            "attributes": JSONValue(attributes), "channel": .string(session.channel.rawValue), "mode": .string(mode.rawValue),
            "customerAddress": JSONValue(session.authorInfo.address), "agentAddress": JSONValue(session.aiAgentInfo.address),
        ]
        let outbound = OutboundClient(configuration: configuration)
        if session.channel == .voice {
            if mode == .orchestrator, configuration.conversationConfigurationId != nil {
                do {
                    _ = try await outbound.post("/v1/handoffs", body)
                } catch {
                    logger.warning(
                        "handoff: the orchestrator update failed", metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
                }
            }
            let data: JSONValue = [
                "conversationId": .string(session.conversationId), "profileId": .string(session.profileId ?? ""), "attributes": JSONValue(attributes),
            ]
            pendingHandoffs.set(session.conversationId, handoffData: data.compactJSON)
            if turn == nil { try await finishHandoff(session) }
        } else {
            _ = try await outbound.post("/v1/handoffs", body)
            try await publishEnded(session, reason: .handoff)
        }
    }

    /// Sends a voice handoff's `end` frame (after the turn's reply) and ends the conversation.
    func finishHandoff(_ session: ConversationSession) async throws {
        guard let data = pendingHandoffs.take(session.conversationId) else { return }
        try await sendFrames(conversationId: session.conversationId) { emit in
            try await emit(["type": "end", "handoffData": .string(data)])
        }
        try await publishEnded(session, reason: .handoff)
    }

    /// Puts `conversation.ended` on the conversation's partition, behind the turn in hand (a call's on
    /// the calls' Redis, where its turns are and where the relay deduplicates its own `ended`).
    func publishEnded(_ session: ConversationSession, reason: ConversationEnded.Reason) async throws {
        let event = try ConversationEnded.event(
            conversationId: session.conversationId, channel: session.channel, reason: reason, callSid: session.callSid)
        let stream = Partitioner.inboundStream(for: session.conversationId, partitions: common.inboundPartitions)
        _ = try await (session.channel == .voice ? voiceBus : bus).publish(
            event, to: stream, dedupKey: ConversationEnded.dedupKey(conversationId: session.conversationId),
            ttlSeconds: ConversationEnded.dedupTTLSeconds)
    }
}
