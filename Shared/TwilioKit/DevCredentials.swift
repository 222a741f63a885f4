import AgentConnectCore
import Foundation

/// The made-up credentials the repository publishes for development (`deploy/local.env`,
/// compose's defaults): anyone can sign with them, so they must never meet real Twilio.
package enum DevCredentials {
    /// The dev auth token, published in the repository.
    package static let authToken = "dev-auth-token-not-a-secret"

    /// Refuses (naming `TWILIO_AUTH_TOKEN`) the published dev auth token when any Twilio REST base
    /// URL is Twilio's own (set to it, or left at its default): a deployment that forgot to set its
    /// token would otherwise accept webhooks anyone can sign.
    package static func refuseWithRealTwilio(_ environment: Environment) throws {
        guard environment.string("TWILIO_AUTH_TOKEN") == authToken else { return }
        for (variable, fallback) in [
            ("TWILIO_API_BASE_URL", "https://api.twilio.com"), ("TWILIO_CONVERSATIONS_BASE_URL", "https://conversations.twilio.com"),
            ("TWILIO_STUDIO_BASE_URL", "https://studio.twilio.com"),
        ] {
            let url = environment.string(variable) ?? fallback
            let host = URLComponents(string: url)?.host?.lowercased() ?? ""
            if host == "twilio.com" || host.hasSuffix(".twilio.com") {
                throw ConfigurationError(
                    variable: "TWILIO_AUTH_TOKEN",
                    reason: "is the published development token while \(variable) is Twilio's (\(host)); set your account's auth token")
            }
        }
    }
}
