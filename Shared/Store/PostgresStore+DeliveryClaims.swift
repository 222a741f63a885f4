import AgentConnectCore
import Foundation
import Logging
import PostgresNIO

/// One reply's claim of its delivery row, as ``PostgresStore/claimRows(_:statements:)`` takes it
/// (the arguments of ``PostgresStore/claimForSending(replyId:conversationId:channel:textHash:owner:leaseMilliseconds:optOut:targetKnown:)``).
package struct ClaimRequest: Sendable {
    package var replyId: String
    package var conversationId: String
    package var channel: ChannelKind
    package var textHash: String
    package var owner: String
    package var leaseMilliseconds: Int
    /// The sender and customer whose opt-out is read; nil: never opted out.
    package var optOut: (agent: String, customer: String)?
    /// Whether the send's target is known without a call to Twilio.
    package var targetKnown: Bool

    package init(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int,
        optOut: (agent: String, customer: String)?, targetKnown: Bool
    ) {
        self.replyId = replyId
        self.conversationId = conversationId
        self.channel = channel
        self.textHash = textHash
        self.owner = owner
        self.leaseMilliseconds = leaseMilliseconds
        self.optOut = optOut
        self.targetKnown = targetKnown
    }
}

/// A conversation's reconciled Orchestrator participants: the agent's and the customer's ids.
package struct ParticipantIds: Sendable, Equatable {
    package var agentId: String
    package var customerId: String

    package init(agentId: String, customerId: String) {
        self.agentId = agentId
        self.customerId = customerId
    }

    /// Both ids as a row reads them, or nil when either is missing.
    init?(agentId: String?, customerId: String?) {
        guard let agentId, let customerId else { return nil }
        self.init(agentId: agentId, customerId: customerId)
    }
}

/// What the claim statement found for one ``ClaimRequest``.
package struct ClaimedRow: Sendable, Equatable {
    /// Whether this request created the row (false: it existed, or an earlier copy of the reply in
    /// the same statement created it).
    package var inserted: Bool
    /// Whether the customer opted out of the sender.
    package var optedOut: Bool
    /// Whether the row was created with its send recorded (meaningful only when `inserted`).
    package var sendRecorded: Bool
    /// The conversation's agent and customer participant ids, when its participants were reconciled.
    package var participants: ParticipantIds?

    package init(inserted: Bool, optedOut: Bool, sendRecorded: Bool, participants: ParticipantIds? = nil) {
        self.inserted = inserted
        self.optedOut = optedOut
        self.sendRecorded = sendRecorded
        self.participants = participants
    }
}

extension PostgresStore {
    /// The new-row step of claims issued at the same time, in one statement: for each request, the
    /// opt-out of its pair, its conversation's reconciled participants, and its delivery row inserted
    /// unless one exists (`ON CONFLICT DO NOTHING`) with its owner's lease, the send recorded when
    /// the customer did not opt out and the target is known (or the participants reconciled). One
    /// answer per request, in order.
    ///
    /// - A reply requested twice in one call is inserted for its first request only; the later copy
    ///   answers `inserted` false, as it would in the next statement (`RETURNING` names the reply,
    ///   not which copy inserted it).
    /// - One request goes out as a statement shaped for one row, which costs PostgreSQL about a
    ///   quarter less CPU than the array form with one row when statements go plain (less to parse
    ///   and plan); the array form's commit (and parsing and planning, when plain) is paid once per
    ///   statement, not per row.
    /// - Both are prepared statements (``PreparedStatements``), plain behind a pooler that refuses them.
    /// - A statement commits all its rows or none: one row waiting on another transaction's lock (a
    ///   second outbound claiming the same reply) keeps the others uncommitted meanwhile. Their callers
    ///   may time out and retry; the rows then exist with the send recorded, so the retry asks Twilio
    ///   before sending (in doubt), never sends twice.
    package static func claimRows(_ requests: [ClaimRequest], statements: PreparedStatements) async throws -> [ClaimedRow] {
        if requests.count == 1 {
            let rows = try await statements.rows(ClaimOneRow(request: requests[0]))
            guard let row = rows.first else {
                throw StoreError(.unavailable, "claiming the delivery row of reply \(requests[0].replyId) returned no row")
            }
            return [
                ClaimedRow(inserted: row.0, optedOut: row.1, sendRecorded: row.2, participants: ParticipantIds(agentId: row.3, customerId: row.4))
            ]
        }
        var answers = [ClaimedRow?](repeating: nil, count: requests.count)
        for row in try await statements.rows(ClaimRows(requests: requests)) {
            guard answers.indices.contains(row.0 - 1) else { continue }
            answers[row.0 - 1] = ClaimedRow(
                inserted: row.1, optedOut: row.2, sendRecorded: row.3, participants: ParticipantIds(agentId: row.4, customerId: row.5))
        }
        return try answers.enumerated().map { index, answer in
            guard let answer else {
                throw StoreError(.unavailable, "claiming the delivery row of reply \(requests[index].replyId) returned no row")
            }
            return answer
        }
    }
}

/// The claim of several replies' rows: one row per request, numbered from 1 in the requests' order.
struct ClaimRows: PostgresPreparedStatement {
    static let name = PreparedStatements.name(Self.self)
    // The rows are inserted in reply id order, so two statements claiming the same new replies
    // wait on each other in one order (no deadlock).
    static let sql = """
        WITH claims AS (
            SELECT c.*, c.has_opt_out AND EXISTS (
                    SELECT 1 FROM opt_outs WHERE agent_address = c.opt_agent AND customer_address = c.opt_customer) AS opted_out,
                (SELECT ARRAY[p.agent_participant_id, p.customer_participant_id] FROM conversations p
                    WHERE p.id = c.conversation_id AND p.metadata->>'participants_reconciled' = '1'
                        AND p.agent_participant_id IS NOT NULL AND p.customer_participant_id IS NOT NULL) AS parts
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::bool[], $8::text[], $9::text[],
                $10::bool[], $11::bool[])
                WITH ORDINALITY AS c (reply_id, conversation_id, channel, text_hash, owner, lease_ms, has_opt_out, opt_agent, opt_customer,
                    target_known, first_copy, n)
        ), recorded AS (
            SELECT *, NOT opted_out AND (target_known OR parts IS NOT NULL) AS send_recorded FROM claims
        ), inserted AS (
            INSERT INTO deliveries (reply_id, conversation_id, channel, text_hash, owner, lease_until, in_doubt_since, attempts)
            SELECT reply_id, conversation_id, channel, text_hash, owner, now() + lease_ms * interval '1 millisecond',
                CASE WHEN send_recorded THEN now() END, CASE WHEN send_recorded THEN 1 ELSE 0 END
            FROM recorded WHERE first_copy ORDER BY reply_id
            ON CONFLICT (reply_id) DO NOTHING RETURNING reply_id
        )
        SELECT n, first_copy AND reply_id IN (SELECT reply_id FROM inserted), opted_out, send_recorded, parts[1], parts[2] FROM recorded
        """
    typealias Row = (Int, Bool, Bool, Bool, String?, String?)

    var requests: [ClaimRequest]

    func makeBindings() -> PostgresBindings {
        var seen = Set<String>()
        let firstCopy = requests.map { seen.insert($0.replyId).inserted }
        var binds = PostgresBindings(capacity: 11)
        binds.append(requests.map(\.replyId), context: .default)
        binds.append(requests.map(\.conversationId), context: .default)
        binds.append(requests.map(\.channel.rawValue), context: .default)
        binds.append(requests.map(\.textHash), context: .default)
        binds.append(requests.map(\.owner), context: .default)
        binds.append(requests.map(\.leaseMilliseconds), context: .default)
        binds.append(requests.map { $0.optOut != nil }, context: .default)
        binds.append(requests.map { $0.optOut?.agent ?? "" }, context: .default)
        binds.append(requests.map { $0.optOut?.customer ?? "" }, context: .default)
        binds.append(requests.map(\.targetKnown), context: .default)
        binds.append(firstCopy, context: .default)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The claim of one reply's row (``ClaimRows`` shaped for one).
struct ClaimOneRow: PostgresPreparedStatement {
    static let name = PreparedStatements.name(Self.self)
    static let sql = """
        WITH opted AS (
            SELECT EXISTS (SELECT 1 FROM opt_outs WHERE agent_address = $1::text AND customer_address = $2::text) AS opted_out
        ), parts AS (
            SELECT c.agent_participant_id, c.customer_participant_id FROM conversations c
            WHERE c.id = $3::text AND c.metadata->>'participants_reconciled' = '1'
                AND c.agent_participant_id IS NOT NULL AND c.customer_participant_id IS NOT NULL
        ), recorded AS (
            SELECT NOT opted.opted_out AND ($4::bool OR EXISTS (SELECT 1 FROM parts)) AS send_recorded FROM opted
        ), inserted AS (
            INSERT INTO deliveries (reply_id, conversation_id, channel, text_hash, owner, lease_until, in_doubt_since, attempts)
            SELECT $5::text, $3::text, $6::text, $7::text, $8::text, now() + $9::int8 * interval '1 millisecond',
                CASE WHEN recorded.send_recorded THEN now() END, CASE WHEN recorded.send_recorded THEN 1 ELSE 0 END
            FROM recorded
            ON CONFLICT (reply_id) DO NOTHING RETURNING reply_id
        )
        SELECT EXISTS (SELECT 1 FROM inserted), opted.opted_out, recorded.send_recorded, parts.agent_participant_id, parts.customer_participant_id
        FROM opted CROSS JOIN recorded LEFT JOIN parts ON true
        """
    typealias Row = (Bool, Bool, Bool, String?, String?)

    var request: ClaimRequest

    func makeBindings() -> PostgresBindings {
        var binds = PostgresBindings(capacity: 9)
        binds.append(request.optOut?.agent)
        binds.append(request.optOut?.customer)
        binds.append(request.conversationId, context: .default)
        binds.append(request.targetKnown, context: .default)
        binds.append(request.replyId, context: .default)
        binds.append(request.channel.rawValue, context: .default)
        binds.append(request.textHash, context: .default)
        binds.append(request.owner, context: .default)
        binds.append(request.leaseMilliseconds, context: .default)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

extension PostgresStore {
    /// Deletes up to `limit` finished delivery rows (sent or failed) created more than `seconds` ago,
    /// oldest first (read in the order of the `deliveries_finished_by_age` index, which stops at the
    /// limit); returns how many went.
    ///
    /// - A pending row stays whatever its age: its send may be in doubt, and only its row keeps a
    ///   second send from going out.
    /// - Rows another transaction holds (a second replica's sweep, a late status callback) are
    ///   skipped, not waited for: the next sweep takes them.
    /// - One statement, its own transaction, so a sweep deletes in small bites beside the live traffic.
    package func pruneDeliveries(olderThanSeconds seconds: Int, limit: Int) async throws -> Int {
        let rows = try await client.query(
            """
            WITH gone AS (
                DELETE FROM deliveries WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM deliveries
                    WHERE created_at < now() - \(seconds) * interval '1 second' AND status <> 'pending'
                    ORDER BY created_at LIMIT \(limit) FOR UPDATE SKIP LOCKED))
                RETURNING 1)
            SELECT count(*)::int8 FROM gone
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}
