import AgentConnectCore
import Foundation
import PostgresNIO

/// One tool call of an agent's loop, with its result: part of the conversation's history.
public struct ToolCallRecord: Sendable, Equatable {
    /// The id derived from the turn (the same when a turn is redone).
    public var id: String
    public var conversationId: String
    /// The model response that asked for it (calls of one round share it).
    public var roundId: String
    /// Its place among the round's calls.
    public var position: Int
    public var name: String
    /// The arguments as the model wrote them (JSON text).
    public var arguments: String
    /// The result given back to the model (JSON text).
    public var result: String
    public var createdAt: Date

    package init(
        id: String, conversationId: String, roundId: String, position: Int, name: String, arguments: String, result: String,
        createdAt: Date = Date()
    ) {
        self.id = id
        self.conversationId = conversationId
        self.roundId = roundId
        self.position = position
        self.name = name
        self.arguments = arguments
        self.result = result
        self.createdAt = createdAt
    }
}

extension PostgresStore {
    /// Records a finished tool call (the first record of an id wins).
    package func recordToolCall(_ call: ToolCallRecord) async throws {
        try await client.query(
            """
            INSERT INTO tool_calls (id, conversation_id, round_id, position, name, arguments, result, created_at)
            VALUES (\(call.id), \(call.conversationId), \(call.roundId), \(call.position), \(call.name), \(call.arguments),
                \(call.result), \(call.createdAt))
            ON CONFLICT (id) DO NOTHING
            """, logger: logger)
    }

    /// A finished tool call by id (a redone turn reuses its result instead of running it again).
    package func toolCall(id: String) async throws -> ToolCallRecord? {
        try await toolCalls(where: "id", id, limit: 1).first
    }

    /// The conversation's latest tool calls, oldest first.
    package func toolCalls(conversationId: String, limit: Int) async throws -> [ToolCallRecord] {
        try await toolCalls(where: "conversation_id", conversationId, limit: limit)
    }

    private func toolCalls(where column: String, _ value: String, limit: Int) async throws -> [ToolCallRecord] {
        let filter = column == "id" ? "id = $1" : "conversation_id = $1"
        var bindings = PostgresBindings()
        bindings.append(value)
        bindings.append(limit)
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT id, conversation_id, round_id, position, name, arguments, result, created_at FROM (
                    SELECT * FROM tool_calls WHERE \(filter) ORDER BY created_at DESC, id DESC LIMIT $2
                ) latest ORDER BY created_at, round_id, position
                """, binds: bindings)
        var result: [ToolCallRecord] = []
        for try await row in try await client.query(query, logger: logger).decode((String, String, String, Int, String, String, String, Date).self) {
            result.append(
                ToolCallRecord(
                    id: row.0, conversationId: row.1, roundId: row.2, position: row.3, name: row.4, arguments: row.5, result: row.6,
                    createdAt: row.7))
        }
        return result
    }
}
