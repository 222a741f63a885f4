extension Migrations {
    /// Messaging as people use it: each reply's delivery status as Twilio reports it (status callbacks),
    /// the customers who opted out (STOP) of a sender, and a fast lookup of a customer's last message
    /// (WhatsApp's 24-hour customer-service window).
    static let messaging = Migration(
        version: 5, name: "messaging",
        sql: """
            ALTER TABLE deliveries ADD COLUMN delivery_status text;
            ALTER TABLE deliveries ADD COLUMN delivery_error_code text;
            ALTER TABLE deliveries ADD COLUMN delivery_status_at timestamptz;
            CREATE TABLE opt_outs (
                agent_address text NOT NULL,
                customer_address text NOT NULL,
                opted_out_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (agent_address, customer_address)
            );
            CREATE INDEX messages_inbound_by_author ON messages (author_address, channel, created_at) WHERE direction = 'inbound';
            """)
}
