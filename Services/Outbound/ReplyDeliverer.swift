import AgentConnectCore
import EventBus
import Foundation
import Logging
import Metrics
import Store
import TwilioKit

/// Delivers each `reply.ready` exactly once.
///
/// A delivery row is written before the send and marked after it: a redelivered reply whose row says
/// `sent` (or `failed`) is acknowledged without sending; one still `pending` (a process died mid-send)
/// is sent again with the same idempotency token. 429 and 5xx are retried with exponential backoff
/// and jitter, honouring `Retry-After`; after `maxAttempts` the reply goes to the dead-letter stream.
struct ReplyDeliverer: Sendable {
    let configuration: OutboundConfiguration
    let api: ConversationsAPI
    let reconciler: ParticipantReconciler
    let deliveries: any DeliveryStore
    let bus: any EventBus
    let logger: Logger

    /// The longest a delivery-row read or write may take before PostgreSQL counts as unavailable
    /// (the delivery is then retried in place, not lost).
    static let storeTimeout = Duration.seconds(5)

    func deliver(_ event: BusEvent, entry: BusEntry) async throws {
        guard event.type == EventType.replyReady else { return }
        let replyId = event.id
        do {
            try await withTimeout(Self.storeTimeout, "inserting the delivery row") {
                try await deliveries.insertDelivery(replyId: replyId, conversationId: event.conversationId, channel: event.channel)
            }
        } catch let error as StoreError where error.code == .duplicate {
            let status = try await withTimeout(Self.storeTimeout, "reading the delivery row") { try await deliveries.deliveryStatus(replyId: replyId) }
            if status != .pending {
                Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "duplicate")]).increment()
                logger.info("reply already delivered; skipping", metadata: ["reply.id": "\(replyId)"])
                return
            }
        }
        let started = ContinuousClock.now
        var backoff = Backoff(
            initial: .milliseconds(configuration.retryBaseMilliseconds), maximum: .milliseconds(configuration.retryMaxMilliseconds))
        var attempt = 0
        while true {
            attempt += 1
            let providerId: String?
            do {
                do {
                    providerId = try await send(event, replyId: replyId)
                } catch is OwnMessage {
                    try await deliveries.markDeliveryFailed(replyId: replyId, error: "reply to the agent's own message")
                    Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "own_message")]).increment()
                    logger.info("not replying to the agent's own message", metadata: ["conversation.id": "\(event.conversationId)"])
                    return
                }
            } catch where PostgresStore.isUnavailable(error) || BusError.isUnavailable(error) {
                // Our own store is down, not Twilio: the consumer retries the whole delivery in place
                // (a resend carries the same idempotency key), and no attempt is used up.
                throw error
            } catch {
                let retryable = (error as? TwilioAPIError)?.isRetryable ?? false
                guard retryable, attempt < configuration.maxAttempts else {
                    try await giveUp(event, entry: entry, error: error, attempts: attempt)
                    return
                }
                var delay = backoff.next()
                if let retryAfter = (error as? TwilioAPIError)?.retryAfterSeconds {
                    delay = min(.milliseconds(configuration.retryMaxMilliseconds), .milliseconds(Int64(retryAfter * 1000)))
                }
                Counter(label: "agentconnect_delivery_retries_total").increment()
                logger.warning(
                    "delivery failed; retrying",
                    metadata: ["reply.id": "\(replyId)", "attempt": "\(attempt)", "retry.ms": "\(delay.milliseconds)", "error": "\(error)"])
                try await Task.sleep(for: delay)
                continue
            }
            // Sent: from here a failure (PostgreSQL down) propagates and the delivery is redone with
            // the same idempotency key, which Twilio answers without sending again.
            try await withTimeout(Self.storeTimeout, "marking the delivery sent") {
                try await deliveries.markDelivered(replyId: replyId, providerId: providerId)
            }
            Timer(label: "agentconnect_delivery_seconds", dimensions: [("channel", event.channel.rawValue)])
                .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            if let occurred = event.occurredDate {
                Timer(label: "agentconnect_reply_end_to_end_seconds", dimensions: [("channel", event.channel.rawValue)])
                    .recordNanoseconds(Int64(max(0, Date().timeIntervalSince(occurred)) * 1e9))
            }
            Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "sent")]).increment()
            logger.info(
                "reply delivered",
                metadata: [
                    "reply.id": "\(replyId)", "conversation.id": "\(event.conversationId)", "attempts": "\(attempt)",
                    "traceparent": "\(event.traceparent)",
                ])
            return
        }
    }

    private func send(_ event: BusEvent, replyId: String) async throws -> String? {
        let payload = event.payload
        let text = payload["text"]?.string ?? ""
        if payload["mode"]?.string == "classic" {
            guard let to = payload["customerAddress"]?.string, let from = payload["agentAddress"]?.string ?? configuration.senders.defaultSender(for: event.channel)
            else {
                throw ReconciliationError("classic reply without addresses")
            }
            return try await api.sendClassicMessage(from: from, to: to, body: text, idempotencyKey: replyId)
        }
        guard let agentAddress = payload["agentAddress"]?.string ?? configuration.senders.defaultSender(for: event.channel) else {
            throw ReconciliationError("no agent address for \(event.channel.rawValue)")
        }
        let participants = try await reconciler.resolve(
            conversationId: event.conversationId, channel: event.channel, agentAddress: agentAddress,
            customerAddress: payload["customerAddress"]?.string, authorParticipantId: payload["customerParticipantId"]?.string)
        let channelId = payload["channelId"]?.string
        if event.channel == .chat && channelId == nil { throw ReconciliationError("chat reply without channelId") }
        return try await api.sendMessage(
            conversationId: event.conversationId, channel: event.channel, from: participants.agentId, to: participants.customerId, text: text,
            channelId: channelId, idempotencyKey: replyId)
    }

    private func giveUp(_ event: BusEvent, entry: BusEntry, error: any Error, attempts: Int) async throws {
        try await deliveries.markDeliveryFailed(replyId: event.id, error: "\(error)")
        try await bus.deadLetter(entry, group: "outbound", error: "delivery failed after \(attempts) attempt(s): \(error)")
        Counter(label: "agentconnect_deliveries_total", dimensions: [("outcome", "dead_letter")]).increment()
        Counter(label: "agentconnect_dead_letters_total", dimensions: [("stream", Streams.outbound)]).increment()
        logger.error(
            "reply dead-lettered", metadata: ["reply.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "error": "\(error)"])
    }
}
