extension Migrations {
    /// Delivery rows are claimed before a send (owner and lease, so a second copy of a reply waits or
    /// skips) and remember a send whose outcome is unknown, to be reconciled before any resend.
    static let deliveryLeases = Migration(
        version: 4, name: "delivery_leases",
        sql: """
            ALTER TABLE deliveries ADD COLUMN owner text;
            ALTER TABLE deliveries ADD COLUMN lease_until timestamptz;
            ALTER TABLE deliveries ADD COLUMN in_doubt_since timestamptz;
            CREATE INDEX deliveries_by_provider_id ON deliveries (provider_id) WHERE provider_id IS NOT NULL;
            """)
}
