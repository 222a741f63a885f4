extension Migrations {
    /// Full-text search over observations and summaries, for relevance-ranked memory.
    static let memorySearch = Migration(
        version: 2, name: "memory_search",
        sql: """
            ALTER TABLE observations
                ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED;
            CREATE INDEX observations_search ON observations USING gin (search);
            ALTER TABLE conversation_summaries
                ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED;
            CREATE INDEX summaries_search ON conversation_summaries USING gin (search);
            """)
}
