/// A typed bus event's payload object read member by member, as its `Codable` conformance reads it
/// through ``JSONValue/decode(_:)`` but without a `Decoder` (no coding paths, containers or generic
/// metadata on the way): ``BusEventPayload/init(busPayload:)`` of the events on the hot path.
///
/// A required member must be present (`null` is a value: refused for a scalar, kept for a
/// ``JSONValue``); an optional one reads `nil` when missing or `null`; unknown members are ignored.
/// Scalars read as ``JSONValue``'s lenient accessors do (numeric and `"true"`/`"false"` strings too);
/// integers only whole and in range. Errors are ``PayloadFieldError``s naming the member.
struct PayloadReader {
    /// The object's members.
    private let members: [String: JSONValue]
    /// The same in a list when there are few (as in every event the services write): a member is
    /// found there by comparing name lengths, then names of that length only, cheaper than hashing
    /// its name for the dictionary (an event looks up each of its fields, up to 18, most absent).
    private let few: [(key: String, value: JSONValue)]?

    /// Reads `value` as an object; throws when it is anything else.
    init(_ value: JSONValue) throws {
        guard case .object(let members) = value else { throw PayloadFieldError.expected("an object", found: value) }
        self.members = members
        few = members.count <= 16 ? Array(members) : nil
    }

    /// The member named `key`, whatever its value (`null` too); throws when it is missing.
    func value(_ key: String) throws -> JSONValue {
        guard let value = member(key) else { throw PayloadFieldError(path: [.member(key)], problem: nil) }
        return value
    }

    /// The member named `key`, `nil` when it is missing or `null`.
    func optionalValue(_ key: String) -> JSONValue? {
        guard let value = member(key) else { return nil }
        if case .null = value { return nil }
        return value
    }

    private func member(_ key: String) -> JSONValue? {
        guard let few else { return members[key] }
        let length = key.utf8.count
        for index in few.indices where few[index].key.utf8.count == length && few[index].key == key {
            return few[index].value
        }
        return nil
    }

    /// A required string, number or boolean.
    func scalar<Scalar: JSONScalar>(_ key: String) throws -> Scalar {
        let value = try value(key)
        return try within(key) { try Self.scalar(value) }
    }

    /// An optional string, number or boolean.
    func optionalScalar<Scalar: JSONScalar>(_ key: String) throws -> Scalar? {
        guard let value = optionalValue(key) else { return nil }
        return try within(key) { try Self.scalar(value) }
    }

    /// A required string enumeration (``ConversationMode``, …), refused when not one of its cases.
    func rawValue<Value: RawRepresentable>(_ key: String) throws -> Value where Value.RawValue == String {
        let raw: String = try scalar(key)
        guard let value = Value(rawValue: raw) else {
            throw PayloadFieldError(path: [.member(key)], problem: "Cannot initialize \(Value.self) from invalid String value \(raw)")
        }
        return value
    }

    /// A required object of strings.
    func stringMap(_ key: String) throws -> [String: String] {
        let value = try value(key)
        return try within(key) { try Self.stringMap(value) }
    }

    /// An optional object of strings.
    func optionalStringMap(_ key: String) throws -> [String: String]? {
        guard let value = optionalValue(key) else { return nil }
        return try within(key) { try Self.stringMap(value) }
    }

    /// An optional array, each element read by `element` (its errors name the element's index).
    func optionalArray<Element>(_ key: String, _ element: (JSONValue) throws -> Element) throws -> [Element]? {
        guard let value = optionalValue(key) else { return nil }
        return try within(key) {
            guard case .array(let elements) = value else { throw PayloadFieldError.expected("an array", found: value) }
            var result: [Element] = []
            result.reserveCapacity(elements.count)
            for index in elements.indices {
                do {
                    result.append(try element(elements[index]))
                } catch let error as PayloadFieldError {
                    throw error.under(.index(index))
                }
            }
            return result
        }
    }

    /// `value` as a `Scalar`.
    static func scalar<Scalar: JSONScalar>(_ value: JSONValue) throws -> Scalar {
        guard let scalar = Scalar(json: value) else { throw PayloadFieldError.expected("\(Scalar.self)", found: value) }
        return scalar
    }

    /// `value` as an object of strings.
    private static func stringMap(_ value: JSONValue) throws -> [String: String] {
        guard case .object(let members) = value else { throw PayloadFieldError.expected("an object", found: value) }
        var map: [String: String] = .init(minimumCapacity: members.count)
        for (name, member) in members {
            guard case .string(let text) = member else { throw PayloadFieldError.expected("String", found: member).under(.member(name)) }
            map[name] = text
        }
        return map
    }

    /// `body`'s result, its errors placed under the member `key`.
    private func within<Value>(_ key: String, _ body: () throws -> Value) throws -> Value {
        do {
            return try body()
        } catch let error as PayloadFieldError {
            throw error.under(.member(key))
        }
    }
}

/// A payload member a typed event cannot read: where it is and what is wrong, described as the
/// `Codable` path describes its `DecodingError` (``BusEventPayloadError/describe(_:)``):
/// `payload.media[0].url is missing`, `payload.seq: expected Int, found a string`.
struct PayloadFieldError: Error, CustomStringConvertible {
    /// One step down from the payload.
    enum Step {
        case member(String)
        case index(Int)
    }

    /// From the payload down to the member.
    var path: [Step]
    /// What is wrong with it; `nil`: it is missing.
    var problem: String?

    var description: String {
        let place = path.reduce("payload") { text, step in
            switch step {
            case .member(let name): "\(text).\(name)"
            case .index(let index): "\(text)[\(index)]"
            }
        }
        return problem.map { "\(place): \($0)" } ?? "\(place) is missing"
    }

    /// A value of the wrong kind (`null` included) where `expected` was.
    static func expected(_ expected: String, found: JSONValue) -> PayloadFieldError {
        PayloadFieldError(path: [], problem: "expected \(expected), found \(found.kindName)")
    }

    /// The same error one step further down (`step` is where the erring value sits).
    func under(_ step: Step) -> PayloadFieldError {
        PayloadFieldError(path: [step] + path, problem: problem)
    }
}
