public import AgentConnectCore
import Foundation

extension TAC {
    /// The knowledge chunks most relevant to `query` (`KNOWLEDGE_SEARCH_LIMIT` by default), best first.
    public func searchKnowledge(_ query: String, limit: Int? = nil) async throws -> [KnowledgeChunk] {
        try await backend.searchKnowledge(self, query: query, limit: limit)
    }

    /// `search_knowledge`: the model looks things up in the knowledge base (`agentconnect knowledge add`).
    public func knowledgeSearchTool(name: String = "search_knowledge", limit: Int? = nil) -> AgentTool {
        let parameters = ToolSchema.object(["query": ToolSchema.string("What to look up, in a few words or a question.")])
        return AgentTool(
            name: name,
            description: "Search the company's knowledge base (policies, products, opening hours, how-tos) and get the most relevant passages.",
            parameters: parameters
        ) { arguments, _ in
            let chunks = try await self.searchKnowledge(arguments["query"]?.string ?? "", limit: limit)
            return [
                "results": .array(
                    chunks.map { ["title": .string($0.title), "content": .string($0.content), "score": .number(($0.score * 1000).rounded() / 1000)] })
            ]
        }
    }
}

extension Array where Element == KnowledgeChunk {
    /// A system prompt section with the chunks (empty when there are none).
    public func buildKnowledgePrompt() -> String {
        guard !isEmpty else { return "" }
        return "## Relevant Knowledge\nPassages from the knowledge base that may answer the customer:\n"
            + map { "- \($0.content.replacingOccurrences(of: "\n", with: " "))" }.joined(separator: "\n")
    }
}
