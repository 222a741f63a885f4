import AgentConnectCore
import NIOConcurrencyHelpers

/// A picture, voice note, video or document attached to a customer's message.
public struct MessageMedia: Sendable, Equatable, Codable {
    /// Where Twilio keeps it (fetch it with ``TAC/fetchMedia(_:maxBytes:timeout:)``).
    public var url: String
    /// Its MIME type (`image/jpeg`, `audio/ogg`, …), when Twilio names it.
    public var contentType: String?
    /// Its size in bytes, when known before fetching.
    public var size: Int?

    public init(url: String, contentType: String? = nil, size: Int? = nil) {
        self.url = url
        self.contentType = contentType
        self.size = size
    }

    /// The media of an inbound event's payload (`media[]` with `url`, `contentType`, `size`).
    package static func list(_ payload: JSONValue?) -> [MessageMedia] {
        (payload?["media"]?.array ?? []).compactMap { item in
            guard let url = item["url"]?.string else { return nil }
            return MessageMedia(url: url, contentType: item["contentType"]?.string, size: item["size"]?.int.flatMap { $0 >= 0 ? $0 : nil })
        }
    }

    /// The media of a `message.received` (a negative size reads as unknown).
    package static func list(_ media: [MessageReceived.Media]?) -> [MessageMedia] {
        (media ?? []).map { MessageMedia(url: $0.url, contentType: $0.contentType, size: $0.size.flatMap { $0 >= 0 ? $0 : nil }) }
    }
}

/// An approved Content template (Twilio Content API): what WhatsApp requires outside its 24-hour
/// customer-service window.
public struct MessageTemplate: Sendable, Equatable {
    /// The template's `HX…` SID.
    public var contentSid: String
    /// Values for its placeholders (`{"1": "Ada"}`).
    public var variables: [String: String]

    public init(contentSid: String, variables: [String: String] = [:]) {
        self.contentSid = contentSid
        self.variables = variables
    }
}

/// Twilio's delivery status of a reply (its status callback): `sent`, `delivered`, `read`,
/// `undelivered`, `failed`, with Twilio's error code for the last two.
public struct DeliveryStatusUpdate: Sendable, Equatable {
    /// The reply this message carried (a long reply's parts are `<id>:p2`, …), when known.
    public var replyId: String?
    /// Twilio's message SID.
    public var messageSid: String
    /// Twilio's status.
    public var status: String
    /// Twilio's error code (`30006`, `63016`, …), for a failure.
    public var errorCode: Int?
    /// Twilio's error message, when it sent one.
    public var errorMessage: String?

    /// From a `message.status` event.
    package init(replyId: String?, messageSid: String, status: String, errorCode: Int?, errorMessage: String?) {
        self.replyId = replyId
        self.messageSid = messageSid
        self.status = status
        self.errorCode = errorCode
        self.errorMessage = errorMessage
    }

    /// Whether the message will not arrive (`failed` or `undelivered`).
    public var isFailure: Bool { status == "failed" || status == "undelivered" }
}

/// A reply Twilio could not deliver, as ``TAC/onError(_:)`` receives it.
public struct DeliveryFailure: Error, CustomStringConvertible, Sendable {
    /// What Twilio reported.
    public var update: DeliveryStatusUpdate

    /// The failure `update` reports.
    package init(update: DeliveryStatusUpdate) {
        self.update = update
    }

    public var description: String {
        "Twilio could not deliver reply \(update.replyId ?? update.messageSid): \(update.status)\(update.errorCode.map { " (error \($0))" } ?? "")"
    }
}

extension TAC {
    /// Called with Twilio's delivery status of each reply sent through the Messages API; failures
    /// (`failed`, `undelivered`) also reach ``onError(_:)`` with `error.code`.
    public func onDeliveryStatus(_ callback: @escaping @Sendable (ConversationSession, DeliveryStatusUpdate) async -> Void) {
        callbacks.withLockedValue { $0.deliveryStatus = callback }
    }

    /// Fetches a medium of a customer's message: with the Twilio REST credentials when the URL is
    /// Twilio's (its media need HTTP Basic auth; no credentials go to any other host), at most
    /// `maxBytes` (Twilio carries up to 5 MB per message, 16 MB on WhatsApp), within `timeout`.
    public func fetchMedia(_ media: MessageMedia, maxBytes: Int = 16 << 20, timeout: Duration = .seconds(15)) async throws -> [UInt8] {
        try await backend.fetchMedia(self, media: media, maxBytes: maxBytes, timeout: timeout)
    }
}
