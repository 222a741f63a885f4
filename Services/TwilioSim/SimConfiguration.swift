import AgentConnectCore
import ServiceSupport
import TwilioKit

/// twilio-sim settings: where the services are, and the account it plays.
struct SimConfiguration: Sendable {
    var host: String
    var port: Int
    /// `SIM_MESSAGING_URL`: messaging-ingress, where signed messaging webhooks go.
    var messagingURL: String
    /// `SIM_VOICE_URL`: voice-relay, where the voice webhook and the ConversationRelay socket go.
    var voiceURL: String
    /// `TWILIO_AUTH_TOKEN`: signs webhooks as Twilio would.
    var authToken: String
    var accountSid: String
    var conversationConfigurationId: String?
    var senders: Senders
    /// `SIM_WEBHOOK_RETRIES`: how often a webhook answered 5xx (or unreachable) is retried.
    var webhookRetries: Int

    init(environment: Environment) throws {
        host = environment.string("HTTP_HOST", default: "127.0.0.1")
        port = try environment.int("HTTP_PORT", default: 8090, range: 0...65535)
        messagingURL = try environment.url("SIM_MESSAGING_URL", default: "http://127.0.0.1:8082")
        voiceURL = try environment.url("SIM_VOICE_URL", default: "http://127.0.0.1:8081")
        authToken = try environment.required("TWILIO_AUTH_TOKEN")
        accountSid = environment.string("TWILIO_ACCOUNT_SID", default: "ACsimulator")
        conversationConfigurationId = environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID")
        senders = try Senders(environment: environment)
        webhookRetries = try environment.int("SIM_WEBHOOK_RETRIES", default: 8, range: 0...100)
    }
}
