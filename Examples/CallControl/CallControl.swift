import AgentConnect
import Foundation

/// Per-call control on voice (issue 15): the TwiML chosen per caller, the call's details in the
/// session, typed ConversationRelay messages, and failures reported to `onError`.
///
/// - Callers from Mexico (+52) get Spanish (`onInboundCallTwiML`); everyone else the defaults.
/// - Each answer says what the session knows: the prompt's language, the `tier` parameter, the call
///   type, and how many ConversationRelay errors `onError` has seen on this call.
/// - "music" plays a clip (`play`), "transfer" hands the call to a person (`transfer`), "goodbye"
///   hangs up through the Calls API (`endCall`).
@main
struct CallControl {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        let voice = VoiceChannel(tac)
        let errors = ErrorCounts()

        voice.onInboundCallTwiML { request in
            guard request.from?.hasPrefix("+52") == true else { return nil }
            return VoiceTwiMLOptions(
                language: "es-MX", voice: "es-MX-Neural2-A",
                languages: [VoiceLanguageOptions(code: "es-MX", hints: "saldo,factura", asrSmartFormat: true)])
        }

        tac.onError { _, context in
            guard context["source"] == "conversation-relay", let id = context["conversation.id"] else { return }
            await errors.add(id)
        }

        tac.onMessageReady { message, session, _ in
            guard session.channel == .voice else { return "Call us instead." }
            if message.lowercased().contains("music") {
                try await voice.play(conversationId: session.conversationId, source: "https://example.com/hold.mp3", interruptible: true)
                return "Enjoy the music."
            }
            if message.lowercased().contains("goodbye"), let callSid = session.callSid {
                try await voice.sendResponse(conversationId: session.conversationId, response: "Goodbye.")
                _ = await voice.endCall(callSid: callSid)
                return nil
            }
            if message.lowercased().contains("transfer") {
                await voice.transfer(session, reason: "caller asked for a person")
                return "Connecting you now."
            }
            let details = session.voice
            let seen = await errors.count(session.conversationId)
            return "lang=\(details?.lang ?? "-") tier=\(details?.customParameters["tier"] ?? "-") type=\(details?.callType ?? "-") errors=\(seen)"
        }

        try await tac.run()
    }
}

/// ConversationRelay errors seen per conversation.
actor ErrorCounts {
    private var counts: [String: Int] = [:]

    func add(_ conversationId: String) {
        counts[conversationId, default: 0] += 1
    }

    func count(_ conversationId: String) -> Int {
        counts[conversationId] ?? 0
    }
}
