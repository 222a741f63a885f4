/// A failure of the store.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// PostgreSQL could not be reached.
        case unavailable
        /// A uniqueness rule refused the write (e.g. a second delivery row for one reply).
        case duplicate
        /// A row the operation needs does not exist.
        case notFound
        /// A migration failed.
        case migration
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "store \(code.rawValue): \(message)" }
}
