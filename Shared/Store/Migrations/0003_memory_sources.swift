extension Migrations {
    /// Where a summary came from, and lookups of a profile's communications.
    static let memorySources = Migration(
        version: 3, name: "memory_sources",
        sql: """
            ALTER TABLE conversation_summaries ADD COLUMN source text NOT NULL DEFAULT 'api';
            ALTER TABLE conversation_summaries ADD COLUMN occurred_at timestamptz;
            CREATE INDEX conversations_by_profile ON conversations (profile_id) WHERE profile_id IS NOT NULL;
            """)
}
