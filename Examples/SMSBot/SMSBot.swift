import AgentConnect

/// The smallest agent: answers SMS (seed 000's callback, without a model) and hands the customer to
/// a person when asked. Run it instead of `agent-worker`; it reads the same environment.
@main
struct SMSBot {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        _ = SMSChannel(tac)

        tac.onMessageReady { message, session, _ in
            let text = message.lowercased()
            if text.contains("hours") { return "We're open 9am to 5pm, Monday to Friday." }
            if text.contains("human") || text.contains("person") {
                // Studio takes over (TWILIO_STUDIO_HANDOFF_FLOW_SID); the conversation ends for the agent.
                await tac.handoff(session, reason: "the customer asked for a person")
                return "Connecting you with a person shortly."
            }
            return "Thanks for your message! You wrote: \(message)"
        }

        try await tac.run()
    }
}
