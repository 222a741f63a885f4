import Foundation

/// One versioned schema change. Versions are applied in order, each exactly once.
package struct Migration: Sendable {
    /// Monotonic version number.
    package var version: Int
    /// Short name, recorded in `schema_migrations`.
    package var name: String
    /// The SQL: statements each ending with `;` at the end of a line.
    package var sql: String

    /// The statements, one by one (the extended protocol takes one at a time).
    var statements: [String] {
        sql.components(separatedBy: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .map { $0.hasSuffix(";") ? String($0.dropLast()) : $0 }.filter { !$0.isEmpty }
    }
}

/// Every migration the store knows, oldest first.
package enum Migrations {
    package static let all: [Migration] = [
        initialSchema, memorySearch, memorySources, deliveryLeases, messaging, toolsAndKnowledge, deliveryRetention,
    ]
}
