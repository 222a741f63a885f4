import AgentConnect
import AgentConnectCore
import Foundation
import Logging
import Metrics
import Store

/// Conversation Intelligence operator results (`/ci-webhook`, as TAC, docs/architecture.md §6.6) written to the customer's
/// memory: the summary operator's results become conversation summaries, the observation operator's
/// become observations. Ids are derived from the operator result, so a redelivered event writes nothing new.
struct IntelligenceResults: Sendable {
    let configuration: TACConfiguration
    let store: any ConversationStore & CustomerMemoryStore
    let logger: Logger

    /// What one event came to.
    struct Outcome: Equatable {
        var created = 0
        var skipped: [String] = []
    }

    @discardableResult
    func apply(_ event: BusEvent) async throws -> Outcome {
        var outcome = Outcome()
        let payload = try event.decode(IntelligenceResult.self).body
        guard let expected = configuration.intelligenceConfigurationId else {
            return skip(&outcome, "CONVERSATION_INTELLIGENCE_CONFIGURATION_ID is not set")
        }
        guard payload["intelligenceConfiguration"]?["id"]?.string == expected else {
            return skip(&outcome, "Configuration ID mismatch (expected \(expected))")
        }
        for result in payload["operatorResults"]?.array ?? [] {
            let operatorId = result["operator"]?["id"]?.string
            let kind: Kind
            if let sid = configuration.summaryOperatorSid, operatorId == sid {
                kind = .summary
            } else if let sid = configuration.observationOperatorSid, operatorId == sid {
                kind = .observation
            } else {
                skip(&outcome, "operator \(operatorId ?? "?") is not configured")
                continue
            }
            let items = Self.items(Self.content(of: result), kind: kind)
            guard !items.isEmpty else {
                skip(&outcome, "empty result")
                continue
            }
            let profiles = try await profileIds(result, conversationId: event.conversationId)
            guard !profiles.isEmpty else {
                skip(&outcome, "no customer profile")
                continue
            }
            let resultId = result["id"]?.string ?? event.id
            let occurredAt = result["dateCreated"]?.string.flatMap { try? Date($0, strategy: .iso8601) }
            for profileId in profiles {
                for (index, content) in items.enumerated() {
                    let id = "\(resultId):\(profileId):\(index)"
                    switch kind {
                    case .summary:
                        _ = try await store.addSummary(
                            profileId: profileId, content: content, source: "conversation-intelligence", conversationId: event.conversationId,
                            occurredAt: occurredAt, id: id)
                    case .observation:
                        _ = try await store.addObservation(
                            profileId: profileId, content: content, source: "conversation-intelligence", conversationId: event.conversationId, id: id)
                    }
                    outcome.created += 1
                }
            }
        }
        Counter(label: "agentconnect_intelligence_items_total", dimensions: [("outcome", "created")]).increment(by: outcome.created)
        logger.info(
            "intelligence results applied",
            metadata: ["conversation.id": "\(event.conversationId)", "created": "\(outcome.created)", "skipped": "\(outcome.skipped)"])
        return outcome
    }

    enum Kind { case summary, observation }

    @discardableResult
    private func skip(_ outcome: inout Outcome, _ reason: String) -> Outcome {
        outcome.skipped.append(reason)
        Counter(label: "agentconnect_intelligence_items_total", dimensions: [("outcome", "skipped")]).increment()
        logger.info("intelligence result skipped", metadata: ["reason": "\(reason)"])
        return outcome
    }

    /// The CUSTOMER participants' profile ids; else the conversation's customer, as we know it.
    private func profileIds(_ result: JSONValue, conversationId: String) async throws -> [String] {
        let participants = result["executionDetails"]?["participants"]?.array ?? []
        let ids = participants.filter { $0["type"]?.string == "CUSTOMER" }.compactMap { $0["profileId"]?.string }.filter { !$0.isEmpty }
        if !ids.isEmpty {
            for id in ids { try await store.ensureProfile(id: id) }
            return ids
        }
        guard let conversation = try await store.conversation(id: conversationId) else { return [] }
        if let profileId = conversation.profileId { return [profileId] }
        guard let identifier = ProfileIdentifier(address: conversation.customerAddress),
            let profileId = try await store.profileId(for: identifier, create: true)
        else { return [] }
        try await store.upsertConversation(ConversationRecord(id: conversationId, channel: conversation.channel, profileId: profileId))
        return [profileId]
    }

    /// The result's text, by `outputFormat` (as TAC, docs/architecture.md §6.6).
    static func content(of result: JSONValue) -> String {
        let body = result["result"] ?? .null
        switch (result["outputFormat"]?.string ?? "").uppercased() {
        case "JSON":
            if let payload = body["payload"]?.string { return payload }
            if let payload = body["com.twilio.cai.intelligence.JSONResult"]?["payload"]?.string { return payload }
            return body.compactJSON
        case "CLASSIFICATION":
            return body["label"]?.string ?? ""
        case "EXTRACTION":
            return (body["entities"] ?? .null).compactJSON
        case "TEXT", "GENERATION":
            return body["result"]?.string ?? ""
        default:
            return body.compactJSON
        }
    }

    /// `{"summaries":[{"summary":…}]}`, `{"summary":…}`, `{"observations":[…]}`, `{"observation":…}`,
    /// or the text itself as one item.
    static func items(_ content: String, kind: Kind) -> [String] {
        let trimmed = content.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return [] }
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(trimmed.utf8)), case .object = json else { return [trimmed] }
        let (plural, singular) = kind == .summary ? ("summaries", "summary") : ("observations", "observation")
        if let list = json[plural]?.array {
            return list.compactMap { $0.string ?? $0[singular]?.string ?? $0["content"]?.string }.filter { !$0.isEmpty }
        }
        if let one = json[singular]?.string ?? json["content"]?.string { return one.isEmpty ? [] : [one] }
        return [trimmed]
    }
}
