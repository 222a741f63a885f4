import AgentConnectCore

/// A Twilio REST call that did not succeed.
package struct TwilioAPIError: Error, CustomStringConvertible, Sendable {
    /// HTTP status; 0 when the request never got an answer.
    package var status: Int
    /// Twilio's error code from the body, when present.
    package var code: Int?
    /// Twilio's message, or the transport error.
    package var message: String
    /// Seconds from `Retry-After`, when sent.
    package var retryAfterSeconds: Double?
    /// `X-Conflicting-Resource-Id` of a 409: the existing resource.
    package var conflictingResourceId: String?
    /// The request surely never reached Twilio (no connection was made), so nothing happened there.
    package var neverSent = false

    package init(status: Int, code: Int? = nil, message: String, retryAfterSeconds: Double? = nil, conflictingResourceId: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.conflictingResourceId = conflictingResourceId
    }

    /// 429, 5xx and transport failures are worth retrying; other 4xx are not.
    package var isRetryable: Bool { status == 0 || status == 429 || status >= 500 }

    /// Whether Twilio may have acted on the request although no success came back: a transport
    /// failure after the request went out (a timeout, a reset) or a 5xx. A non-idempotent POST that
    /// ends like this must be reconciled (is the message in Twilio?) before it is sent again.
    package var outcomeUnknown: Bool { (status == 0 && !neverSent) || status >= 500 }

    /// Twilio's message quotes the numbers it refused: they are masked wherever the error is shown.
    package var description: String { "twilio \(status)\(code.map { " (\($0))" } ?? ""): \(Masking.maskPhoneNumbers(message))" }
}
