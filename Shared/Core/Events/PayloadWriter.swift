/// A typed bus event's payload object built member by member, as its `Codable` conformance writes it
/// through ``JSONValue/init(encoding:)`` but without an `Encoder`: ``BusEventPayload/busPayload()`` of
/// the events on the hot path.
///
/// A `nil` optional is left out (as `encodeIfPresent` does); integers become numbers; string
/// enumerations their raw values; a ``JSONValue`` is carried as it is (`null` too).
struct PayloadWriter {
    /// The members so far.
    private(set) var members: [String: JSONValue]

    /// An empty object with room for `capacity` members.
    init(capacity: Int) {
        members = .init(minimumCapacity: capacity)
    }

    /// The object.
    var json: JSONValue { .object(members) }

    /// Sets the member `key` to `value`, or leaves it out when `value` is `nil` (the overloads below
    /// likewise, for the field types the events have).
    mutating func set(_ key: String, _ value: JSONValue?) {
        if let value { members[key] = value }
    }

    mutating func set(_ key: String, _ value: String?) {
        if let value { members[key] = .string(value) }
    }

    mutating func set(_ key: String, _ value: Int?) {
        if let value { members[key] = .number(Double(value)) }
    }

    mutating func set(_ key: String, _ value: Double?) {
        if let value { members[key] = .number(value) }
    }

    mutating func set(_ key: String, _ value: Bool?) {
        if let value { members[key] = .bool(value) }
    }

    mutating func set<Value: RawRepresentable>(_ key: String, _ value: Value?) where Value.RawValue == String {
        if let value { members[key] = .string(value.rawValue) }
    }

    mutating func set(_ key: String, _ value: [String: String]?) {
        if let value { members[key] = JSONValue(value) }
    }
}
