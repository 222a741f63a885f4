public import AgentConnectCore
import Foundation

/// JSON Schemas for a tool's parameters: written with a small builder, or derived from a
/// `Decodable` Swift type.
///
/// ```swift
/// struct OrderLookup: Decodable, DescribedArguments {
///     var orderId: String
///     var includeItems: Bool?
///     static let parameterDescriptions = ["orderId": "The order number, e.g. A-1234."]
/// }
/// let schema = try ToolSchema.derived(from: OrderLookup.self)
/// // {"type":"object","properties":{"orderId":{"type":"string","description":…},
/// //  "includeItems":{"type":"boolean"}},"required":["orderId"],"additionalProperties":false}
/// ```
///
/// Derivation understands strings, booleans, integers and floating-point numbers, optionals (not
/// required), arrays, nested `Decodable` structs, and types that give their own schema through
/// ``ToolSchemaProviding`` (a `String` enum that is `CaseIterable` gets `"enum"` for free).
public enum ToolSchema {
    /// `{"type":"object", properties, required, "additionalProperties": false}`; every property is
    /// required unless `required` says otherwise.
    public static func object(_ properties: [String: JSONValue], required: [String]? = nil, description: String? = nil) -> JSONValue {
        var schema: [String: JSONValue] = [
            "type": "object", "properties": .object(properties),
            "required": .array((required ?? properties.keys.sorted()).map { .string($0) }), "additionalProperties": false,
        ]
        if let description { schema["description"] = .string(description) }
        return .object(schema)
    }

    /// A string, optionally one of `values`.
    public static func string(_ description: String? = nil, oneOf values: [String]? = nil) -> JSONValue {
        var schema = primitive("string", description)
        if let values, case .object(var members) = schema {
            members["enum"] = .array(values.map { .string($0) })
            schema = .object(members)
        }
        return schema
    }

    /// An integer.
    public static func integer(_ description: String? = nil) -> JSONValue { primitive("integer", description) }
    /// A number.
    public static func number(_ description: String? = nil) -> JSONValue { primitive("number", description) }
    /// A boolean.
    public static func boolean(_ description: String? = nil) -> JSONValue { primitive("boolean", description) }

    /// An array of `items`.
    public static func array(of items: JSONValue, _ description: String? = nil) -> JSONValue {
        var schema: [String: JSONValue] = ["type": "array", "items": items]
        if let description { schema["description"] = .string(description) }
        return .object(schema)
    }

    /// The schema of a `Decodable` type, found by decoding it from a probe that records which keys
    /// and value types its `init(from:)` asks for. Property descriptions come from
    /// ``DescribedArguments``.
    public static func derived<T: Decodable>(from type: T.Type) throws -> JSONValue {
        let node = SchemaNode()
        node.descriptions = (T.self as? any DescribedArguments.Type)?.parameterDescriptions ?? [:]
        _ = try SchemaNode.probe(T.self, into: node)
        return node.schema
    }

    static func primitive(_ type: String, _ description: String?) -> JSONValue {
        var schema: [String: JSONValue] = ["type": .string(type)]
        if let description { schema["description"] = .string(description) }
        return .object(schema)
    }
}

/// Arguments whose properties carry descriptions for the model (keys are the coding keys).
public protocol DescribedArguments: Decodable {
    static var parameterDescriptions: [String: String] { get }
}

/// A type that gives its own JSON Schema to ``ToolSchema/derived(from:)``.
public protocol ToolSchemaProviding: Decodable {
    /// The schema.
    static var toolSchema: JSONValue { get }
    /// A JSON value this type decodes from (the probe needs an instance).
    static var toolSchemaSample: JSONValue { get }
}

extension ToolSchemaProviding where Self: CaseIterable & RawRepresentable, RawValue == String {
    /// A string enum: `{"type":"string","enum":[…every case…]}`.
    public static var toolSchema: JSONValue { ToolSchema.string(oneOf: allCases.map(\.rawValue)) }
    /// The first case.
    public static var toolSchemaSample: JSONValue { .string(allCases.first?.rawValue ?? "") }
}

/// What a probe learnt about one value.
final class SchemaNode {
    var schema: JSONValue = ["type": "object"]
    var properties: [(String, SchemaNode)] = []
    var optional: Set<String> = []
    var descriptions: [String: String] = [:]
    var element: SchemaNode?
    var sample: JSONValue?

    /// Decodes `type` from a probe on `node`, filling in the node's schema.
    static func probe<T: Decodable>(_ type: T.Type, into node: SchemaNode) throws -> T {
        if let provided = T.self as? any ToolSchemaProviding.Type {
            node.schema = provided.toolSchema
            node.sample = provided.toolSchemaSample
            return try T(from: ProbeDecoder(node: node, fixed: true))
        }
        if let primitive = primitiveSchema(T.self) {
            node.schema = primitive.0
            node.sample = primitive.1
            return try T(from: ProbeDecoder(node: node, fixed: true))
        }
        return try T(from: ProbeDecoder(node: node, fixed: false))
    }

    static func primitiveSchema(_ type: Any.Type) -> (JSONValue, JSONValue)? {
        switch type {
        case is String.Type: (ToolSchema.primitive("string", nil), "")
        case is Bool.Type: (ToolSchema.primitive("boolean", nil), false)
        case is Int.Type, is Int8.Type, is Int16.Type, is Int32.Type, is Int64.Type,
            is UInt.Type, is UInt8.Type, is UInt16.Type, is UInt32.Type, is UInt64.Type:
            (ToolSchema.primitive("integer", nil), 0)
        case is Double.Type, is Float.Type: (ToolSchema.primitive("number", nil), 0)
        default: nil
        }
    }

    func finishObject() {
        var members: [String: JSONValue] = [:]
        for (key, child) in properties {
            var schema = child.schema
            if let description = descriptions[key], case .object(var fields) = schema {
                fields["description"] = .string(description)
                schema = .object(fields)
            }
            members[key] = schema
        }
        let required = properties.map(\.0).filter { !optional.contains($0) }
        schema = [
            "type": "object", "properties": .object(members), "required": .array(required.map { .string($0) }), "additionalProperties": false,
        ]
    }
}

/// A decoder that answers every request with a placeholder and records what was asked.
private struct ProbeDecoder: Decoder {
    let node: SchemaNode
    /// The node's schema is already known (a primitive or a provided schema): only the sample is served.
    let fixed: Bool
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if !fixed { node.schema = ["type": "object", "properties": [:], "required": [], "additionalProperties": false] }
        return KeyedDecodingContainer(ProbeKeyed<Key>(node: node, fixed: fixed))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let element = SchemaNode()
        node.element = element
        return ProbeUnkeyed(node: node, element: element, fixed: fixed)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        ProbeSingle(node: node, fixed: fixed)
    }
}

private struct ProbeKeyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: SchemaNode
    let fixed: Bool
    var codingPath: [any CodingKey] = []
    var allKeys: [Key] { [] }

    func contains(_ key: Key) -> Bool { true }

    func decodeNil(forKey key: Key) throws -> Bool {
        // Only `decodeIfPresent` asks: the property is optional; answer "present" to learn its type.
        node.optional.insert(key.stringValue)
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let child = SchemaNode()
        child.descriptions = (T.self as? any DescribedArguments.Type)?.parameterDescriptions ?? [:]
        let value = try SchemaNode.probe(T.self, into: child)
        if !fixed {
            node.properties.removeAll { $0.0 == key.stringValue }
            node.properties.append((key.stringValue, child))
            node.finishObject()
        }
        return value
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "nested containers are not supported in tool arguments"))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "nested containers are not supported in tool arguments"))
    }

    func superDecoder() throws -> any Decoder { ProbeDecoder(node: node, fixed: fixed) }
    func superDecoder(forKey key: Key) throws -> any Decoder { ProbeDecoder(node: node, fixed: fixed) }
}

private struct ProbeUnkeyed: UnkeyedDecodingContainer {
    let node: SchemaNode
    let element: SchemaNode
    let fixed: Bool
    var codingPath: [any CodingKey] = []
    var count: Int? { 1 }
    var isAtEnd: Bool { currentIndex >= 1 }
    var currentIndex = 0

    init(node: SchemaNode, element: SchemaNode, fixed: Bool) {
        self.node = node
        self.element = element
        self.fixed = fixed
    }

    mutating func decodeNil() throws -> Bool { false }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        currentIndex += 1
        element.descriptions = (T.self as? any DescribedArguments.Type)?.parameterDescriptions ?? [:]
        let value = try SchemaNode.probe(T.self, into: element)
        if !fixed { node.schema = ToolSchema.array(of: element.schema) }
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "nested containers are not supported in tool arguments"))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "nested containers are not supported in tool arguments"))
    }

    mutating func superDecoder() throws -> any Decoder { ProbeDecoder(node: node, fixed: fixed) }
}

/// Serves the node's sample (a primitive's placeholder, an enum's first case) to `init(from:)`.
private struct ProbeSingle: SingleValueDecodingContainer {
    let node: SchemaNode
    let fixed: Bool
    var codingPath: [any CodingKey] = []

    func decodeNil() -> Bool { false }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if let sample = node.sample {
            return try JSONDecoder().decode(T.self, from: Data(sample.compactJSON.utf8))
        }
        // A wrapper decoding a single value: the wrapped type's schema is this node's.
        return try SchemaNode.probe(T.self, into: node)
    }
}
