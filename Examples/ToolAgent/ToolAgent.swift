import AgentConnect
import AgentConnectAgents
import Foundation

/// An order-status agent on the built-in `openai` agent with tools: `check_order` (a typed Swift
/// tool whose schema comes from `OrderLookup`), memory recall, and texting the customer a link
/// while they are on the phone. `ORDER_LOOKUP_DELAY_MS` makes the lookup slow, like a real backend.
@main
struct ToolAgent {
    struct OrderLookup: Decodable, Sendable, DescribedArguments {
        var orderId: String
        static let parameterDescriptions = ["orderId": "The order number, like A-1001."]
    }

    struct OrderStatus: Encodable, Sendable {
        var orderId: String
        var status: String
        var eta: String?
    }

    static let orders = [
        "A-1001": OrderStatus(orderId: "A-1001", status: "shipped", eta: "Thursday"),
        "A-1002": OrderStatus(orderId: "A-1002", status: "being packed", eta: nil),
    ]

    static func main() async throws {
        let tac = TAC(configuration: try .fromEnvironment())
        let delay = Int(ProcessInfo.processInfo.environment["ORDER_LOOKUP_DELAY_MS"] ?? "") ?? 0
        let checkOrder = try AgentTool(name: "check_order", description: "Look up an order's status by its number.") { (lookup: OrderLookup, call) in
            do {
                try await Task.sleep(for: .milliseconds(delay))
            } catch {
                tac.logger.info("order lookup cancelled", metadata: ["tool.call": "\(call.id)"])
                throw error
            }
            guard let order = orders[lookup.orderId.uppercased()] else { throw ToolError("there is no order \(lookup.orderId)") }
            return order
        }
        try BuiltInAgents.installOpenAI(on: tac, tools: [checkOrder], builtIn: [.recallMemory, .textCustomer(channel: .sms)])
        try await tac.run()
    }
}
