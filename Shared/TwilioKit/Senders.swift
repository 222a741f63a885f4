import AgentConnectCore

/// The agent's own addresses per channel (`TWILIO_PHONE_NUMBER(S)`, `TWILIO_WHATSAPP_NUMBER(S)`,
/// `TWILIO_RCS_SENDER_ID(S)`, `TWILIO_CHAT_AGENT_ADDRESS`), default first.
///
/// Used to drop the agent's own messages, to find which of our numbers a customer wrote to, and to
/// check the `from` of outbound conversations.
package struct Senders: Sendable, Equatable {
    package var phoneNumbers: [String]
    package var whatsappNumbers: [String]
    package var rcsSenderIds: [String]
    package var chatAgentAddress: String

    package init(phoneNumbers: [String] = [], whatsappNumbers: [String] = [], rcsSenderIds: [String] = [], chatAgentAddress: String = "ai-assistant")
    {
        self.phoneNumbers = phoneNumbers
        self.whatsappNumbers = whatsappNumbers
        self.rcsSenderIds = rcsSenderIds
        self.chatAgentAddress = chatAgentAddress
    }

    package init(environment: Environment) throws {
        func pair(_ single: String, _ plural: String) -> [String] {
            var list = environment.list(plural)
            if let first = environment.string(single) {
                list.removeAll { $0 == first }
                list.insert(first, at: 0)
            }
            return list
        }
        self.init(
            phoneNumbers: pair("TWILIO_PHONE_NUMBER", "TWILIO_PHONE_NUMBERS"),
            whatsappNumbers: pair("TWILIO_WHATSAPP_NUMBER", "TWILIO_WHATSAPP_NUMBERS").map { $0.hasPrefix("whatsapp:") ? $0 : "whatsapp:\($0)" },
            rcsSenderIds: pair("TWILIO_RCS_SENDER_ID", "TWILIO_RCS_SENDER_IDS"),
            chatAgentAddress: environment.string("TWILIO_CHAT_AGENT_ADDRESS", default: "ai-assistant"))
    }

    /// Our addresses on a channel, default first.
    package func addresses(for channel: ChannelKind) -> [String] {
        switch channel {
        case .sms, .voice: return phoneNumbers
        case .whatsapp: return whatsappNumbers
        case .rcs: return rcsSenderIds
        case .chat: return [chatAgentAddress]
        }
    }

    /// Whether `address` is one of ours on `channel`.
    package func owns(_ address: String, on channel: ChannelKind) -> Bool {
        addresses(for: channel).contains(address)
    }

    /// The default sender on a channel.
    package func defaultSender(for channel: ChannelKind) -> String? {
        addresses(for: channel).first
    }
}
