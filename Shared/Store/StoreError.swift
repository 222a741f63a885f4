import AgentConnectCore
import NIOCore
import PostgresNIO

/// A failure of the store.
package struct StoreError: Error, CustomStringConvertible, Sendable {
    package enum Code: String, Sendable {
        /// PostgreSQL could not be reached.
        case unavailable
        /// A uniqueness rule refused the write (e.g. a second delivery row for one reply).
        case duplicate
        /// A row the operation needs does not exist.
        case notFound
        /// A migration failed.
        case migration
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { "store \(code.rawValue): \(message)" }
}

extension PostgresStore {
    /// Whether the error means PostgreSQL is unreachable right now (restarting, connection lost,
    /// shutting down) rather than that the request is wrong: the work should wait and retry, not be
    /// given up.
    package static func isUnavailable(_ error: any Error) -> Bool {
        if error is TimeoutError { return true }
        if let error = error as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
                return true
            case .server:
                // Class 08 connection exception, 57P admin shutdown / cannot connect now, 53 resources.
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53")
            default:
                return false
            }
        }
        return error is ChannelError || error is IOError
    }
}
