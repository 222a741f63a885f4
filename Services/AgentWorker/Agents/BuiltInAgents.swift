package import AgentConnect

/// Agents that ship with the worker, chosen with `TAC_AGENT`.
package enum BuiltInAgents {
    /// Names `TAC_AGENT` accepts.
    package static let names = ["echo", "openai"]

    /// `echo`: replies `You said: <message>`; on voice it streams one token per word (the word and
    /// the space after it), so streaming, interruption and ordering are exercised end to end.
    package static func installEcho(on tac: TAC) {
        let voice = registerAllChannels(on: tac)
        // ECHO_TOKEN_DELAY_MS spaces the tokens out, like a model writing (demos, interrupt tests).
        let delay = (try? tac.configuration.environment.int("ECHO_TOKEN_DELAY_MS", default: 0, range: 0...10_000)) ?? 0
        tac.onMessageReady { message, session, _ in
            let reply = "You said: \(message)"
            guard session.channel == .voice else { return reply }
            let tokens = wordTokens(reply)
            let stream = AsyncThrowingStream<String, any Error> { continuation in
                for token in tokens { continuation.yield(token) }
                continuation.finish()
            }
            // Unpaced, the tokens are read straight from the stream (no task relaying them one by one).
            try await voice.sendResponse(conversationId: session.conversationId, response: delay > 0 ? stream.paced(milliseconds: delay) : stream)
            return nil
        }
    }

    /// Registers every channel with the memory mode the environment gives it; returns the voice channel.
    static func registerAllChannels(on tac: TAC) -> VoiceChannel {
        _ = SMSChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .sms)))
        _ = WhatsAppChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .whatsapp)))
        _ = RCSChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .rcs)))
        _ = ChatChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .chat)))
        return VoiceChannel(tac, configuration: .init(memoryMode: tac.memoryMode(for: .voice)))
    }

    /// Splits text into tokens of one word plus the whitespace that follows it.
    package static func wordTokens(_ text: String) -> [String] {
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

extension AsyncSequence where Self: Sendable, Element == String {
    /// The same tokens, each after a pause of `milliseconds` (none when 0).
    func paced(milliseconds: Int) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await token in self {
                        if milliseconds > 0 { try await Task.sleep(for: .milliseconds(milliseconds)) }
                        continuation.yield(token)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
