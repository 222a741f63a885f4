/// One versioned schema change. Versions are applied in order, each exactly once.
public struct Migration: Sendable {
    /// Monotonic version number.
    public var version: Int
    /// Short name, recorded in `schema_migrations`.
    public var name: String
    /// The SQL, possibly several statements.
    public var sql: String
}

/// Every migration the store knows, oldest first.
public enum Migrations {
    public static let all: [Migration] = [initialSchema, memorySearch]
}
