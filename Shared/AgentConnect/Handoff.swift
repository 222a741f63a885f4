public import AgentConnectCore
import Logging

/// A tool an LLM can call (TAC's `TACTool`): a name, a description, a JSON schema for its
/// parameters, and what calling it does.
public struct AgentTool: Sendable {
    public var name: String
    public var description: String
    /// JSON schema of the arguments.
    public var parameters: JSONValue
    let invoke: @Sendable (JSONValue) async -> JSONValue

    /// A tool whose `invoke` gets the model's arguments and returns the result it reads.
    init(name: String, description: String, parameters: JSONValue, invoke: @escaping @Sendable (JSONValue) async -> JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.invoke = invoke
    }

    /// Runs the tool with the model's arguments (a JSON object).
    public func call(_ arguments: JSONValue) async -> JSONValue {
        await invoke(arguments)
    }

    /// Chat Completions `tools` entry: `{"type":"function","function":{name,description,parameters}}`.
    public var openAIFormat: JSONValue {
        ["type": "function", "function": ["name": .string(name), "description": .string(description), "parameters": parameters]]
    }

    /// Realtime / Responses API entry: the same, flat.
    public var realtimeFormat: JSONValue {
        ["type": "function", "name": .string(name), "description": .string(description), "parameters": parameters]
    }

    /// Anthropic Messages entry: `{name, description, input_schema}`.
    public var anthropicFormat: JSONValue {
        ["name": .string(name), "description": .string(description), "input_schema": parameters]
    }
}

extension TAC {
    public static let defaultHandoffDescription =
        "Hand off the conversation to a human agent. Use this when the customer requests a human, or when you cannot adequately handle the request."

    /// The Studio handoff tool (TAC's `create_studio_handoff_tool`) for one session: the model sees a
    /// single required `reason`. Needs `TWILIO_STUDIO_HANDOFF_FLOW_SID` (except relay-only voice,
    /// where the `end` frame's `handoffData` goes to your own `<Connect action>` handler).
    public func studioHandoffTool(
        session: ConversationSession, attributes: [String: String] = [:], name: String = "handoff",
        description: String = TAC.defaultHandoffDescription
    ) throws -> AgentTool {
        guard configuration.studioHandoffFlowSid != nil || session.channel == .voice else {
            throw TACError("the handoff tool needs studio_handoff_flow_sid: set TWILIO_STUDIO_HANDOFF_FLOW_SID")
        }
        let parameters: JSONValue = [
            "type": "object",
            "properties": ["reason": ["type": "string", "description": "Why the customer needs a human agent."]],
            "required": ["reason"], "additionalProperties": false,
        ]
        return AgentTool(name: name, description: description, parameters: parameters) { arguments in
            await self.handoff(session, reason: arguments["reason"]?.string ?? "", attributes: attributes)
        }
    }

    /// Hands the conversation to a person (as TAC: docs/architecture.md §6.7) and ends it for the agent:
    /// - messaging: the orchestrator conversation goes `INACTIVE`, its status callbacks are cleared
    ///   and a Studio execution gets `HandoffData` (through the outbound service, which holds the
    ///   Twilio credentials);
    /// - voice: after this turn's reply, the caller gets `{"type":"end","handoffData":…}`, and
    ///   ConversationRelay hands the call to the `<Connect action>` (the Studio flow).
    /// Either way `onConversationEnded` fires once. Returns `{"status":"handoff_initiated"|"handoff_failed", "channel", "error"?}`.
    @discardableResult
    public func handoff(_ session: ConversationSession, reason: String, attributes: [String: String] = [:]) async -> JSONValue {
        var merged = attributes
        merged["reason"] = reason
        let channel = JSONValue.string(session.channel.rawValue)
        do {
            try await backend.handoff(self, session: session, attributes: merged)
            logger.info("handoff initiated", metadata: ["conversation.id": "\(session.conversationId)", "reason": "\(reason)"])
            return ["status": "handoff_initiated", "channel": channel]
        } catch {
            logger.error("handoff failed", metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
            return ["status": "handoff_failed", "channel": channel, "error": .string("\(error)")]
        }
    }
}
