extension Migrations {
    /// Finished delivery rows are deleted once they are older than `DELIVERY_RETENTION_SECONDS`
    /// (``PostgresStore/pruneDeliveries(olderThanSeconds:limit:)``), oldest first, found through
    /// this index. Partial: a row enters it once, when it is marked sent or failed (that update
    /// writes new index entries anyway: it changes the status `deliveries_sent_like` is filtered on).
    /// Not BRIN: rows are updated after they are inserted and later ones fill the space deleted
    /// ones leave, so a block range's times only widen, and the sweep would read the whole table.
    static let deliveryRetention = Migration(
        version: 7, name: "delivery_retention",
        sql: """
            CREATE INDEX deliveries_finished_by_age ON deliveries (created_at) WHERE status <> 'pending';
            """)
}
