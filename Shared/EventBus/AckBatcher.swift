import NIOConcurrencyHelpers

/// Acknowledges entries of one consumer group in batches: one `XACK` per stream for every entry
/// whose handler finished while the previous batch was on its way, instead of one per entry.
///
/// Each ``ack(stream:id:)`` returns only once its own entry's acknowledgement was answered (or
/// throws that batch's error), so an entry is still acknowledged only after its effect, and a
/// failure is seen by the caller that can retry it. No timer and no task of its own: the first
/// caller with nothing in flight sends its entry at once (no added latency when idle); callers that
/// arrive meanwhile queue, and when a batch is answered the first of them sends everything queued.
package final class AckBatcher: Sendable {
    /// Sends the acknowledgements of one batch: the ids, by stream, in the order they were acknowledged.
    package typealias Send = @Sendable (_ batch: [(stream: String, ids: [String])]) async throws -> Void

    private enum Turn { case acknowledged, send }

    private struct Waiter {
        var stream: String
        var id: String
        var continuation: CheckedContinuation<Turn, any Error>
    }

    private struct State {
        var queue: [Waiter] = []
        var sending = false
    }

    private let state = NIOLockedValueBox(State())
    private let send: Send

    package init(send: @escaping Send) {
        self.send = send
    }

    /// Acknowledges one entry, together with those acknowledged at the same time.
    package func ack(stream: String, id: String) async throws {
        let turn: Turn = try await withCheckedThrowingContinuation { continuation in
            let sendsNow = state.withLockedValue { state -> Bool in
                if state.sending {
                    state.queue.append(Waiter(stream: stream, id: id, continuation: continuation))
                    return false
                }
                state.sending = true
                return true
            }
            if sendsNow { continuation.resume(returning: .send) }
        }
        guard turn == .send else { return }
        // This caller's turn: its entry and everything queued go out as one batch.
        let queued = state.withLockedValue { state -> [Waiter] in
            defer { state.queue.removeAll(keepingCapacity: true) }
            return state.queue
        }
        let result: Result<Void, any Error>
        do {
            try await send(Self.group([(stream, id)] + queued.map { ($0.stream, $0.id) }))
            result = .success(())
        } catch {
            result = .failure(error)
        }
        for waiter in queued {
            switch result {
            case .success: waiter.continuation.resume(returning: .acknowledged)
            case .failure(let error): waiter.continuation.resume(throwing: error)
            }
        }
        // Whoever queued while this batch was out sends the next one.
        let next = state.withLockedValue { state -> Waiter? in
            guard !state.queue.isEmpty else {
                state.sending = false
                return nil
            }
            return state.queue.removeFirst()
        }
        next?.continuation.resume(returning: .send)
        try result.get()
    }

    /// How many acknowledgements wait for the batch on its way (for tests).
    var queued: Int { state.withLockedValue { $0.queue.count } }

    /// The ids by stream, streams in order of first appearance, ids in the order given.
    static func group(_ entries: [(stream: String, id: String)]) -> [(stream: String, ids: [String])] {
        var order: [String] = []
        var ids: [String: [String]] = [:]
        for entry in entries {
            if ids[entry.stream] == nil { order.append(entry.stream) }
            ids[entry.stream, default: []].append(entry.id)
        }
        return order.map { ($0, ids[$0] ?? []) }
    }
}
