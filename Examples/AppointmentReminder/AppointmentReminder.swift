import AgentConnect

/// The agent starts the conversation (seed 000): an appointment reminder over SMS to
/// `REMINDER_TO`, and the customer's answer comes back to the same callback.
@main
struct AppointmentReminder {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        let sms = SMSChannel(tac)

        tac.onMessageReady { message, session, _ in
            guard session.direction == .outbound else { return "Hi! I only handle appointment reminders." }
            switch message.trimmingCharacters(in: .whitespacesAndNewlines).uppercased() {
            case "YES", "Y": return "Thanks, you're confirmed. See you tomorrow at 10:00!"
            case "NO", "N": return "No problem, someone from the front desk will call you to reschedule."
            default: return "Please reply YES to confirm or NO to reschedule."
            }
        }

        let to = try Environment.process().required("REMINDER_TO")
        let started = try await sms.initiateOutboundConversation(
            .init(
                to: to, message: "Hi! This is Acme Dental: your appointment is tomorrow at 10:00. Reply YES to confirm or NO to reschedule.",
                metadata: ["campaign": "reminders"]),
            idempotencyKey: "reminder-\(to)")
        print("Conversation started: \(started.conversationId)")

        try await tac.run()
    }
}
