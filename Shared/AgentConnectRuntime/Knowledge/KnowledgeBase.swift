package import AgentConnectCore
package import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationEssentialsCompat
import NIOHTTP1
package import Store

/// Knowledge base settings.
package struct KnowledgeConfiguration: Sendable {
    /// `KNOWLEDGE_EMBEDDINGS_BASE_URL`: an OpenAI-compatible `/v1` with `/embeddings`; unset, search is full-text only.
    package var embeddingsBaseURL: String?
    /// `KNOWLEDGE_EMBEDDINGS_MODEL`.
    package var embeddingsModel: String
    /// `KNOWLEDGE_EMBEDDINGS_API_KEY`, else `OPENAI_API_KEY`.
    package var embeddingsAPIKey: String?
    /// `KNOWLEDGE_SEARCH_LIMIT`: chunks a search returns by default.
    package var searchLimit: Int
    /// `KNOWLEDGE_CHUNK_CHARACTERS`: the largest chunk.
    package var chunkCharacters: Int

    package init(environment: Environment) throws {
        embeddingsBaseURL = try environment.string("KNOWLEDGE_EMBEDDINGS_BASE_URL").map { _ in
            try environment.url("KNOWLEDGE_EMBEDDINGS_BASE_URL", default: "")
        }
        embeddingsModel = environment.string("KNOWLEDGE_EMBEDDINGS_MODEL", default: "text-embedding-3-small")
        embeddingsAPIKey = environment.string("KNOWLEDGE_EMBEDDINGS_API_KEY") ?? environment.string("OPENAI_API_KEY")
        searchLimit = try environment.int("KNOWLEDGE_SEARCH_LIMIT", default: 3, range: 1...20)
        chunkCharacters = try environment.int("KNOWLEDGE_CHUNK_CHARACTERS", default: 800, range: 200...8000)
    }
}

/// The knowledge base in PostgreSQL: documents added from files (``add(path:)``), searched by
/// full text and, with an embeddings endpoint, by vector similarity computed in SQL.
package struct KnowledgeBase: Sendable {
    package let configuration: KnowledgeConfiguration
    let store: any KnowledgeStore
    let http: HTTPClient

    package init(configuration: KnowledgeConfiguration, store: any KnowledgeStore, http: HTTPClient = .shared) {
        self.configuration = configuration
        self.store = store
        self.http = http
    }

    /// What adding a file did.
    package struct Added: Sendable, Equatable {
        package var source: String
        package var title: String
        /// Chunks stored; 0 when the file was unchanged since it was last added.
        package var chunks: Int
        package var unchanged: Bool
        package var embedded: Bool
    }

    /// Reads, chunks and stores a file (replacing its earlier version; unchanged files are skipped).
    package func add(path: String) async throws -> Added {
        let source = URL(fileURLWithPath: path).standardizedFileURL.path
        let (title, text) = try KnowledgeText.extract(path: path)
        let hash = Self.hash(text)
        if try await store.knowledgeDocumentIsCurrent(source: source, contentHash: hash) {
            return Added(source: source, title: title, chunks: 0, unchanged: true, embedded: false)
        }
        let chunks = KnowledgeText.chunks(text, maxCharacters: configuration.chunkCharacters)
        guard !chunks.isEmpty else { throw KnowledgeError("\(path): no text") }
        let embeddings = configuration.embeddingsBaseURL == nil ? nil : try await embed(chunks)
        _ = try await store.replaceKnowledgeDocument(
            KnowledgeDocument(source: source, title: title, contentHash: hash, chunks: chunks, embeddings: embeddings))
        return Added(source: source, title: title, chunks: chunks.count, unchanged: false, embedded: embeddings != nil)
    }

    /// The chunks most relevant to `query`, best first.
    package func search(_ query: String, limit: Int? = nil) async throws -> [KnowledgeChunk] {
        let embedding = configuration.embeddingsBaseURL == nil ? nil : try await embed([query]).first
        return try await store.searchKnowledge(query: query, embedding: embedding, limit: limit ?? configuration.searchLimit)
    }

    /// Every stored document: source, title, number of chunks.
    package func documents() async throws -> [(source: String, title: String, chunks: Int)] {
        try await store.knowledgeDocuments()
    }

    /// Embeddings of `texts` from the configured endpoint, 64 at a time.
    func embed(_ texts: [String]) async throws -> [[Double]] {
        guard let base = configuration.embeddingsBaseURL else { return [] }
        var vectors: [[Double]] = []
        for start in stride(from: 0, to: texts.count, by: 64) {
            let batch = Array(texts[start..<min(start + 64, texts.count)])
            var request = HTTPClientRequest(url: base + "/embeddings")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            if let key = configuration.embeddingsAPIKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
            let body: JSONValue = ["model": .string(configuration.embeddingsModel), "input": .array(batch.map { .string($0) })]
            request.body = .bytes(ByteBuffer(string: body.compactJSON))
            let response = try await http.execute(request, timeout: .seconds(60))
            let bytes = try await response.body.collect(upTo: 64 << 20)
            guard response.status == .ok else {
                throw KnowledgeError("the embeddings endpoint answered \(response.status.code): \(String(buffer: bytes).prefix(300))")
            }
            let answer = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: bytes))
            let data = (answer["data"]?.array ?? []).sorted { ($0["index"]?.double ?? 0) < ($1["index"]?.double ?? 0) }
            let batchVectors = data.map { ($0["embedding"]?.array ?? []).compactMap(\.double) }
            guard batchVectors.count == batch.count, batchVectors.allSatisfy({ !$0.isEmpty }) else {
                throw KnowledgeError("the embeddings endpoint returned \(batchVectors.count) vectors for \(batch.count) texts")
            }
            vectors += batchVectors
        }
        return vectors
    }

    /// FNV-1a of the text: whether a file changed since it was added.
    static func hash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
