import AgentConnectCore
import Crypto
import EventBus
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceSupport
import Store
import TwilioKit

/// Delivers each `reply.ready` exactly once, against a Twilio that does not deduplicate resends.
///
/// - The reply's delivery row is **claimed** first (owner and lease): a second copy of the same reply
///   (a redelivered entry, a redone turn) waits while a live owner sends, and skips once it is sent.
///   For a new reply one statement creates the row with the send already recorded and reads the
///   opt-out and the conversation's participants: a delivery costs two PostgreSQL round trips (claim,
///   then mark sent) around the send.
/// - Just before each send the row records that a send may now reach Twilio (`in_doubt_since`,
///   committed before the request goes out). A send that ends without a clear answer — a timeout or a
///   reset after the request went out, a 5xx — leaves it set. Before anything is sent again, Twilio
///   is asked whether the message is there (**reconciliation**): the conversation's communications
///   for Conversation Orchestrator replies, the Messages list for classic ones. Found: the reply is
///   marked sent and nothing is resent. Counted in `agentconnect_delivery_ambiguous_total{resolution}`.
/// - 429 and 5xx are retried with exponential backoff and jitter, honouring `Retry-After`; after
///   `maxAttempts` the reply goes to the dead-letter stream. A store or bus outage is not an attempt:
///   it propagates and the consumer retries the whole delivery in place.
struct ReplyDeliverer: Sendable {
    let configuration: OutboundConfiguration
    let api: ConversationsAPI
    let reconciler: ParticipantReconciler
    /// The delivery rows, and who opted out (STOP) of which sender (``PostgresStore`` in the
    /// service, ``InMemoryStore`` in tests).
    let store: any OutboundStore
    let logger: Logger
    /// This process, as the owner of the delivery rows it claims.
    let owner: String
    /// Reply ids being delivered in this process right now.
    let active = ActiveReplies()
    /// The metrics every sent reply records, made once (not looked up in the registry per reply).
    let sentMetrics = SentMetrics()

    /// The longest a delivery-row read or write may take before PostgreSQL counts as unavailable
    /// (the delivery is then retried in place, not lost).
    static let storeTimeout = Duration.seconds(5)
    /// How far before the recorded send time a message found in Twilio still counts (clock skew
    /// between PostgreSQL and Twilio).
    static let reconcileSkew: TimeInterval = 10

    /// How long a claimed row stays ours without renewal: longer than one send and one wait.
    var leaseMilliseconds: Int { max(30_000, 2 * configuration.twilioTimeoutMilliseconds + configuration.retryMaxMilliseconds) }

    /// Where a reply goes: a classic Messages API send, or a Conversation Orchestrator action.
    enum Target: Sendable {
        case classic(from: String, to: String)
        case orchestrated(participants: ParticipantIds, agentAddress: String, channelId: String?)
    }

    /// Delivers one `reply.ready` in a `delivery` span, a child of the reply's `traceparent` (the turn).
    /// The payload is decoded once, here; one that is not a ``ReplyReady`` can never be delivered and
    /// goes to the dead-letter stream at once (``GiveUp``), as an undeliverable reply always did.
    func deliver(_ event: BusEvent, entry: BusEntry) async throws {
        guard event.carries(ReplyReady.self) else { return }
        let reply: ReplyReady
        do {
            reply = try event.decode(ReplyReady.self)
        } catch {
            let reason = Masking.maskPhoneNumbers("\(error)")
            Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "dead_letter")]).increment()
            logger.error(
                "malformed reply; dead-lettered",
                metadata: ["reply.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "error": "\(reason)"])
            throw GiveUp("malformed reply: \(reason)")
        }
        try await Traces.withSpan("delivery", continuing: event.traceparent, kind: .consumer, attributes: ["channel": event.channel.rawValue]) { _ in
            try await deliverReply(event, reply: reply, entry: entry)
        }
    }

    private func deliverReply(_ event: BusEvent, reply: ReplyReady, entry: BusEntry) async throws {
        // Two copies of one reply in this process (the row's owner is the process) take turns: the
        // second waits here, then finds the row sent.
        while !active.begin(event.id) { try await Task.sleep(for: .milliseconds(100)) }
        defer { active.end(event.id) }
        // A reply longer than the channel carries goes out as ordered parts, one after the other, each
        // with a delivery row of its own: a redelivered reply skips the parts already sent, reconciles
        // the one in doubt, and sends the rest, in order.
        for part in Self.parts(of: event, reply: reply) {
            guard try await deliverPart(part.event, reply: part.reply, entry: entry) else { return }
        }
    }

    /// A reply as the messages that go out: one when its text fits the channel (same id), else one
    /// per part of at most 1,600 characters split on sentence boundaries (`<id>`, `<id>:p2`, …); the
    /// media go with the first part. A template is never split.
    /// Each part is its envelope (the part's id) and its fields (``ReplyReady/part`` set).
    static func parts(of event: BusEvent, reply: ReplyReady) -> [(event: BusEvent, reply: ReplyReady)] {
        guard reply.contentSid == nil, let limit = MessageRules.bodyLimit(for: event.channel), reply.text.utf16.count > limit else {
            return [(event, reply)]
        }
        return MessageSplitter.split(reply.text, limit: limit).enumerated().map { index, piece in
            var part = (event: event, reply: reply)
            part.reply.text = piece
            part.reply.part = index + 1
            if index > 0 {
                part.event.id = "\(event.id):p\(index + 1)"
                part.reply.media = nil
            }
            return part
        }
    }

    /// Delivers one message exactly once; false when the rest of the reply must not go out (the
    /// customer opted out, or the message was the agent's own).
    private func deliverPart(_ event: BusEvent, reply: ReplyReady, entry: BusEntry) async throws -> Bool {
        let replyId = event.id
        let claimed: SendingClaim?
        do {
            claimed = try await claim(event, reply: reply)
        } catch is GivenUpPart {
            // This part was given up on (dead-lettered, refused, opted out) by a copy that died before
            // its entry was acknowledged: the parts after it must not go out without it.
            return false
        }
        guard let claimed, case .claimed(var inDoubtSince) = claimed.claim else { return true }
        if claimed.optedOut {
            try await skipOptedOut(event, reason: "the customer opted out (STOP)")
            return false
        }
        // The claim of a new row recorded the first send already when no call to Twilio comes before
        // it (the target was known); otherwise markSending records it, checking the lease is still ours.
        var sendRecorded = claimed.sendRecorded
        let started = ContinuousClock.now
        var backoff = Backoff(
            initial: .milliseconds(configuration.retryBaseMilliseconds), maximum: .milliseconds(configuration.retryMaxMilliseconds))
        var attempt = 0
        var target: Target?
        while true {
            attempt += 1
            let providerId: String?
            do {
                let resolved: Target
                if let target { resolved = target } else { resolved = try await resolveTarget(event, reply: reply, known: claimed.participants) }
                target = resolved
                if let since = inDoubtSince {
                    // An earlier send may have reached Twilio: ask before sending again.
                    if let found = try await findSent(event, reply: reply, target: resolved, since: since) {
                        Counter(label: "agentconnect_delivery_ambiguous_total", dimensions: [("resolution", "found")]).increment()
                        logger.info("unknown send found in Twilio; not resending", metadata: ["reply.id": "\(replyId)"])
                        try await markSent(event, providerId: found, attempts: attempt, started: started)
                        return true
                    }
                    Counter(label: "agentconnect_delivery_ambiguous_total", dimensions: [("resolution", "resent")]).increment()
                    try await bounded("clearing the doubt") { try await store.clearDoubt(replyId: replyId, owner: owner) }
                    inDoubtSince = nil
                }
                let mayGo: Bool
                if sendRecorded {
                    sendRecorded = false
                    mayGo = true
                } else {
                    mayGo = try await bounded("recording the send") {
                        try await store.markSending(replyId: replyId, owner: owner, leaseMilliseconds: leaseMilliseconds)
                    }
                }
                guard mayGo else {
                    // Our lease lapsed and another copy took the row over: it sends, we do not.
                    Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "lease_lost")]).increment()
                    throw DeliveryLeaseLost(replyId: replyId)
                }
                let sendStarted = Date()
                do {
                    providerId = try await send(event, reply: reply, target: resolved, replyId: replyId)
                } catch let error as TwilioAPIError where error.outcomeUnknown {
                    inDoubtSince = sendStarted
                    Counter(label: "agentconnect_delivery_ambiguous_total", dimensions: [("resolution", "unknown")]).increment()
                    throw error
                } catch let error as TwilioAPIError {
                    // Twilio answered and refused: nothing was created.
                    try await bounded("clearing the doubt") { try await store.clearDoubt(replyId: replyId, owner: owner) }
                    throw error
                }
            } catch let error as TwilioAPIError where error.code == MessageRules.ErrorCode.unsubscribed {
                // Twilio knew of the STOP before we did: remember it, record the reply, never retry it.
                if let pair = optOutPair(event, reply: reply) {
                    try await bounded("recording the opt-out") { try await store.setOptedOut(true, agent: pair.agent, customer: pair.customer) }
                }
                try await skipOptedOut(event, reason: "Twilio refused: the customer opted out (21610)")
                return false
            } catch is OwnMessage {
                try await bounded("marking the delivery failed") {
                    try await store.markDeliveryFailed(replyId: replyId, error: "reply to the agent's own message")
                }
                Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "own_message")]).increment()
                logger.info("not replying to the agent's own message", metadata: ["conversation.id": "\(event.conversationId)"])
                return false
            } catch let error where PostgresStore.isUnavailable(error) || BusError.isUnavailable(error) || error is DeliveryLeaseLost {
                // Our own store is down, not Twilio (or another copy owns the row now): the consumer
                // retries the whole delivery in place, and no attempt is used up.
                throw error
            } catch {
                let retryable = (error as? TwilioAPIError)?.isRetryable ?? false
                guard retryable, attempt < configuration.maxAttempts else {
                    try await giveUp(event, entry: entry, error: error, attempts: attempt, outcomeUnknown: inDoubtSince != nil)
                }
                var delay = backoff.next()
                if let retryAfter = (error as? TwilioAPIError)?.retryAfterSeconds {
                    delay = min(.milliseconds(configuration.retryMaxMilliseconds), .milliseconds(Int64(retryAfter * 1000)))
                }
                Counter(label: "agentconnect_delivery_retries_total").increment()
                logger.warning(
                    "delivery failed; retrying",
                    metadata: [
                        "reply.id": "\(replyId)", "attempt": "\(attempt)", "retry.ms": "\(delay.milliseconds)",
                        "error": "\(Masking.maskPhoneNumbers("\(error)"))",
                    ])
                try await Task.sleep(for: delay)
                continue
            }
            try await markSent(event, providerId: providerId, attempts: attempt, started: started)
            return true
        }
    }

    /// The sender and recipient an opt-out is recorded for (SMS, WhatsApp, RCS), when both are known.
    private func optOutPair(_ event: BusEvent, reply: ReplyReady) -> (agent: String, customer: String)? {
        guard [.sms, .whatsapp, .rcs].contains(event.channel), let customer = reply.customerAddress,
            let agent = reply.agentAddress ?? configuration.senders.defaultSender(for: event.channel)
        else {
            return nil
        }
        return (agent, customer)
    }

    /// Records a reply to a customer who opted out as failed: not sent, not retried, not dead-lettered.
    private func skipOptedOut(_ event: BusEvent, reason: String) async throws {
        try await bounded("marking the delivery failed") { try await store.markDeliveryFailed(replyId: event.id, error: reason) }
        Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "opted_out")]).increment()
        logger.info("not sending to a customer who opted out", metadata: ["reply.id": "\(event.id)", "conversation.id": "\(event.conversationId)"])
    }

    /// Claims the reply's row (with what the send needs: opt-out, participants); nil when there is
    /// nothing to do (already sent or given up on); throws ``GivenUpPart`` for a part of a long reply
    /// that was given up on. While another live owner holds it, waits (the consumer keeps the entry
    /// fresh meanwhile).
    private func claim(_ event: BusEvent, reply: ReplyReady) async throws -> SendingClaim? {
        let optOut = optOutPair(event, reply: reply)
        let textHash = Self.textHash(reply.text)
        // A classic reply's target needs no call to Twilio: the claim may record the send. An
        // orchestrator reply's does unless its participants were reconciled (the claim reads that).
        let targetKnown = classicTarget(event, reply: reply) != nil
        while true {
            let claimed = try await withDeadline(Self.storeTimeout, "claiming the delivery row") {
                try await store.claimForSending(
                    replyId: event.id, conversationId: event.conversationId, channel: event.channel, textHash: textHash, owner: owner,
                    leaseMilliseconds: leaseMilliseconds, optOut: optOut, targetKnown: targetKnown)
            }
            switch claimed.claim {
            case .claimed:
                return claimed
            case .finished(.failed) where reply.part != nil:
                Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "duplicate")]).increment()
                logger.info("part of a reply given up on; the rest is not sent", metadata: ["reply.id": "\(event.id)"])
                throw GivenUpPart()
            case .finished:
                Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "duplicate")]).increment()
                logger.info("reply already delivered; skipping", metadata: ["reply.id": "\(event.id)"])
                return nil
            case .heldElsewhere:
                Counter(label: "agentconnect_delivery_waits_total").increment()
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Marks the row sent (durably; a failure propagates and the delivery is redone, which finds it
    /// in Twilio instead of sending again).
    private func markSent(_ event: BusEvent, providerId: String?, attempts: Int, started: ContinuousClock.Instant) async throws {
        try await withDeadline(Self.storeTimeout, "marking the delivery sent") {
            try await store.markDelivered(replyId: event.id, providerId: providerId)
        }
        sentMetrics.deliverySeconds[event.channel]?.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        if let occurred = event.occurredDate {
            sentMetrics.endToEndSeconds[event.channel]?.recordNanoseconds(Int64(max(0, Date().timeIntervalSince(occurred)) * 1e9))
        }
        sentMetrics.sent.increment()
        logger.debug(
            "reply delivered",
            metadata: [
                "reply.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "attempts": "\(attempts)",
                "traceparent": "\(event.traceparent)",
            ])
    }

    /// A short, stable digest of a reply's text (SHA-256, lowercase hex).
    static func textHash(_ text: String) -> String {
        Hex.lowercase(Array(SHA256.hash(data: Array(text.utf8))))
    }

    /// Marks the row failed and has the consumer dead-letter the entry (``GiveUp``).
    private func giveUp(_ event: BusEvent, entry: BusEntry, error: any Error, attempts: Int, outcomeUnknown: Bool) async throws -> Never {
        let reason = Masking.maskPhoneNumbers("\(error)")
        try await bounded("marking the delivery failed") { try await store.markDeliveryFailed(replyId: event.id, error: reason) }
        let note = outcomeUnknown ? " (the last send's outcome is unknown)" : ""
        Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "dead_letter")]).increment()
        logger.error(
            "reply given up", metadata: ["reply.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "error": "\(reason)"])
        throw GiveUp("delivery failed after \(attempts) attempt(s)\(note): \(reason)")
    }

    func bounded<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withTimeout(Self.storeTimeout, what, body)
    }
}

/// The reply ids a process is delivering: one copy of a reply at a time per process.
final class ActiveReplies: Sendable {
    private let ids = NIOLockedValueBox<Set<String>>([])

    /// False when the reply is already being delivered here.
    func begin(_ id: String) -> Bool { ids.withLockedValue { $0.insert(id).inserted } }

    func end(_ id: String) { _ = ids.withLockedValue { $0.remove(id) } }
}

/// A part of a long reply whose row was given up on: the parts after it are not sent.
struct GivenUpPart: Error {}

/// The delivery row's lease went to another copy of the reply before this one could send.
struct DeliveryLeaseLost: Error, CustomStringConvertible {
    var replyId: String
    var description: String { "delivery lease for reply \(replyId) lost to another owner" }
}

/// The metrics of a sent reply, one of each per channel, made when the deliverer is (after the
/// metrics system is bootstrapped): a `Timer(label:dimensions:)` per reply asked the registry each time.
struct SentMetrics: Sendable {
    let sent = Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "sent")])
    let deliverySeconds = Observability.timersByChannel("agentconnect_delivery_seconds")
    let endToEndSeconds = Observability.timersByChannel("agentconnect_reply_end_to_end_seconds")
}
