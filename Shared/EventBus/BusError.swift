/// A failure of the event bus.
package struct BusError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure.
    package enum Code: String, Sendable {
        /// Redis could not be reached or the connection dropped; retry later.
        case unavailable
        /// Redis answered with an error reply.
        case server
        /// A reply had an unexpected shape.
        case protocolViolation
        /// An entry could not be decoded into an event.
        case malformedEntry
        /// A fenced publish was refused: the publisher no longer holds the lease it depends on.
        case fenced
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { "bus \(code.rawValue): \(message)" }
}

extension BusError {
    /// Whether the error is Redis being unreachable (the default transient failure).
    package static func isUnavailable(_ error: any Error) -> Bool {
        (error as? BusError)?.code == .unavailable
    }
}
