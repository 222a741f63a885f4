import Foundation

/// A missing or malformed configuration value; the message names the variable and what was wrong.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// The environment variable at fault.
    public var variable: String
    /// What is wrong with it.
    public var reason: String

    public init(variable: String, reason: String) {
        self.variable = variable
        self.reason = reason
    }

    public var description: String { "configuration error: \(variable) \(reason)" }
}

/// Typed, validating reads of environment variables.
///
/// Every accessor either returns a usable value or throws a ``ConfigurationError`` naming the
/// variable, so a service refuses to start with a clear message instead of failing later.
public struct Environment: Sendable {
    /// The raw variables.
    public var values: [String: String]

    public init(_ values: [String: String]) {
        self.values = values
    }

    /// The process environment.
    public static func process() -> Environment {
        Environment(ProcessInfo.processInfo.environment)
    }

    /// A trimmed, non-empty value, or `nil`.
    public func string(_ name: String) -> String? {
        guard let raw = values[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty else { return nil }
        return raw
    }

    /// A value with a default.
    public func string(_ name: String, default value: String) -> String {
        string(name) ?? value
    }

    /// A value that must be present.
    public func required(_ name: String) throws -> String {
        guard let value = string(name) else { throw ConfigurationError(variable: name, reason: "is required but not set") }
        return value
    }

    /// An integer within `range`, or the default when unset.
    public func int(_ name: String, default value: Int, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let raw = string(name) else { return value }
        guard let parsed = Int(raw), range.contains(parsed) else {
            throw ConfigurationError(variable: name, reason: "must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(raw)'")
        }
        return parsed
    }

    /// A number within `range`, or the default when unset.
    public func double(_ name: String, default value: Double, range: ClosedRange<Double>) throws -> Double {
        guard let raw = string(name) else { return value }
        guard let parsed = Double(raw), range.contains(parsed) else {
            throw ConfigurationError(variable: name, reason: "must be a number in \(range.lowerBound)...\(range.upperBound), got '\(raw)'")
        }
        return parsed
    }

    /// A boolean (`true/false/1/0/yes/no`), or the default when unset.
    public func bool(_ name: String, default value: Bool) throws -> Bool {
        guard let raw = string(name)?.lowercased() else { return value }
        switch raw {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(variable: name, reason: "must be true or false, got '\(raw)'")
        }
    }

    /// A comma-separated list, trimmed, blanks dropped, duplicates removed in order.
    public func list(_ name: String) -> [String] {
        guard let raw = string(name) else { return [] }
        var seen = Set<String>()
        return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    /// One of a fixed set of values.
    public func choice(_ name: String, default value: String, allowed: [String]) throws -> String {
        guard let raw = string(name) else { return value }
        guard allowed.contains(raw.lowercased()) else {
            throw ConfigurationError(variable: name, reason: "must be one of \(allowed.joined(separator: ", ")), got '\(raw)'")
        }
        return raw.lowercased()
    }

    /// A URL with an http(s), ws(s), redis or postgres scheme and a host.
    public func url(_ name: String, default value: String) throws -> String {
        let raw = string(name) ?? value
        guard let schemeEnd = raw.range(of: "://"), !raw[schemeEnd.upperBound...].isEmpty else {
            throw ConfigurationError(variable: name, reason: "must be a URL like scheme://host[:port], got '\(raw)'")
        }
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }
}
