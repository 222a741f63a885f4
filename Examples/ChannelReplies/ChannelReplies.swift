import AgentConnect

/// One callback, different behaviour per channel, memory on demand, cleanup at the end (seed 001).
@main
struct ChannelReplies {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        _ = VoiceChannel(tac)
        _ = SMSChannel(tac)
        _ = WhatsAppChannel(tac)
        _ = RCSChannel(tac)
        _ = ChatChannel(tac)
        let turns = TurnCounter()

        tac.onMessageReady { message, session, _ in
            let turn = await turns.next(session.conversationId)
            switch session.channel {
            case .voice:
                return "You said \(message)."  // short: it is spoken
            case .whatsapp:
                return "*WhatsApp* reply #\(turn): \(message)"
            case .chat:
                return "Chat reply #\(turn): \(message)"
            default:
                let preferences = try await tac.retrieveMemory(session, query: "customer preferences")
                let known = preferences.observations.count
                return
                    "\(session.channel.rawValue.uppercased()) reply #\(turn): \(message) (I remember \(known) thing\(known == 1 ? "" : "s") about you)"
            }
        }

        tac.onConversationEnded { session in
            await turns.remove(session.conversationId)
        }

        try await tac.run()
    }
}

/// Per-conversation turn numbers, dropped when the conversation ends.
actor TurnCounter {
    private var turns: [String: Int] = [:]

    func next(_ conversationId: String) -> Int {
        turns[conversationId, default: 0] += 1
        return turns[conversationId]!
    }

    func remove(_ conversationId: String) {
        turns.removeValue(forKey: conversationId)
    }
}
