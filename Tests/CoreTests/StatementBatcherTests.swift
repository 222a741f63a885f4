import AgentConnectCore
import NIOConcurrencyHelpers
import Testing

@testable import Store

/// The batcher behind PostgreSQL's batched statements, on a scripted `send`: which items share a
/// statement, and what one caller's cancellation or refused item does to the others.
@Suite("StatementBatcher: callers that share a statement", .timeLimit(.minutes(1)))
struct StatementBatcherTests {
    /// A `send` whose statements wait until the test lets them go, and record what they carried.
    final class ScriptedSend: Sendable {
        private let state = NIOLockedValueBox<(sent: [[Int]], held: [CheckedContinuation<Void, Never>], holding: Bool)>(([], [], true))

        var sent: [[Int]] { state.withLockedValue { $0.sent } }
        var heldCount: Int { state.withLockedValue { $0.held.count } }

        /// Answers each item with itself doubled; an item of -1 makes the statement fail.
        func send(_ items: [Int]) async throws -> [Int] {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    state.sent.append(items)
                    if state.holding { state.held.append(continuation) }
                    return !state.holding
                }
                if resumeNow { continuation.resume() }
            }
            if items.contains(-1) { throw Refused() }
            return items.map { $0 * 2 }
        }

        /// Lets the held statements go; with `keepHolding`, later statements are held again.
        func release(keepHolding: Bool = false) {
            let held = state.withLockedValue { state in
                state.holding = keepHolding
                defer { state.held = [] }
                return state.held
            }
            for continuation in held { continuation.resume() }
        }
    }

    struct Refused: Error {}

    static func until(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            try #require(ContinuousClock.now < deadline, "condition not met in 10 s")
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// A batcher with one lane, held busy by a first statement (item 1) that the script holds.
    static func oneLaneBusy() async throws -> (ScriptedSend, StatementBatcher<Int, Int>, first: Task<Int, any Error>) {
        let script = ScriptedSend()
        let batcher = StatementBatcher<Int, Int>(maxBatch: 10, maxInFlight: 1) { try await script.send($0) }
        let first = Task { try await batcher.run(1) }
        try await until { script.heldCount == 1 }
        return (script, batcher, first)
    }

    /// Lets the first statement of ``oneLaneBusy()`` go (it answers 2) and holds the next.
    static func releaseFirstHoldingNext(_ script: ScriptedSend, _ first: Task<Int, any Error>) async throws {
        script.release(keepHolding: true)
        #expect(try await first.value == 2)
        try await until { script.heldCount == 1 }
    }

    @Test("items that arrive while every lane is out go out together, each caller with its own answer")
    func queuedItemsShareAStatement() async throws {
        let (script, batcher, first) = try await Self.oneLaneBusy()
        let others = (2...4).map { value in Task { try await batcher.run(value) } }
        try await Self.until { batcher.queuedCount == 3 }
        #expect(script.sent == [[1]], "nothing else goes out while the only lane is busy")
        script.release()
        #expect(try await first.value == 2)
        for (index, task) in others.enumerated() { #expect(try await task.value == (index + 2) * 2) }
        #expect(script.sent.count == 2)
        #expect(Set(script.sent[1]) == [2, 3, 4])
    }

    @Test("a caller cancelled while queued fails alone, at once, and its item never goes out")
    func cancelledWhileQueued() async throws {
        let (script, batcher, first) = try await Self.oneLaneBusy()
        let gaveUp = Task { try await batcher.run(7) }
        try await Self.until { batcher.queuedCount == 1 }
        gaveUp.cancel()
        await #expect(throws: CancellationError.self) { try await gaveUp.value }
        let live = Task { try await batcher.run(3) }
        try await Self.until { batcher.queuedCount == 1 }
        script.release()
        #expect(try await first.value == 2)
        #expect(try await live.value == 6)
        #expect(!script.sent.joined().contains(7))
    }

    @Test("a caller cancelled while its statement is out stops waiting; the others in the statement get their answers")
    func cancelledWhileSent() async throws {
        let (script, batcher, first) = try await Self.oneLaneBusy()
        let cancelled = Task { try await batcher.run(8) }
        let neighbour = Task { try await batcher.run(9) }
        try await Self.until { batcher.queuedCount == 2 }
        // 8 and 9 go out together, and are held.
        try await Self.releaseFirstHoldingNext(script, first)
        #expect(script.sent.last.map(Set.init) == [8, 9])
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        script.release()
        #expect(try await neighbour.value == 18)
    }

    @Test("a statement refused for one item is run again item by item: only that item's caller fails")
    func refusedItemFailsOnlyItsCaller() async throws {
        let (script, batcher, first) = try await Self.oneLaneBusy()
        let good = Task { try await batcher.run(2) }
        let bad = Task { try await batcher.run(-1) }
        let alsoGood = Task { try await batcher.run(3) }
        try await Self.until { batcher.queuedCount == 3 }
        script.release()
        #expect(try await first.value == 2)
        #expect(try await good.value == 4)
        #expect(try await alsoGood.value == 6)
        await #expect(throws: Refused.self) { try await bad.value }
    }

    @Test("a stuck statement holds only its lane: with lanes free, a new item goes out at once")
    func stuckStatementHoldsOnlyItsLane() async throws {
        let script = ScriptedSend()
        let batcher = StatementBatcher<Int, Int>(maxBatch: 10, maxInFlight: 2) { try await script.send($0) }
        let stuck = Task { try await batcher.run(1) }
        try await Self.until { script.heldCount == 1 }
        let next = Task { try await batcher.run(2) }
        try await Self.until { script.heldCount == 2 }
        #expect(script.sent == [[1], [2]])
        script.release()
        #expect(try await stuck.value == 2)
        #expect(try await next.value == 4)
    }

    @Test("a caller whose deadline passes while its statement is out fails alone; the others in it get their answers")
    func deadlinePassesWhileSent() async throws {
        let (script, batcher, first) = try await Self.oneLaneBusy()
        let bounded = Task { try await withDeadline(.seconds(4), "the bounded call") { try await batcher.run(5) } }
        let neighbour = Task { try await batcher.run(6) }
        try await Self.until { batcher.queuedCount == 2 }
        // 5 and 6 go out together, and are held past the deadline.
        try await Self.releaseFirstHoldingNext(script, first)
        #expect(script.sent.last.map(Set.init) == [5, 6])
        let error = await #expect(throws: TimeoutError.self) { try await bounded.value }
        #expect(error?.description.contains("the bounded call") == true)
        #expect(script.heldCount == 1, "the statement itself is not cut short")
        script.release()
        #expect(try await neighbour.value == 12)
    }

    @Test("a caller whose deadline passes while queued leaves the queue: its item never goes out")
    func deadlinePassesWhileQueued() async throws {
        let (script, batcher, first) = try await Self.oneLaneBusy()
        let bounded = Task { try await withDeadline(.milliseconds(100), "queued") { try await batcher.run(7) } }
        await #expect(throws: TimeoutError.self) { try await bounded.value }
        #expect(batcher.queuedCount == 0)
        script.release()
        #expect(try await first.value == 2)
        #expect(try await batcher.run(3) == 6)
        #expect(!script.sent.joined().contains(7))
    }

    @Test("a caller answered before its deadline gets its answer, and a deadline already passed fails at once without sending")
    func answeredInTimeAndAlreadyPassed() async throws {
        let script = ScriptedSend()
        script.release()
        let batcher = StatementBatcher<Int, Int>(maxBatch: 10, maxInFlight: 1) { try await script.send($0) }
        #expect(try await withDeadline(.seconds(30), "in time") { try await batcher.run(4) } == 8)
        await #expect(throws: TimeoutError.self) {
            try await withDeadline(.zero, "passed") { try await batcher.run(9) }
        }
        #expect(script.sent == [[4]])
    }
}
