import AgentConnectCore
import AgentConnectTesting
import Foundation
import Testing

/// `agentconnect knowledge add/search` on a small corpus (Markdown, HTML, text, PDF), each test
/// with a database of its own.
@Suite("Knowledge base: add and search", .serialized)
struct KnowledgeTests {
    /// The corpus, written to a fresh directory; returns the file paths.
    static func corpus() throws -> [String] {
        let directory = NSTemporaryDirectory() + "knowledge-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let files: [(String, String)] = [
            (
                "returns.md",
                """
                # Returns and refunds

                You can send an item back within 30 days of delivery. We refund the full price to your card within five business days once the parcel reaches our warehouse.

                # Exchanges

                To swap a size or colour, start an exchange in your account; the replacement goes out when we receive the original.
                """
            ),
            (
                "shipping.html",
                """
                <html><head><title>Shipping &amp; delivery</title><style>p { color: red }</style><script>var tracking = "refund";</script></head>
                <body><h1>Delivery times</h1><p>Standard delivery takes 3&ndash;5 working days. Express shipping arrives the next working day if you order before 2pm.</p>
                <p>We ship to the UK, Ireland and the EU.</p></body></html>
                """
            ),
            ("hours.txt", "Opening hours\n\nOur stores open at 9am and close at 6pm, Monday to Saturday. On Sundays we are closed."),
            (
                "account.pdf",
                """
                %PDF-1.4
                1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
                2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
                3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj
                4 0 obj << /Length 120 >> stream
                BT /F1 12 Tf 72 720 Td (Forgot your password? Use the reset link on the sign-in page;) Tj 0 -14 Td [(the link expires after one) -250 (hour.)] TJ ET
                endstream endobj
                trailer << /Root 1 0 R >>
                %%EOF
                """
            ),
        ]
        var paths = try files.map { name, text in
            let path = "\(directory)/\(name)"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        // A PDF as PDF writers make them: its content stream compressed (FlateDecode, dynamic Huffman).
        let compressed = try #require(Data(base64Encoded: giftCardsPDF))
        paths.append("\(directory)/gift-cards.pdf")
        try compressed.write(to: URL(fileURLWithPath: "\(directory)/gift-cards.pdf"))
        return paths
    }

    static let giftCardsPDF =
        "JVBERi0xLjQKMSAwIG9iaiA8PCAvVHlwZSAvQ2F0YWxvZyAvUGFnZXMgMiAwIFIgPj4gZW5kb2JqCjQgMCBvYmogPDwgL0xlbmd0aCAyNDAgL0ZpbHRlciAvRmxhdGVEZWNvZGUgPj4Kc3RyZWFtCnjaXdBBTsMwEIXhfU/xliAVaBASa5CgG5a+wNSZxINc29hO09yeSaoIEcmrsfR/Hr8bPH02aBqYDq/Peg4w7e7uKF2FpdwWBL5wBl+TZAaFVscBJ8ZQuEUMXgIjZkjQywmxQxwySo2Zy+M9zDcOeGheluob+rW7VmpMSTtDAlVUpwPxfr84UgtO5ClYhhQUF8egIOb3TMhsWVLdEl+x1D+lrEzm5MkqJB2mOOj7lIGjCy9ozNJLIL9W54Vu83be/Uzit9DxnxFinRm+WkehV6fTgqXi9vOMtTg6zjfM06jOz6D/WXTJTfjD7H4BcbGD5QplbmRzdHJlYW0KZW5kb2JqCnRyYWlsZXIgPDwgL1Jvb3QgMSAwIFIgPj4KJSVFT0YK"

    func knowledge(_ arguments: [String], database: TestDatabase, extra: [String: String] = [:]) async throws -> (Int32, String, String) {
        try await knowledge(arguments, databaseURL: database.url, extra: extra)
    }

    func knowledge(_ arguments: [String], databaseURL: String, extra: [String: String] = [:]) async throws -> (Int32, String, String) {
        let outcome = try await CLIRun.agentconnect(["knowledge"] + arguments, environment: ["DATABASE_URL": databaseURL].merging(extra) { $1 })
        return (outcome.status, outcome.out, outcome.err)
    }

    func search(_ query: String, database: TestDatabase, extra: [String: String] = [:]) async throws -> [JSONValue] {
        let (status, out, err) = try await knowledge(["search", query, "--json"], database: database, extra: extra)
        guard status == 0 else { throw TestFailure("search failed: \(err)") }
        return try JSONDecoder().decode(JSONValue.self, from: Data(out.utf8)).array ?? []
    }

    @Test("full text: every file type is chunked and indexed; paraphrased questions find the right chunk first; adding again is a no-op")
    func fullText() async throws {
        let database = try await TestDatabase.migrated()
        let files = try Self.corpus()
        let (status, out, err) = try await knowledge(["add"] + files, database: database)
        #expect(status == 0, "\(err)")
        #expect(out.contains("returns.md: 2 chunks (Returns and refunds)"))
        #expect(out.contains("shipping.html: 1 chunks (Shipping & delivery)"))
        #expect(out.contains("account.pdf: 1 chunks"))
        #expect(out.contains("gift-cards.pdf: 1 chunks"))

        let expectations: [(String, String)] = [
            ("How long do refunds take to reach my card?", "We refund the full price"),
            ("can I exchange a jacket for another size", "start an exchange"),
            ("when do your shops close on saturday", "close at 6pm"),
            ("how fast is express shipping", "Express shipping arrives"),
            ("I forgot my password", "reset link on the sign-in page"),
            ("do gift cards expire?", "Gift cards never expire"),
        ]
        for (question, expected) in expectations {
            let first = try await search(question, database: database).first
            #expect(first?["content"]?.string?.contains(expected) == true, "\(question) → \(first?["content"]?.string ?? "nothing")")
        }
        // Markup and scripts are not indexed; the PDF's TJ pieces join into words.
        #expect(try await search("tracking color", database: database).isEmpty)
        #expect(try await search("expires after one hour", database: database).first?["content"]?.string?.contains("expires after one hour.") == true)

        let (again, unchanged, _) = try await knowledge(["add", files[0]], database: database)
        #expect(again == 0 && unchanged.contains("unchanged"))
        let (bad, _, badError) = try await knowledge(["add", files[0] + ".docx"], database: database)
        #expect(bad != 0 && !badError.isEmpty)
    }

    @Test("vectors: with an embeddings endpoint, a paraphrase sharing no word with the text still finds it")
    func vectors() async throws {
        let model = try await ScriptedModel.start { _ in .init(chunks: []) }
        defer { model.stop() }
        let files = try Self.corpus()
        let question = "How do I get reimbursed?"

        let plain = try await TestDatabase.migrated()
        _ = try await knowledge(["add"] + files, database: plain)
        #expect(try await search(question, database: plain).isEmpty)

        let embedded = try await TestDatabase.migrated()
        let endpoint = ["KNOWLEDGE_EMBEDDINGS_BASE_URL": model.baseURL, "KNOWLEDGE_EMBEDDINGS_MODEL": "fake-embeddings"]
        let (status, out, err) = try await knowledge(["add"] + files, database: embedded, extra: endpoint)
        #expect(status == 0, "\(err)")
        #expect(out.contains("2 chunks, embedded"))
        let found = try await search(question, database: embedded, extra: endpoint)
        #expect(found.first?["content"]?.string?.contains("We refund the full price") == true, "\(found)")
        #expect(model.embeddingRequests >= 5)
        // Full text still counts: a question with the text's own words ranks its chunk first.
        #expect(try await search("opening hours on sundays", database: embedded, extra: endpoint).first?["title"]?.string == "hours")
    }

    @Test("search_knowledge: the openai agent looks the answer up in the knowledge base and answers from it")
    func tool() async throws {
        let model = try await ScriptedModel.start { request in
            guard let result = ScriptedModel.toolMessages(request).first?["content"]?.string else {
                return .init(chunks: [.tool(index: 0, id: "k", name: "search_knowledge", arguments: #"{"query":"how long does a refund take"}"#)])
            }
            let found = (try? JSONDecoder().decode(JSONValue.self, from: Data(result.utf8)))?["results"]?.array?.first?["content"]?.string ?? ""
            return .init(chunks: [
                .text("From our policy: "), .text(found.contains("within five business days") ? "five business days." : "I don't know."),
            ])
        }
        defer { model.stop() }
        let environment = ["TAC_AGENT": "openai", "OPENAI_BASE_URL": model.baseURL, "OPENAI_TOOLS": "search_knowledge"]
        try await AgentHarness.run(agent: "agent-worker", environment: environment) { harness in
            let (status, _, err) = try await knowledge(["add"] + Self.corpus(), databaseURL: harness.databaseURL)
            #expect(status == 0, "\(err)")
            let sms = harness.conversation(from: "+15557770020")
            try await sms.send("How long until I get my refund?")
            #expect(try await sms.reply() == "From our policy: five business days.")
            #expect(try await sms.toolCalls().map(\.name) == ["search_knowledge"])
        }
    }
}
