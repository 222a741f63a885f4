import AgentConnectCore
import Foundation
import PostgresNIO

/// A document to store: its chunks, each with an embedding when an embeddings endpoint is configured.
package struct KnowledgeDocument: Sendable {
    package var source: String
    package var title: String
    package var contentHash: String
    package var chunks: [String]
    package var embeddings: [[Double]]?

    package init(source: String, title: String, contentHash: String, chunks: [String], embeddings: [[Double]]? = nil) {
        self.source = source
        self.title = title
        self.contentHash = contentHash
        self.chunks = chunks
        self.embeddings = embeddings
    }
}

extension PostgresStore {
    /// Whether a document with this source and content is already stored (adding it again is a no-op).
    package func knowledgeDocumentIsCurrent(source: String, contentHash: String) async throws -> Bool {
        let rows = try await client.query(
            "SELECT 1 FROM knowledge_documents WHERE source = \(source) AND content_hash = \(contentHash)", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Stores a document, replacing an earlier version from the same source, in one transaction.
    package func replaceKnowledgeDocument(_ document: KnowledgeDocument) async throws -> String {
        let id = "kd_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        let logger = logger
        do {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("DELETE FROM knowledge_documents WHERE source = \(document.source)", logger: logger)
                try await connection.query(
                    """
                    INSERT INTO knowledge_documents (id, source, title, content_hash)
                    VALUES (\(id), \(document.source), \(document.title), \(document.contentHash))
                    """, logger: logger)
                for (position, content) in document.chunks.enumerated() {
                    let embedding = document.embeddings.flatMap { position < $0.count ? $0[position] : nil }
                    try await connection.query(
                        """
                        INSERT INTO knowledge_chunks (id, document_id, position, content, embedding)
                        VALUES (\("\(id):\(position)"), \(id), \(position), \(content), \(embedding))
                        """, logger: logger)
                }
            }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.beginError ?? error.commitError ?? error
        }
        return String(id)
    }

    /// The chunks most relevant to `query`, best first. Full-text search matches any of the query's
    /// words (stemmed, stop words dropped) and ranks by the share of them a chunk has, then by cover
    /// density (so a word repeated often does not beat two different words); with `embedding` (the
    /// query's vector), cosine similarity to each chunk's stored vector is computed in SQL and
    /// weighs 70 % of the score, so paraphrases sharing no word still rank.
    package func searchKnowledge(query: String, embedding: [Double]? = nil, limit: Int) async throws -> [KnowledgeChunk] {
        let rows = try await client.query(
            """
            WITH q AS (
                SELECT NULLIF(replace(plainto_tsquery('english', \(query))::text, '&', '|'), '')::tsquery AS terms,
                    tsvector_to_array(to_tsvector('english', \(query))) AS lexemes
            ), scored AS (
                SELECT c.id, d.source, d.title, c.content,
                    CASE WHEN q.terms IS NULL THEN 0 ELSE (
                        0.7 * (SELECT count(*) FROM unnest(q.lexemes) AS l(lexeme) WHERE c.search @@ quote_literal(l.lexeme)::tsquery)
                            / GREATEST(cardinality(q.lexemes), 1)
                        + 0.3 * ts_rank_cd(c.search, q.terms, 32)
                    ) END::float8 AS text_rank,
                    CASE WHEN \(embedding)::float8[] IS NULL OR c.embedding IS NULL THEN NULL ELSE (
                        SELECT sum(a * b) / NULLIF(sqrt(sum(a * a)) * sqrt(sum(b * b)), 0)
                        FROM unnest(c.embedding, \(embedding)::float8[]) AS v(a, b)
                    ) END AS similarity
                FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id, q
                WHERE (q.terms IS NOT NULL AND c.search @@ q.terms) OR (\(embedding)::float8[] IS NOT NULL AND c.embedding IS NOT NULL)
            )
            SELECT id, source, title, content,
                CASE WHEN similarity IS NULL THEN text_rank
                     ELSE 0.3 * text_rank / (SELECT GREATEST(max(text_rank), 1e-9) FROM scored) + 0.7 * GREATEST(similarity, 0) END AS score
            FROM scored
            ORDER BY score DESC, id
            LIMIT \(limit)
            """, logger: logger)
        var chunks: [KnowledgeChunk] = []
        for try await row in rows.decode((String, String, String, String, Double).self) {
            chunks.append(KnowledgeChunk(id: row.0, source: row.1, title: row.2, content: row.3, score: min(1, max(0, row.4))))
        }
        return chunks
    }

    /// Every stored document: source, title, number of chunks.
    package func knowledgeDocuments() async throws -> [(source: String, title: String, chunks: Int)] {
        let rows = try await client.query(
            """
            SELECT d.source, d.title, count(c.id)::int FROM knowledge_documents d
            LEFT JOIN knowledge_chunks c ON c.document_id = d.id GROUP BY d.source, d.title ORDER BY d.source
            """, logger: logger)
        var documents: [(source: String, title: String, chunks: Int)] = []
        for try await row in rows.decode((String, String, Int).self) { documents.append((row.0, row.1, row.2)) }
        return documents
    }
}
