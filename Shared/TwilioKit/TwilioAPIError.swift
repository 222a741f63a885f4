import AgentConnectCore

/// A Twilio REST call that did not succeed.
public struct TwilioAPIError: Error, CustomStringConvertible, Sendable {
    /// HTTP status; 0 when the request never got an answer.
    public var status: Int
    /// Twilio's error code from the body, when present.
    public var code: Int?
    /// Twilio's message, or the transport error.
    public var message: String
    /// Seconds from `Retry-After`, when sent.
    public var retryAfterSeconds: Double?
    /// `X-Conflicting-Resource-Id` of a 409: the existing resource.
    public var conflictingResourceId: String?
    /// The request surely never reached Twilio (no connection was made), so nothing happened there.
    public var neverSent = false

    public init(status: Int, code: Int? = nil, message: String, retryAfterSeconds: Double? = nil, conflictingResourceId: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.conflictingResourceId = conflictingResourceId
    }

    /// 429, 5xx and transport failures are worth retrying; other 4xx are not.
    public var isRetryable: Bool { status == 0 || status == 429 || status >= 500 }

    /// Whether Twilio may have acted on the request although no success came back: a transport
    /// failure after the request went out (a timeout, a reset) or a 5xx. A non-idempotent POST that
    /// ends like this must be reconciled (is the message in Twilio?) before it is sent again.
    public var outcomeUnknown: Bool { (status == 0 && !neverSent) || status >= 500 }

    /// Twilio's message quotes the numbers it refused: they are masked wherever the error is shown.
    public var description: String { "twilio \(status)\(code.map { " (\($0))" } ?? ""): \(Masking.maskPhoneNumbers(message))" }
}
