import AgentConnect
import Foundation

/// A voice assistant that streams its answer word by word and handles interruptions (seed 001):
/// when the caller talks over it, the turn is cancelled and the next answer acknowledges it.
@main
struct VoiceAssistant {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        let voice = VoiceChannel(tac, configuration: .init(memoryMode: .never))
        let interrupted = Interruptions()

        tac.onMessageReady { message, session, _ in
            var answer = "I heard you say \(message). Is there anything else I can help you with today?"
            if message.lowercased().contains("human") {
                // After this goodbye, the call gets the `end` frame with the handoff data.
                await tac.handoff(session, reason: "caller asked for a human", attributes: ["queue": "billing"])
                answer = "Let me transfer you to a colleague. Goodbye!"
            }
            if let heard = await interrupted.take(session.conversationId) {
                answer = "Sorry, I'll stop there (you heard: \(heard.trimmingCharacters(in: .whitespaces))). " + answer
            }
            // Stands in for a model's token stream: one word at a time, a little apart.
            let words = answer.split(separator: " ").map { $0 + " " }
            let tokens = AsyncThrowingStream<String, any Error> { continuation in
                let task = Task {
                    for word in words {
                        try? await Task.sleep(for: .milliseconds(40))
                        continuation.yield(String(word))
                    }
                    continuation.finish()
                }
                continuation.onTermination = { _ in task.cancel() }
            }
            try await voice.sendResponse(conversationId: session.conversationId, response: tokens)
            return nil
        }

        tac.onInterrupt { session, interrupt in
            // The turn's own task is already cancelled; remember what the caller heard.
            await interrupted.record(session.conversationId, heard: interrupt.utteranceUntilInterrupt)
        }

        tac.onConversationEnded { session in
            _ = await interrupted.take(session.conversationId)
        }

        try await tac.run()
    }
}

/// What each caller heard before they interrupted.
actor Interruptions {
    private var heard: [String: String] = [:]

    func record(_ conversationId: String, heard utterance: String) {
        heard[conversationId] = utterance
    }

    func take(_ conversationId: String) -> String? {
        heard.removeValue(forKey: conversationId)
    }
}
