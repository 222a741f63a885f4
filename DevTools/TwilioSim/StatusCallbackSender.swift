import AgentConnectCore
import Logging
import ServiceLifecycle

/// Posts Messages API status callbacks after the send's answer, in the background (Twilio reports a
/// message's progress later, one callback per status), owned by the sim's service group.
struct StatusCallbackSender: Service {
    /// The callbacks of one message, sent in order.
    struct Job: Sendable {
        var messageSid: String
        /// Whether the message reached the customer (its status is then kept on it, for the dev phone).
        var delivered: Bool
        /// `StatusCallback`; without one the statuses are only recorded.
        var url: String?
        /// The form fields common to every callback (`MessageSid`, `From`, `To`, `AccountSid`, …).
        var fields: [(String, String)]
        /// Each status with its error code (for `failed`/`undelivered`).
        var statuses: [(status: String, errorCode: Int?)]
    }

    let state: SimState
    let webhooks: WebhookSender
    let queue = BackgroundJobs<Job>()

    init(state: SimState, webhooks: WebhookSender) {
        self.state = state
        self.webhooks = webhooks
    }

    /// Queues a message's callbacks.
    func enqueue(_ job: Job) {
        queue.enqueue(job)
    }

    func run() async throws {
        await queue.run { job in await send(job) }
    }

    private func send(_ job: Job) async {
        for (status, errorCode) in job.statuses {
            try? await Task.sleep(for: .milliseconds(50))
            if job.delivered { state.setStatus(job.messageSid, status) }
            guard let url = job.url else { continue }
            var fields = job.fields + [("MessageStatus", status), ("SmsStatus", status)]
            if let errorCode { fields.append(("ErrorCode", String(errorCode))) }
            _ = await webhooks.sendForm(fields, to: url)
        }
    }
}
