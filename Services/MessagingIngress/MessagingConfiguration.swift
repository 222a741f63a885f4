import AgentConnectCore
import ServiceSupport
import TwilioKit

/// messaging-ingress settings (each documented in .env.example), validated at start-up.
struct MessagingConfiguration: Sendable {
    var common: CommonConfiguration
    /// Validates `X-Twilio-Signature`.
    var authToken: String
    /// `TWILIO_CONVERSATION_CONFIGURATION_ID`; events for another configuration are ignored.
    var conversationConfigurationId: String?
    /// `TWILIO_ACCOUNT_SID`, checked against `AccountSid` of classic webhooks when set.
    var accountSid: String?
    var senders: Senders
    /// `WEBHOOK_MAX_BODY_BYTES`: larger bodies get 413.
    var maxBodyBytes: Int
    /// `WEBHOOK_DEDUP_TTL_SECONDS`: how long a webhook's signed id (`MessageSid`, communication id, …) is remembered (≥ 24 h).
    var dedupTTLSeconds: Int
    /// `TWILIO_WEBHOOK_PUBLIC_DOMAIN`: the public host Twilio calls. When set, signatures are checked
    /// against `https://<domain>/…` only (never a `Host`/`X-Forwarded-Host` the client chose).
    var publicDomain: String?
    /// `HTTP_IDLE_TIMEOUT_SECONDS`: idle and slow connections are closed.
    var httpLimits: HTTPServerLimits

    init(environment: Environment) throws {
        common = try CommonConfiguration(environment: environment, defaultPort: 8082)
        authToken = try environment.required("TWILIO_AUTH_TOKEN")
        try DevCredentials.refuseWithRealTwilio(environment)
        conversationConfigurationId = environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID")
        accountSid = environment.string("TWILIO_ACCOUNT_SID")
        senders = try Senders(environment: environment)
        maxBodyBytes = try environment.int("WEBHOOK_MAX_BODY_BYTES", default: 1 << 20, range: 1024...(64 << 20))
        dedupTTLSeconds = try environment.int("WEBHOOK_DEDUP_TTL_SECONDS", default: 86_400, range: 86_400...(30 * 86_400))
        publicDomain = PublicDomain.normalized(environment.string("TWILIO_WEBHOOK_PUBLIC_DOMAIN"))
        httpLimits = try HTTPServerLimits(environment: environment)
    }
}
