import AgentConnectCore
import ServiceSupport
import TwilioKit

/// twilio-sim settings: where the services are, and the account it plays.
struct SimConfiguration: Sendable {
    /// `SIM_HTTP_HOST`: the bind address, loopback unless told (`HTTP_HOST` is ignored: the sim signs
    /// whatever it is asked to, so it must not be reachable from elsewhere by accident).
    var host: String
    var port: Int
    /// `SIM_MESSAGING_URL`: messaging-ingress, where signed messaging webhooks go.
    var messagingURL: String
    /// `SIM_VOICE_URL`: voice-relay, where the voice webhook and the ConversationRelay socket go.
    var voiceURL: String
    /// `https://<TWILIO_VOICE_PUBLIC_DOMAIN>` (else `SIM_VOICE_URL`): the URL voice webhooks are signed for.
    var voicePublicBaseURL: String
    /// `https://<TWILIO_WEBHOOK_PUBLIC_DOMAIN>` (else `SIM_MESSAGING_URL`): the URL messaging webhooks are signed for.
    var messagingPublicBaseURL: String
    /// `TWILIO_AUTH_TOKEN`: signs webhooks as Twilio would.
    var authToken: String
    var accountSid: String
    var conversationConfigurationId: String?
    var senders: Senders
    /// `SIM_WEBHOOK_RETRIES`: how often a webhook answered 5xx (or unreachable) is retried.
    var webhookRetries: Int
    /// `SIM_IDEMPOTENCY_CACHE=1`: answer a repeated `I-Twilio-Idempotency-Token` with the first answer.
    /// Off by default, as Twilio: its Messages and Calls APIs send a resent request again.
    var idempotencyCache: Bool

    init(environment: Environment) throws {
        try Self.refuseRealTwilio(environment)
        host = environment.string("SIM_HTTP_HOST", default: "127.0.0.1")
        port = try environment.int("HTTP_PORT", default: 8090, range: 0...65535)
        messagingURL = try environment.url("SIM_MESSAGING_URL", default: "http://127.0.0.1:8082")
        voiceURL = try environment.url("SIM_VOICE_URL", default: "http://127.0.0.1:8081")
        voicePublicBaseURL = PublicDomain.normalized(environment.string("TWILIO_VOICE_PUBLIC_DOMAIN")).map { "https://\($0)" } ?? voiceURL
        messagingPublicBaseURL =
            PublicDomain.normalized(environment.string("TWILIO_WEBHOOK_PUBLIC_DOMAIN")).map { "https://\($0)" } ?? messagingURL
        authToken = try environment.required("TWILIO_AUTH_TOKEN")
        accountSid = environment.string("TWILIO_ACCOUNT_SID", default: "ACsimulator")
        conversationConfigurationId = environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID")
        senders = try Senders(environment: environment)
        webhookRetries = try environment.int("SIM_WEBHOOK_RETRIES", default: 8, range: 0...100)
        idempotencyCache = environment.string("SIM_IDEMPOTENCY_CACHE") == "1"
    }

    /// The sim signs whatever it is given (`/sim/webhooks`, `/sim/messages`, `/sim/phone/calls`): with
    /// a real account's auth token it would be a signing oracle for that account. It refuses to start
    /// when the account SID or an API key looks real (`AC`/`SK` + 32 hex digits) or when any Twilio
    /// base URL or sim URL points at a `twilio.com` host.
    static func refuseRealTwilio(_ environment: Environment) throws {
        let hex = Set("0123456789abcdefABCDEF")
        func looksReal(_ value: String?, prefix: String) -> Bool {
            guard let value, value.hasPrefix(prefix) else { return false }
            let rest = value.dropFirst(prefix.count)
            return rest.count == 32 && rest.allSatisfy { hex.contains($0) }
        }
        let reason =
            "looks like a real Twilio credential; twilio-sim signs anything it is asked to and must never hold a real account's secrets (use made-up values such as deploy/local.env's)"
        if looksReal(environment.string("TWILIO_ACCOUNT_SID"), prefix: "AC") {
            throw ConfigurationError(variable: "TWILIO_ACCOUNT_SID", reason: reason)
        }
        for name in ["TWILIO_API_KEY"] where looksReal(environment.string(name), prefix: "SK") {
            throw ConfigurationError(variable: name, reason: reason)
        }
        for (name, value) in environment.values.sorted(by: { $0.key < $1.key })
        where (name.hasPrefix("TWILIO_") && name.hasSuffix("_BASE_URL")) || (name.hasPrefix("SIM_") && name.hasSuffix("_URL")) {
            if let host = Self.host(of: value), host == "twilio.com" || host.hasSuffix(".twilio.com") {
                throw ConfigurationError(
                    variable: name, reason: "points at Twilio (\(host)); twilio-sim runs only against local services, never the real Twilio")
            }
        }
    }

    /// The lower-cased host of a URL (`https://API.twilio.com:443/x` → `api.twilio.com`), without a trailing dot.
    static func host(of url: String) -> String? {
        var rest = Substring(url.trimmingCharacters(in: .whitespaces))
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@").last ?? authority
        var host = hostPort.hasPrefix("[") ? Substring(hostPort.prefix { $0 != "]" }) : (hostPort.split(separator: ":").first ?? hostPort)
        while host.hasSuffix(".") { host = host.dropLast() }
        return host.isEmpty ? nil : host.lowercased()
    }
}
