/// A customer-facing channel, spelled as it travels in events (`voice`, `sms`, …).
public enum ChannelKind: String, Sendable, Codable, CaseIterable, Hashable {
    case voice, sms, whatsapp, rcs, chat

    /// The upper-case name Conversation Orchestrator uses (`SMS`, `WHATSAPP`, …).
    package var orchestratorName: String { rawValue.uppercased() }

    /// The channel for an orchestrator name such as `WHATSAPP`, or `nil` for channels we do not serve.
    package init?(orchestratorName: String) {
        self.init(rawValue: orchestratorName.lowercased())
    }

    /// Whether replies on this channel are delivered through Twilio's REST APIs (all but voice).
    public var isMessaging: Bool { self != .voice }
}
