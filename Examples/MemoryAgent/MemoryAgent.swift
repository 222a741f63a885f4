import AgentConnect

/// A memory-aware agent: "remember …" stores an observation on the customer's profile; any other
/// message is answered from the most relevant memory (`memoryMode: .always` passes memory ranked
/// against the message). When the conversation ends, a summary is stored for next time.
@main
struct MemoryAgent {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        _ = SMSChannel(tac, configuration: .init(memoryMode: .always))
        _ = WhatsAppChannel(tac, configuration: .init(memoryMode: .always))

        tac.onMessageReady { message, session, memory in
            if message.lowercased().hasPrefix("remember ") {
                try await tac.addObservation(String(message.dropFirst("remember ".count)), session: session)
                return "Noted, I'll remember that."
            }
            guard let best = memory?.observations.first(where: { $0.score > 0 }) else {
                let summaries = memory?.summaries.count ?? 0
                return "I don't remember anything about that yet (\(summaries) earlier conversation\(summaries == 1 ? "" : "s"))."
            }
            return "From what I remember: \(best.content)"
        }

        tac.onConversationEnded { session in
            let messages = (try? await tac.history(conversationId: session.conversationId)) ?? []
            let said = messages.filter { $0.direction == "inbound" }.map(\.text)
            guard !said.isEmpty else { return }
            _ = try? await tac.addSummary("The customer said: " + said.joined(separator: " / "), session: session)
        }

        try await tac.run()
    }
}
