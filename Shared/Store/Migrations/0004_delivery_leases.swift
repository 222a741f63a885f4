extension Migrations {
    /// Delivery rows are claimed before a send (owner and lease, so a second copy of a reply waits or
    /// skips) and remember a send whose outcome is unknown, to be reconciled before any resend; the
    /// hash of a reply's text lets reconciliation count the other replies with the same text.
    static let deliveryLeases = Migration(
        version: 4, name: "delivery_leases",
        sql: """
            ALTER TABLE deliveries ADD COLUMN owner text;
            ALTER TABLE deliveries ADD COLUMN lease_until timestamptz;
            ALTER TABLE deliveries ADD COLUMN in_doubt_since timestamptz;
            ALTER TABLE deliveries ADD COLUMN text_hash text;
            CREATE INDEX deliveries_sent_like ON deliveries (conversation_id, text_hash, sent_at) WHERE status = 'sent';
            CREATE INDEX deliveries_by_provider_id ON deliveries (provider_id) WHERE provider_id IS NOT NULL;
            """)
}
