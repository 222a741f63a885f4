import Foundation

/// A JSON value that round-trips through `Codable` without a fixed schema.
///
/// Event payloads and Twilio webhook bodies are open-ended; this type lets the services read the
/// fields they need (`value["author"]?["address"]?.string`) and pass the rest through untouched.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value.rounded() == value, abs(value) < 1e15 {
                try container.encode(Int64(value))
            } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The member named `key` when this is an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The string, when this is a string.
    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number as an `Int` when it is a whole number in `Int`'s range (numeric strings too), else
    /// `nil`: never traps on `1e300`, `NaN` or `-5.5` from outside.
    public var int: Int? { double.flatMap { Int(exactly: $0) } }

    /// The number as a `Double`, accepting numeric strings too (Twilio sends both).
    public var double: Double? {
        switch self {
        case .number(let value): return value
        case .string(let value): return Double(value.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    /// The boolean, accepting `"true"`/`"false"` strings.
    public var bool: Bool? {
        switch self {
        case .bool(let value): return value
        case .string(let value): return value.lowercased() == "true" ? true : (value.lowercased() == "false" ? false : nil)
        default: return nil
        }
    }

    /// The elements, when this is an array.
    public var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members, when this is an object.
    public var object: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// A string-to-string map from an object, dropping members that are not strings.
    public var stringMap: [String: String] {
        guard case .object(let members) = self else { return [:] }
        return members.compactMapValues(\.string)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}

extension JSONValue {
    /// Builds an object from a string map.
    public init(_ map: [String: String]) {
        self = .object(map.mapValues { .string($0) })
    }

    /// An optional string as a JSON value (`null` when absent).
    public init(_ optional: String?) {
        self = optional.map { .string($0) } ?? .null
    }
}

extension JSONValue {
    /// The value as compact JSON text with sorted keys (`null` when it cannot be encoded), as
    /// `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes it (``CompactJSON``).
    public var compactJSON: String {
        (try? String(decoding: CompactJSON.encode(self), as: UTF8.self)) ?? "null"
    }
}
