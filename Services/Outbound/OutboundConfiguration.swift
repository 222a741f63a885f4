import AgentConnectCore
import ServiceSupport
import TwilioKit

/// outbound settings (each documented in .env.example), validated at start-up.
struct OutboundConfiguration: Sendable {
    var common: CommonConfiguration
    var twilio: TwilioAPIConfiguration
    var senders: Senders
    var conversationConfigurationId: String?
    /// `OUTBOUND_API_TOKEN`: bearer token the app-facing API requires.
    var apiToken: String
    /// `OUTBOUND_MAX_ATTEMPTS`: sends tried per reply before it is dead-lettered.
    var maxAttempts: Int
    /// `OUTBOUND_RETRY_BASE_MS`: first retry delay; doubles each time, with jitter.
    var retryBaseMilliseconds: Int
    /// `OUTBOUND_RETRY_MAX_MS`: the longest wait between tries (also caps `Retry-After`).
    var retryMaxMilliseconds: Int
    /// `OUTBOUND_VISIBILITY_TIMEOUT_MS`: when a dead replica's unfinished replies are taken over (live
    /// replicas keep theirs fresh, however long a send waits on a dependency).
    var visibilityTimeoutMilliseconds: Int
    /// `TWILIO_HTTP_TIMEOUT_MS`: the longest a Twilio REST call may take; a send that times out has
    /// an unknown outcome and is reconciled before it is sent again.
    var twilioTimeoutMilliseconds: Int
    /// `TWILIO_VOICE_PUBLIC_DOMAIN`: voice-relay's public host, for outbound calls' TwiML.
    var voicePublicDomain: String?
    /// `TWILIO_STUDIO_HANDOFF_FLOW_SID`: the Studio flow messaging conversations are handed to.
    var studioHandoffFlowSid: String?
    /// `CONVERSATION_RELAY_*`: the `<ConversationRelay>` settings placed calls get (as inbound ones do).
    var relay: ConversationRelaySettings
    /// Where Twilio posts the delivery status of each Messages API send (`StatusCallback`):
    /// `TWILIO_MESSAGE_STATUS_CALLBACK_URL`, else `https://<TWILIO_WEBHOOK_PUBLIC_DOMAIN>/message-status`,
    /// else none (no delivery statuses).
    var statusCallbackURL: String?
    /// `TWILIO_CHAT_CHANNEL_ID`: the Chat channel a conversation the agent starts goes to, when the
    /// request names none.
    var chatChannelId: String?
    /// `DELIVERY_RETENTION_SECONDS`: finished delivery rows older than this are deleted (0: kept
    /// forever; ``DeliveryRetentionSetting``).
    var deliveryRetentionSeconds: Int

    init(environment: Environment) throws {
        common = try CommonConfiguration(environment: environment, defaultPort: 8083)
        twilio = try TwilioAPIConfiguration(environment: environment)
        senders = try Senders(environment: environment)
        conversationConfigurationId = environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID")
        apiToken = try environment.required("OUTBOUND_API_TOKEN")
        maxAttempts = try environment.int("OUTBOUND_MAX_ATTEMPTS", default: 5, range: 1...50)
        retryBaseMilliseconds = try environment.int("OUTBOUND_RETRY_BASE_MS", default: 200, range: 1...60_000)
        retryMaxMilliseconds = try environment.int("OUTBOUND_RETRY_MAX_MS", default: 10_000, range: 1...600_000)
        visibilityTimeoutMilliseconds = try environment.int("OUTBOUND_VISIBILITY_TIMEOUT_MS", default: 15_000, range: 1_000...3_600_000)
        twilioTimeoutMilliseconds = try environment.int("TWILIO_HTTP_TIMEOUT_MS", default: 15_000, range: 100...120_000)
        voicePublicDomain = PublicDomain.normalized(environment.string("TWILIO_VOICE_PUBLIC_DOMAIN"))
        studioHandoffFlowSid = environment.string("TWILIO_STUDIO_HANDOFF_FLOW_SID")
        relay = try ConversationRelaySettings(environment: environment)
        chatChannelId = environment.string("TWILIO_CHAT_CHANNEL_ID")
        deliveryRetentionSeconds = try DeliveryRetentionSetting.seconds(environment, streamRetentionSeconds: common.streamRetentionSeconds)
        if environment.string("TWILIO_MESSAGE_STATUS_CALLBACK_URL") != nil {
            statusCallbackURL = try environment.url("TWILIO_MESSAGE_STATUS_CALLBACK_URL", default: "")
        } else {
            statusCallbackURL = PublicDomain.normalized(environment.string("TWILIO_WEBHOOK_PUBLIC_DOMAIN")).map { "https://\($0)/message-status" }
        }
    }
}
