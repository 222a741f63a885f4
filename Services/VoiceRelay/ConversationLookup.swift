import AgentConnectCore
import Logging
import TwilioKit

/// Orchestrated mode: finds the Conversation Orchestrator conversation whose `channelId` is the call
/// (ConversationRelay creates it) with retries (as TAC does it: docs/architecture.md §6.2), all within a time budget:
/// the socket's setup must finish well inside `VOICE_SETUP_TIMEOUT_MS`, so the lookup gives up in
/// time for the "fall back to the CallSid" path to run instead of the socket being closed.
struct ConversationLookup: Sendable {
    let rest: TwilioRESTClient
    let logger: Logger

    /// The conversation id, or nil when none was found within `budget` (each request is cut at the
    /// time left; between attempts it waits 250 ms doubling up to 1 s).
    func conversationId(forCall callSid: String, within budget: Duration) async -> String? {
        let url = "\(rest.configuration.conversationsBaseURL)/v2/Conversations?channelId=\(callSid)&status=ACTIVE"
        let deadline = ContinuousClock.now + budget
        var attempt = 0
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let left = deadline - ContinuousClock.now
            let response = try? await withTimeout(left, "the orchestrator lookup") { try await rest.json(.GET, url) }
            if let conversations = response?.json?["conversations"]?.array, conversations.count == 1, let id = conversations[0]["id"]?.string {
                return id
            }
            let pause = min(Duration.milliseconds(min(250 << attempt, 1000)), deadline - ContinuousClock.now)
            attempt += 1
            guard pause > .zero else { break }
            try? await Task.sleep(for: pause)
        }
        logger.warning(
            "no orchestrator conversation for the call in time; using the CallSid",
            metadata: [
                "call.sid": "\(callSid)", "budget.ms": "\(budget.components.seconds * 1000 + budget.components.attoseconds / 1_000_000_000_000_000)",
            ])
        return nil
    }
}
