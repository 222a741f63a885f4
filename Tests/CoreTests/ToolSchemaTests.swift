import AgentConnect
import AgentConnectCore
import Testing

@Suite("Tools: schemas, formats, typed handlers, streamed calls")
struct ToolSchemaTests {
    enum Size: String, Decodable, CaseIterable, ToolSchemaProviding {
        case small, large
    }

    struct Item: Decodable, Sendable {
        var sku: String
        var quantity: Int
    }

    struct Order: Decodable, Sendable, DescribedArguments {
        var customer: String
        var items: [Item]
        var size: Size
        var express: Bool?
        var tip: Double?
        static let parameterDescriptions = ["customer": "Who orders."]
    }

    @Test("a Codable type's schema: required and optional properties, arrays, nested objects, enums, descriptions")
    func derived() throws {
        let schema = try ToolSchema.derived(from: Order.self)
        #expect(schema["type"] == "object")
        #expect(schema["required"] == ["customer", "items", "size"])
        #expect(schema["additionalProperties"] == false)
        let properties = try #require(schema["properties"])
        #expect(properties["customer"] == ["type": "string", "description": "Who orders."])
        #expect(properties["express"] == ["type": "boolean"])
        #expect(properties["tip"] == ["type": "number"])
        #expect(properties["size"] == ["type": "string", "enum": ["small", "large"]])
        #expect(properties["items"]?["type"] == "array")
        #expect(properties["items"]?["items"]?["required"] == ["sku", "quantity"])
        #expect(properties["items"]?["items"]?["properties"]?["quantity"] == ["type": "integer"])
    }

    @Test("the builder, and the Chat Completions, Realtime and Anthropic formats")
    func formats() throws {
        let parameters = ToolSchema.object(["city": ToolSchema.string("A city"), "days": ToolSchema.integer()], required: ["city"])
        let tool = AgentTool(name: "forecast", description: "Weather", parameters: parameters) { _, _ in "sunny" }
        #expect(tool.openAIFormat == ["type": "function", "function": ["name": "forecast", "description": "Weather", "parameters": parameters]])
        #expect(tool.realtimeFormat == ["type": "function", "name": "forecast", "description": "Weather", "parameters": parameters])
        #expect(tool.anthropicFormat == ["name": "forecast", "description": "Weather", "input_schema": parameters])
        #expect(parameters["required"] == ["city"])
    }

    @Test("a typed handler gets decoded arguments and the call's id; bad arguments and thrown errors become messages")
    func typedHandler() async throws {
        let tool = try AgentTool(name: "order", description: "Place an order") { (order: Order, call: ToolCallContext) -> [String: String] in
            guard order.items.first?.quantity ?? 0 > 0 else { throw ToolError("quantity must be positive") }
            return ["placed": order.customer, "call": call.id]
        }
        let context = ToolCallContext(id: "call_123", name: "order")
        let ok = await ToolCallContext.$current.withValue(context) {
            await tool.call(["customer": "Ada", "items": [["sku": "X", "quantity": 2]], "size": "small"])
        }
        #expect(ok == ["placed": "Ada", "call": "call_123"])
        let failed = await tool.call(["customer": "Ada", "items": [["sku": "X", "quantity": 0]], "size": "large"])
        #expect(failed == ["error": "quantity must be positive", "tool": "order"])
        let invalid = await tool.call(["customer": "Ada", "size": "medium"])
        #expect(invalid["error"]?.string?.hasPrefix("invalid arguments: missing items") == true)
    }
}
