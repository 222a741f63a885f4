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

    public init(status: Int, code: Int? = nil, message: String, retryAfterSeconds: Double? = nil, conflictingResourceId: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.conflictingResourceId = conflictingResourceId
    }

    /// 429, 5xx and transport failures are worth retrying; other 4xx are not.
    public var isRetryable: Bool { status == 0 || status == 429 || status >= 500 }

    public var description: String { "twilio \(status)\(code.map { " (\($0))" } ?? ""): \(message)" }
}
