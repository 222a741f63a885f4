extension Migrations {
    /// Tool calls of the built-in agent's loop (part of the conversation's history, keyed by the id
    /// derived from the turn), and the knowledge base: documents cut into chunks, ranked by full-text
    /// search and, when an embeddings endpoint is configured, by cosine similarity computed in SQL.
    static let toolsAndKnowledge = Migration(
        version: 6, name: "tools_and_knowledge",
        sql: """
            CREATE TABLE tool_calls (
                id text PRIMARY KEY,
                conversation_id text NOT NULL,
                round_id text NOT NULL,
                position int NOT NULL,
                name text NOT NULL,
                arguments text NOT NULL,
                result text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX tool_calls_by_conversation ON tool_calls (conversation_id, created_at);
            CREATE TABLE knowledge_documents (
                id text PRIMARY KEY,
                source text NOT NULL UNIQUE,
                title text NOT NULL,
                content_hash text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE knowledge_chunks (
                id text PRIMARY KEY,
                document_id text NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
                position int NOT NULL,
                content text NOT NULL,
                search tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
                embedding double precision[]
            );
            CREATE INDEX knowledge_chunks_search ON knowledge_chunks USING gin (search);
            CREATE INDEX knowledge_chunks_by_document ON knowledge_chunks (document_id, position);
            """)
}
