import AgentConnect
import AgentConnectAgents
import AgentConnectCore
import Store
import Testing

@testable import AgentConnectRuntime

@Suite("Memory prompts, recall queries, CI results and SSE parsing")
struct MemoryAndModelTests {
    @Test("buildMemoryPrompts: observations, summaries, history in TAC's order and wording; empty sections left out")
    func prompts() {
        let memory = TACMemoryResponse(
            profileId: "p1",
            observations: [Observation(id: "o1", content: "Likes flat whites", source: "agent", conversationId: nil, createdAt: "", score: 1)],
            communications: [
                Communication(id: "m1", conversationId: "c", direction: "inbound", authorAddress: "+1", text: "hi", createdAt: ""),
                Communication(id: "m2", conversationId: "c", direction: "outbound", authorAddress: "+2", text: "hello", createdAt: ""),
            ])
        let prompts = memory.buildMemoryPrompts()
        #expect(prompts.count == 2)
        #expect(prompts[0] == "## Key Observations\nImportant notes about the customer from previous interactions:\n- Likes flat whites")
        #expect(prompts[1] == "## Recent Message History\nRecent messages exchanged with this customer:\nUser: hi\nAssistant: hello")
        #expect(TACMemoryResponse().buildMemoryPrompts().isEmpty)
        #expect(memory.hasMemoryFeatures)
        #expect(!TACMemoryResponse(communications: memory.communications).hasMemoryFeatures)
    }

    @Test("a recall query becomes an OR of its words, without operators or duplicates")
    func tsQuery() {
        #expect(RecallRequest(query: "Coffee & tea? coffee!").tsQuery == "coffee | tea")
        #expect(RecallRequest(query: "a'b|c:*").tsQuery == "a | b | c")
        #expect(RecallRequest(query: "  ").tsQuery == "")
        #expect(RecallRequest(query: nil).tsQuery == "")
    }

    @Test("profile identifiers: phones (also behind whatsapp:), emails; none for RCS and chat identities")
    func identifiers() {
        #expect(ProfileIdentifier(address: "+15551234567") == .phone("+15551234567"))
        #expect(ProfileIdentifier(address: "whatsapp:+15551234567") == .phone("+15551234567"))
        #expect(ProfileIdentifier(address: "Ann@Example.com") == .email("ann@example.com"))
        #expect(ProfileIdentifier(address: "rcs:agent_x") == nil)
        #expect(ProfileIdentifier(address: "ai-assistant") == nil)
        #expect(ProfileIdentifier(address: nil) == nil)
    }

    @Test("operator result content by outputFormat, split into items")
    func operatorContent() {
        let json: JSONValue = ["outputFormat": "JSON", "result": ["payload": #"{"summary":"Asked about refunds"}"#]]
        #expect(IntelligenceResults.items(IntelligenceResults.content(of: json), kind: .summary) == ["Asked about refunds"])
        let nested: JSONValue = [
            "outputFormat": "json",
            "result": ["com.twilio.cai.intelligence.JSONResult": ["payload": #"{"summaries":[{"summary":"a"},{"summary":"b"}]}"#]],
        ]
        #expect(IntelligenceResults.items(IntelligenceResults.content(of: nested), kind: .summary) == ["a", "b"])
        let text: JSONValue = ["outputFormat": "TEXT", "result": ["result": "Prefers email"]]
        #expect(IntelligenceResults.items(IntelligenceResults.content(of: text), kind: .observation) == ["Prefers email"])
        let classification: JSONValue = ["outputFormat": "CLASSIFICATION", "result": ["label": "angry"]]
        #expect(IntelligenceResults.content(of: classification) == "angry")
        let observations = #"{"observations":["Has a dog","Lives in Lyon"]}"#
        #expect(IntelligenceResults.items(observations, kind: .observation) == ["Has a dog", "Lives in Lyon"])
        #expect(IntelligenceResults.items("  ", kind: .summary).isEmpty)
    }

    @Test("server-sent events split across chunks and CRLF lines are reassembled")
    func serverSentEvents() {
        var parser = ServerSentEvents()
        var events: [String] = []
        for chunk in ["data: {\"a\"", ":1}\r\n\r\nda", "ta: x\n", ": comment\n\n", "data: [DONE]\n\n"] {
            events += parser.feed(Array(chunk.utf8))
        }
        #expect(events == [#"{"a":1}"#, "x", "[DONE]"])
    }
}
