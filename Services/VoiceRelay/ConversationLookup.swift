import AgentConnectCore
import Logging
import TwilioKit

/// Orchestrated mode: finds the Conversation Orchestrator conversation whose `channelId` is the call
/// (ConversationRelay creates it), with bounded retries (tac-python-spec §4.2.2).
struct ConversationLookup: Sendable {
    let rest: TwilioRESTClient
    let logger: Logger
    var attempts = 10

    func conversationId(forCall callSid: String) async -> String? {
        let url = "\(rest.configuration.conversationsBaseURL)/v2/Conversations?channelId=\(callSid)&status=ACTIVE"
        for attempt in 0..<attempts {
            if let response = try? await rest.json(.GET, url), let conversations = response.json?["conversations"]?.array,
                conversations.count == 1, let id = conversations[0]["id"]?.string
            {
                return id
            }
            try? await Task.sleep(for: .milliseconds(min(250 << attempt, 1500)))
        }
        logger.warning("no orchestrator conversation for the call; using the CallSid", metadata: ["call.sid": "\(callSid)"])
        return nil
    }
}
