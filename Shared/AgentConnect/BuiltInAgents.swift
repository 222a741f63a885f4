/// Agents that ship with the worker, chosen with `TAC_AGENT`.
public enum BuiltInAgents {
    /// Names `TAC_AGENT` accepts.
    public static let names = ["echo"]

    /// `echo`: replies `You said: <message>`; on voice it streams one token per word (the word and
    /// the space after it), so streaming, interruption and ordering are exercised end to end.
    public static func installEcho(on tac: TAC) {
        let voice = VoiceChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .voice)))
        _ = SMSChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .sms)))
        _ = WhatsAppChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .whatsapp)))
        _ = RCSChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .rcs)))
        _ = ChatChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .chat)))
        tac.onMessageReady { message, session, _ in
            let reply = "You said: \(message)"
            guard session.channel == .voice else { return reply }
            try await voice.sendResponse(conversationId: session.conversationId, tokens: wordTokens(reply))
            return nil
        }
    }

    /// Splits text into tokens of one word plus the whitespace that follows it.
    public static func wordTokens(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        var inSpace = false
        for character in text {
            if character.isWhitespace {
                inSpace = true
            } else if inSpace {
                tokens.append(current)
                current = ""
                inSpace = false
            }
            current.append(character)
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }
}
