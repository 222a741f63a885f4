import AgentConnectCore
import AgentConnectRuntime
import ArgumentParser
import Foundation
import PostgresNIO
import ServiceSupport
import Store

/// `agentconnect knowledge add FILE…` / `search QUERY` / `list`: the knowledge base in PostgreSQL
/// (`DATABASE_URL`; embeddings from `KNOWLEDGE_EMBEDDINGS_BASE_URL` when set).
struct Knowledge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add documents to the knowledge base and search it.", subcommands: [Add.self, Search.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Chunk and index files: text, Markdown, HTML, PDF. A file added again replaces its earlier version.")

        @Argument(help: "The files.")
        var files: [String]

        func run() async throws {
            let failures = try await Knowledge.withBase { base in
                var failures = 0
                for file in files {
                    do {
                        let added = try await base.add(path: file)
                        print(
                            added.unchanged
                                ? "\(file): unchanged" : "\(file): \(added.chunks) chunks\(added.embedded ? ", embedded" : "") (\(added.title))")
                    } catch {
                        failures += 1
                        FileHandle.standardError.write(Data("\(file): \(error)\n".utf8))
                    }
                }
                return failures
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The chunks most relevant to a query, best first.")

        @Argument(help: "The query.")
        var query: String

        @Option(help: "How many chunks.")
        var limit: Int = 3

        @Flag(help: "JSON output.")
        var json = false

        func run() async throws {
            try await Knowledge.withBase { base in
                let chunks = try await base.search(query, limit: limit)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    print(String(decoding: try encoder.encode(chunks), as: UTF8.self))
                } else {
                    for chunk in chunks {
                        print("\((chunk.score * 1000).rounded() / 1000)\t\(chunk.title)")
                        print("\t" + chunk.content.replacingOccurrences(of: "\n", with: " ").prefix(160))
                    }
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The documents in the knowledge base.")

        func run() async throws {
            try await Knowledge.withBase { base in
                for document in try await base.documents() {
                    print("\(document.chunks)\t\(document.title)\t\(document.source)")
                }
            }
        }
    }

    /// Runs `body` with the knowledge base on the configured PostgreSQL.
    static func withBase<T: Sendable>(_ body: (KnowledgeBase) async throws -> T) async throws -> T {
        let environment = Environment.process()
        let common = try CommonConfiguration(environment: environment, defaultPort: 8080)
        let configuration = try KnowledgeConfiguration(environment: environment)
        let client = PostgresClient(configuration: common.database.clientConfiguration, backgroundLogger: OperatorLogging.quiet)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(KnowledgeBase(configuration: configuration, store: PostgresStore(client: client, logger: OperatorLogging.quiet)))
        }
    }
}
