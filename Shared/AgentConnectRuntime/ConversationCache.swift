import NIOConcurrencyHelpers
import Store

/// Conversation records a worker has read recently, so a turn does not read PostgreSQL each time.
///
/// A worker owns a conversation's partition, so it sees every turn of it; other services change a
/// record only when a conversation starts (outbound API) or is first answered (reconciliation),
/// which the time to live covers.
final class ConversationCache: Sendable {
    private struct Entry {
        var record: ConversationRecord?
        var at: ContinuousClock.Instant
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    private let ttl: Duration
    private let capacity: Int

    init(ttl: Duration = .seconds(30), capacity: Int = 50_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    /// The record, from memory when fresh, else from `load`.
    func record(_ id: String, load: () async throws -> ConversationRecord?) async throws -> ConversationRecord? {
        if let entry = entries.withLockedValue({ $0[id] }), ContinuousClock.now - entry.at < ttl, entry.record != nil {
            return entry.record
        }
        let record = try await load()
        store(id, record)
        return record
    }

    /// Remembers what this worker just wrote.
    func store(_ id: String, _ record: ConversationRecord?) {
        entries.withLockedValue { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[id] = Entry(record: record, at: .now)
        }
    }

    /// Forgets a conversation (it ended).
    func forget(_ id: String) {
        entries.withLockedValue { _ = $0.removeValue(forKey: id) }
    }
}

/// A small per-conversation value kept by this worker, emptied when it grows past `capacity`:
/// memory fetched once per call (`memoryMode: .once` on voice, until the conversation goes
/// `INACTIVE` or ends), the id of the last voice reply recorded whole.
final class ConversationValues<Value: Sendable>: Sendable {
    private let entries = NIOLockedValueBox<[String: Value]>([:])
    private let capacity: Int

    init(capacity: Int = 50_000) {
        self.capacity = capacity
    }

    subscript(conversationId: String) -> Value? {
        get { entries.withLockedValue { $0[conversationId] } }
        set {
            entries.withLockedValue { entries in
                if newValue != nil, entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
                entries[conversationId] = newValue
            }
        }
    }

    /// Removes and returns the conversation's value.
    func take(_ conversationId: String) -> Value? {
        entries.withLockedValue { $0.removeValue(forKey: conversationId) }
    }
}
