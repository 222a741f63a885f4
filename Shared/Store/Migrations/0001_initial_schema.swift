extension Migrations {
    /// Conversations, participants, history, profiles, deliveries and processed events.
    static let initialSchema = Migration(
        version: 1, name: "initial_schema",
        sql: """
            CREATE TABLE conversations (
                id text PRIMARY KEY,
                channel text NOT NULL,
                status text NOT NULL DEFAULT 'ACTIVE',
                direction text NOT NULL DEFAULT 'inbound',
                customer_address text,
                agent_address text,
                customer_participant_id text,
                agent_participant_id text,
                profile_id text,
                metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                ended_at timestamptz
            );

            CREATE TABLE participants (
                conversation_id text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                id text NOT NULL,
                type text,
                channel text NOT NULL,
                address text NOT NULL,
                profile_id text,
                PRIMARY KEY (conversation_id, id)
            );

            CREATE TABLE messages (
                id text PRIMARY KEY,
                conversation_id text NOT NULL,
                channel text NOT NULL,
                direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
                author_address text,
                body text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at);

            CREATE TABLE profiles (
                id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
                created_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE profile_identifiers (
                kind text NOT NULL CHECK (kind IN ('phone', 'email')),
                value text NOT NULL,
                profile_id text NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
                PRIMARY KEY (kind, value)
            );

            CREATE TABLE traits (
                profile_id text NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
                trait_group text NOT NULL,
                name text NOT NULL,
                value jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (profile_id, trait_group, name)
            );

            CREATE TABLE observations (
                id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
                profile_id text NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
                content text NOT NULL,
                source text NOT NULL DEFAULT 'api',
                conversation_id text,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX observations_by_profile ON observations (profile_id, created_at DESC);

            CREATE TABLE conversation_summaries (
                id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
                profile_id text NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
                conversation_id text,
                content text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX summaries_by_profile ON conversation_summaries (profile_id, created_at DESC);

            CREATE TABLE deliveries (
                reply_id text PRIMARY KEY,
                conversation_id text NOT NULL,
                channel text NOT NULL,
                status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
                attempts integer NOT NULL DEFAULT 0,
                provider_id text,
                error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                sent_at timestamptz
            );

            CREATE TABLE processed_events (
                consumer text NOT NULL,
                event_id text NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, event_id)
            );
            """)
}
