import AgentConnectCore
import Foundation
import Testing

/// `withTimeout`'s deadlines share one timer: a bound shorter than those already pending, one
/// pending behind entries whose calls already finished, and many at once must each still fire
/// after their own bound, cancel their body, and leave quick calls alone.
@Suite("withTimeout: deadlines on one shared timer", .timeLimit(.minutes(1)))
struct TimeoutTests {
    @Test("a shorter bound added while a longer one is pending times out on its own bound")
    func shorterBoundAfterLonger() async throws {
        let long = Task { try await withTimeout(.seconds(60), "long") { try await Task.sleep(for: .seconds(60)) } }
        defer { long.cancel() }
        let clock = ContinuousClock()
        let started = clock.now
        await #expect(throws: TimeoutError.self) {
            try await withTimeout(.milliseconds(100), "short") { try await Task.sleep(for: .seconds(60)) }
        }
        let elapsed = clock.now - started
        #expect(elapsed >= .milliseconds(100))
        // Long before the 60 s bound, with room for a loaded machine.
        #expect(elapsed < .seconds(20))
    }

    @Test("a bound pending behind finished calls' deadlines still fires")
    func pendingBehindFinishedCalls() async throws {
        // Quick calls whose deadlines sit ahead of the stuck one's (on a loaded machine one may
        // time out itself; either way its entry is no longer live when the timer reaches it).
        for index in 0..<50 {
            _ = try? await withTimeout(.milliseconds(150), "quick \(index)") { index }
        }
        let clock = ContinuousClock()
        let started = clock.now
        await #expect(throws: TimeoutError.self) {
            try await withTimeout(.milliseconds(400), "stuck") { try await Task.sleep(for: .seconds(60)) }
        }
        let elapsed = clock.now - started
        #expect(elapsed >= .milliseconds(400))
        #expect(elapsed < .seconds(20))
    }

    @Test("the body is cancelled when its bound passes")
    func bodyCancelledOnTimeout() async throws {
        let sawCancel = AsyncStream<Bool>.makeStream()
        await #expect(throws: TimeoutError.self) {
            try await withTimeout(.milliseconds(50), "cancelled on timeout") {
                do { try await Task.sleep(for: .seconds(60)) } catch { sawCancel.continuation.yield(Task.isCancelled) }
                return 0
            }
        }
        var iterator = sawCancel.stream.makeAsyncIterator()
        #expect(await iterator.next() == true)
    }

    @Test("many calls at once: each stuck one times out after its own bound, each quick one returns its result")
    func manyAtOnce() async throws {
        let clock = ContinuousClock()
        let outcomes = await withTaskGroup(of: (bound: Int, quick: Bool, timedOut: Bool, value: Int?, elapsed: Duration).self) { group in
            for index in 0..<200 {
                let quick = index % 2 == 0
                // Stuck calls get bounds of 50-300 ms, in shuffled order; quick ones a bound no
                // scheduling delay reaches (the pool is shared with every other test).
                let bound = quick ? 30_000 : 50 + (index * 37) % 250
                group.addTask {
                    let started = clock.now
                    do {
                        let value = try await withTimeout(.milliseconds(bound), "call \(index)") {
                            if !quick { try await Task.sleep(for: .seconds(60)) }
                            return index
                        }
                        return (bound, quick, false, value, clock.now - started)
                    } catch is TimeoutError {
                        return (bound, quick, true, nil, clock.now - started)
                    } catch {
                        return (bound, quick, false, nil, clock.now - started)
                    }
                }
            }
            var outcomes: [(bound: Int, quick: Bool, timedOut: Bool, value: Int?, elapsed: Duration)] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.count == 200)
        for outcome in outcomes where !outcome.quick {
            #expect(outcome.timedOut)
            #expect(outcome.elapsed >= .milliseconds(outcome.bound))
        }
        // A quick body finishes long before its bound even on a loaded machine; none may time out.
        #expect(outcomes.filter { $0.quick && $0.value == nil }.count == 0)
    }

    @Test("a body is cancelled even when its bound passes before its task is recorded (bound zero, many times)")
    func zeroBoundCancelsEveryBody() async throws {
        let ended = AsyncStream<Bool>.makeStream()
        for index in 0..<300 {
            _ = try? await withTimeout(.zero, "zero \(index)") {
                do {
                    try await Task.sleep(for: .seconds(60))
                    ended.continuation.yield(false)
                } catch {
                    ended.continuation.yield(Task.isCancelled)
                }
                return 0
            }
        }
        var cancelled = 0
        for await sawCancel in ended.stream {
            #expect(sawCancel)
            cancelled += 1
            if cancelled == 300 { break }
        }
        #expect(cancelled == 300)
    }

    @Test("a bound of centuries is no bound: the body's result comes back, and the caller can still cancel")
    func centuriesAreNoBound() async throws {
        #expect(try await withTimeout(.seconds(Int64.max / 2), "forever") { 7 } == 7)
        let call = Task { try await withTimeout(.seconds(Int64.max / 2), "forever") { try await Task.sleep(for: .seconds(60)) } }
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
    }

    @Test("withDeadline: withinDeadline bounds a wait by the time left; a later inner deadline does not extend an outer one")
    func deadlineForTheBody() async throws {
        #expect(TaskDeadline.current == nil)
        #expect(try await withinDeadline { 3 } == 3, "no deadline: no bound")
        let clock = ContinuousClock()
        let started = clock.now
        let error = await #expect(throws: TimeoutError.self) {
            try await withDeadline(.milliseconds(150), "outer") {
                #expect(TaskDeadline.current?.label == "outer")
                try await withDeadline(.seconds(60), "inner") {
                    #expect(TaskDeadline.current?.label == "outer", "a later deadline changes nothing")
                    try await withinDeadline { try await Task.sleep(for: .seconds(60)) }
                }
            }
        }
        #expect(error != nil)
        let elapsed = clock.now - started
        #expect(elapsed >= .milliseconds(100))
        #expect(elapsed < .seconds(20))
        #expect(TaskDeadline.current == nil)
        let nested = try await withDeadline(.seconds(60), "outer") {
            try await withDeadline(.seconds(1), "inner") { TaskDeadline.current?.label }
        }
        #expect(nested == "inner", "an earlier deadline inside takes over")
        await #expect(throws: TimeoutError.self) {
            try await withDeadline(.zero, "passed") { try await withinDeadline { 1 } }
        }
        #expect(try await withDeadline(.seconds(Int64.max / 2), "forever") { TaskDeadline.current == nil }, "centuries are no bound")
    }
}
