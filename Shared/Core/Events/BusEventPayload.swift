import Foundation

/// A typed bus event: the `payload` of one ``EventType``, built by its producer and decoded once by
/// its consumer (``BusEvent/init(_:id:conversationId:channel:occurredAt:traceparent:)``,
/// ``BusEvent/decode(_:)``).
///
/// The wire format is the envelope's `payload` object as before: the members are the stored
/// properties' names; a `nil` optional is left out (except where a type writes `null` as its
/// producers always did, e.g. ``MessageReceived/Media``), and a missing member and `null` read alike,
/// so processes built before and after the typed events read each other's events.
///
/// The `Codable` conformance defines that format; the events on the bus's hot path (all but
/// ``IntelligenceResult``) also convert to and from ``JSONValue`` directly (``PayloadWriter``,
/// ``PayloadReader``), the same bytes and the same errors without a coder's cost (issue 18). A type
/// that does not is converted through its `Codable` conformance (the default implementations).
package protocol BusEventPayload: Codable, Sendable {
    /// The envelope's `type` (one of ``EventType``).
    static var type: String { get }

    /// The envelope's `payload` for this event.
    func busPayload() throws -> JSONValue

    /// Reads the event from an envelope's `payload`.
    /// - Throws: an error naming the member that is missing or of the wrong type, which
    ///   ``BusEvent/decode(_:)`` reports as ``BusEventPayloadError/Code/invalidPayload``.
    init(busPayload: JSONValue) throws
}

extension BusEventPayload {
    /// Through the `Codable` conformance (``JSONValue/init(encoding:)``).
    package func busPayload() throws -> JSONValue {
        try JSONValue(encoding: self)
    }

    /// Through the `Codable` conformance (``JSONValue/decode(_:)``).
    package init(busPayload: JSONValue) throws {
        self = try busPayload.decode(Self.self)
    }
}

extension BusEvent {
    /// An envelope carrying a typed event (its `type` is the event's).
    package init<Payload: BusEventPayload>(
        _ payload: Payload, id: String = BusEvent.newID(), conversationId: String, channel: ChannelKind, occurredAt: Date = Date(),
        traceparent: String = Traceparent.random().description
    ) throws {
        self.init(
            id: id, type: Payload.type, conversationId: conversationId, channel: channel, occurredAt: occurredAt, traceparent: traceparent,
            payload: try payload.busPayload())
    }

    /// Whether this envelope carries a `Payload` (its `type` is `Payload.type`).
    package func carries<Payload: BusEventPayload>(_ type: Payload.Type) -> Bool {
        self.type == Payload.type
    }

    /// The payload as the typed event, read once at the consumer.
    /// - Throws: ``BusEventPayloadError``: the envelope is of another type, or a field is missing or
    ///   of the wrong type (the error names it, e.g. `payload.media[0].url`).
    package func decode<Payload: BusEventPayload>(_ type: Payload.Type) throws -> Payload {
        guard carries(type) else {
            throw BusEventPayloadError(.wrongType, "event \(id) is \(self.type), not \(Payload.type)")
        }
        do {
            return try Payload(busPayload: payload)
        } catch let error as PayloadFieldError {
            throw BusEventPayloadError(.invalidPayload, "\(self.type) event \(id): \(error)")
        } catch let error as DecodingError {
            throw BusEventPayloadError(.invalidPayload, "\(self.type) event \(id): \(BusEventPayloadError.describe(error))")
        }
    }
}

/// A bus event whose payload is not the typed event asked for.
package struct BusEventPayloadError: Error, CustomStringConvertible, Equatable {
    /// What went wrong.
    package enum Code: Sendable, Equatable {
        /// The envelope's `type` is another event type.
        case wrongType
        /// A field is missing, `null` where required, or of the wrong type.
        case invalidPayload
    }

    /// What went wrong.
    package var code: Code
    /// The event, its type and what is wrong with it.
    package var message: String

    /// An error with its code and message.
    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { message }

    /// A decoding error as `payload.<path>: <reason>` (or `payload.<path> is missing`).
    package static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.reduce("payload") { text, key in key.intValue.map { "\(text)[\($0)]" } ?? "\(text).\(key.stringValue)" }
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])) is missing"
        case .valueNotFound(_, let context): return "\(path(context.codingPath)): \(context.debugDescription)"
        case .typeMismatch(_, let context): return "\(path(context.codingPath)): \(context.debugDescription)"
        case .dataCorrupted(let context): return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
