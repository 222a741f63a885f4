public import AgentConnectCore
import Foundation

/// The call a tool handler is running for.
public struct ToolCallContext: Sendable {
    /// The tool call's id. In the built-in agent's loop it is derived from the turn (the inbound
    /// event, the round and the call's place in it), so a turn redone after a worker died calls the
    /// tool with the same id: use it as the idempotency key of any side effect.
    public var id: String
    /// The tool's name.
    public var name: String
    /// The conversation, when the tool runs inside a turn.
    public var session: ConversationSession?

    public init(id: String, name: String, session: ConversationSession? = nil) {
        self.id = id
        self.name = name
        self.session = session
    }

    /// Set by the tool loop around each handler.
    @TaskLocal public static var current: ToolCallContext?
}

/// A tool handler's failure that the model should read as is (other errors are described too).
public struct ToolError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension AgentTool {
    /// A tool whose arguments are a `Decodable` Swift type: the parameters' schema is derived from
    /// it (see ``ToolSchema/derived(from:)``) unless `parameters` is given, the model's arguments
    /// are decoded into it, and the handler's `Encodable` result goes back to the model as JSON.
    ///
    /// A handler that throws, or arguments that do not decode, give the model
    /// `{"error": "…", "tool": name}` — never silence. Cancellation (an interrupt) is passed on.
    ///
    /// ```swift
    /// struct Weather: Decodable { var city: String }
    /// let weather = try AgentTool(name: "get_weather", description: "Current weather in a city.") { (args: Weather, call) in
    ///     try await forecasts.now(args.city)
    /// }
    /// ```
    public init<Arguments: Decodable & Sendable, Output: Encodable & Sendable>(
        name: String, description: String, parameters: JSONValue? = nil,
        handler: @escaping @Sendable (Arguments, ToolCallContext) async throws -> Output
    ) throws {
        let schema = try parameters ?? ToolSchema.derived(from: Arguments.self)
        self.init(name: name, description: description, parameters: schema) { arguments in
            let context = ToolCallContext.current ?? ToolCallContext(id: "call_" + BusEvent.newID(), name: name)
            let decoded: Arguments
            do {
                // `{}` for a tool without parameters that the model called with none.
                let object = arguments == .null ? JSONValue.object([:]) : arguments
                decoded = try JSONDecoder().decode(Arguments.self, from: Data(object.compactJSON.utf8))
            } catch {
                return ["error": .string("invalid arguments: \(ToolFailure.describe(error))"), "tool": .string(name)]
            }
            do {
                let output = try await handler(decoded, context)
                return try ToolFailure.json(output)
            } catch {
                return ["error": .string(ToolFailure.describe(error)), "tool": .string(name)]
            }
        }
    }

    /// A tool with a hand-written schema (``ToolSchema``) and raw JSON arguments.
    public init(
        name: String, description: String, parameters: JSONValue,
        handler: @escaping @Sendable (JSONValue, ToolCallContext) async throws -> JSONValue
    ) {
        self.init(name: name, description: description, parameters: parameters) { arguments in
            let context = ToolCallContext.current ?? ToolCallContext(id: "call_" + BusEvent.newID(), name: name)
            do {
                return try await handler(arguments, context)
            } catch {
                return ["error": .string(ToolFailure.describe(error)), "tool": .string(name)]
            }
        }
    }
}

enum ToolFailure {
    static func describe(_ error: any Error) -> String {
        switch error {
        case is CancellationError: "cancelled"
        case let error as DecodingError:
            switch error {
            case .keyNotFound(let key, _): "missing \(key.stringValue)"
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
            @unknown default: "\(error)"
            }
        default: "\(error)"
        }
    }

    static func json(_ value: some Encodable) throws -> JSONValue {
        if let json = value as? JSONValue { return json }
        return try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }
}
