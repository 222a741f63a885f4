public import AgentConnectCore
import Foundation
package import NIOConcurrencyHelpers

/// Tools that ship with the SDK, each one line to enable on the built-in `openai` agent
/// (`installOpenAI(on:builtIn:)`, or `OPENAI_TOOLS=recall_memory,text_customer` for agent-worker).
public enum BuiltInTool: Sendable, Equatable {
    /// Hand the conversation to a person (``TAC/studioHandoffTool(session:attributes:name:description:)``);
    /// offered by itself when `TWILIO_STUDIO_HANDOFF_FLOW_SID` is set.
    case handoff
    /// Look up what is remembered about the customer (``TAC/memoryRecallTool(session:)``).
    case recallMemory
    /// Text the customer on a messaging channel, e.g. a link while they are on the phone
    /// (``TAC/textCustomerTool(session:channel:)``).
    case textCustomer(channel: ChannelKind)
    /// Search the knowledge base (``TAC/knowledgeSearchTool(name:limit:)``).
    case searchKnowledge
    /// Voice: hang up after the goodbye (``TAC/endCallTool(session:)``).
    case endCall
    /// Voice: transfer the caller to a person after the reply (the handoff, as `transfer_call`).
    case transferCall

    /// Names `OPENAI_TOOLS` accepts.
    public static let names = ["handoff", "recall_memory", "text_customer", "search_knowledge", "end_call", "transfer_call"]

    /// The tool named `name` in `OPENAI_TOOLS` (`text_customer` texts by SMS).
    public init?(name: String) {
        switch name.lowercased() {
        case "handoff": self = .handoff
        case "recall_memory": self = .recallMemory
        case "text_customer": self = .textCustomer(channel: .sms)
        case "search_knowledge": self = .searchKnowledge
        case "end_call": self = .endCall
        case "transfer_call": self = .transferCall
        default: return nil
        }
    }

    /// The tool for one session.
    public func tools(tac: TAC, session: ConversationSession) throws -> [AgentTool] {
        switch self {
        case .handoff: [try tac.studioHandoffTool(session: session)]
        case .recallMemory: [tac.memoryRecallTool(session: session)]
        case .textCustomer(let channel): [tac.textCustomerTool(session: session, channel: channel)]
        case .searchKnowledge: [tac.knowledgeSearchTool()]
        case .endCall: session.channel == .voice ? [tac.endCallTool(session: session)] : []
        case .transferCall:
            session.channel == .voice
                ? [
                    try tac.studioHandoffTool(
                        session: session, name: "transfer_call",
                        description:
                            "Transfer the caller to a person. Use it when they ask for a human or you cannot help; say a short goodbye after calling it."
                    )
                ] : []
        }
    }

    /// Calls whose `end_call` ran this turn: the agent ends the session after its reply.
    package static let pendingEnds = NIOLockedValueBox<Set<String>>([])
}

extension TAC {
    /// `recall_memory`: the model asks what is remembered about the customer (observations and
    /// summaries ranked by relevance to its `query`, as ``retrieveMemory(_:query:)``).
    public func memoryRecallTool(session: ConversationSession, name: String = "recall_memory") -> AgentTool {
        let parameters = ToolSchema.object([
            "query": ToolSchema.string("What to look for, e.g. \"coffee preferences\" or \"last order\".")
        ])
        return AgentTool(
            name: name,
            description:
                "Recall what is remembered about this customer from earlier conversations: facts, preferences and summaries relevant to a query.",
            parameters: parameters
        ) { arguments, _ in
            let memory = try await self.retrieveMemory(session, query: arguments["query"]?.string)
            return [
                "observations": .array(memory.observations.map { .string($0.content) }),
                "summaries": .array(memory.summaries.map { .string($0.content) }),
            ]
        }
    }

    /// `text_customer`: sends the customer a message on `channel` (SMS by default) while the
    /// conversation goes on — a link or a confirmation while a caller listens. It goes through the
    /// outbound API to the session's customer (never an address the model chooses), with the tool
    /// call's id as its `Idempotency-Key`: a turn redone after a worker died sends it once.
    public func textCustomerTool(session: ConversationSession, channel: ChannelKind = .sms, name: String = "text_customer") -> AgentTool {
        let parameters = ToolSchema.object(["message": ToolSchema.string("The text to send, under 320 characters. Include any link in full.")])
        let label = channel == .sms ? "an SMS" : "a \(channel.rawValue) message"
        return AgentTool(
            name: name,
            description: "Send the customer \(label) on their phone, for example a link or a confirmation, while you keep talking with them.",
            parameters: parameters
        ) { arguments, call in
            guard let message = arguments["message"]?.string, !message.allSatisfy(\.isWhitespace) else {
                throw ToolError("message is required")
            }
            guard let number = session.authorInfo.address.flatMap(Self.phoneNumber) else {
                throw ToolError("the customer has no phone number to text")
            }
            let to = channel == .sms ? number : "\(channel.rawValue):\(number)"
            var attempt = 0
            while true {
                do {
                    let result = try await self.initiateMessagingConversation(
                        on: channel, .init(to: to, message: message, metadata: ["source": "text_customer"]), idempotencyKey: call.id)
                    return ["status": "sent", "channel": .string(channel.rawValue), "conversationId": .string(result.conversationId)]
                } catch {
                    // The same key makes a retry safe: the first send's answer is replayed (or a 409
                    // while it is still in progress is waited out).
                    attempt += 1
                    if attempt >= 8 { throw error }
                    try await Task.sleep(for: .milliseconds(300 * attempt))
                }
            }
        }
    }

    /// `end_call` (voice): the call ends after this turn's reply, so the caller hears the goodbye
    /// (the built-in agent sends ConversationRelay's `end` once its answer is spoken).
    public func endCallTool(session: ConversationSession, name: String = "end_call") -> AgentTool {
        AgentTool(
            name: name,
            description:
                "End the phone call. Use it when the caller says goodbye or the conversation is finished; say a short goodbye after calling it.",
            parameters: ToolSchema.object([:])
        ) { _, _ in
            _ = BuiltInTool.pendingEnds.withLockedValue { $0.insert(session.conversationId) }
            return ["status": "ending after your reply"]
        }
    }

    /// The E.164 number in an address (`+1…`, `whatsapp:+1…`), nil for other identities.
    static func phoneNumber(_ address: String) -> String? {
        let number = address.split(separator: ":").last.map(String.init) ?? address
        guard number.hasPrefix("+"), number.dropFirst().allSatisfy(\.isNumber), number.count > 4 else { return nil }
        return number
    }
}
