import ServiceSupport

/// The single-use socket tokens of placed calls (``RelayCallTokens`` in Redis; held in memory in tests).
protocol CallTokenIssuer: Sendable {
    /// A new token, bound to no call yet.
    func mint(callSid: String?, conversationId: String?) async throws -> String
    /// Binds the CallSid Twilio gave the call placed with `token`.
    func bind(_ token: String, callSid: String) async throws
}

extension RelayCallTokens: CallTokenIssuer {}
