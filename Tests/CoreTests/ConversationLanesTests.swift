import AgentConnect
import AgentConnectCore
import EventBus
import NIOConcurrencyHelpers
import Testing

@testable import AgentConnectRuntime

@Suite("Per-conversation lanes")
struct ConversationLanesTests {
    func work(_ type: String, _ conversation: String, channel: ChannelKind = .voice, n: Int) -> LaneWork {
        let event = BusEvent(type: type, conversationId: conversation, channel: channel, payload: ["n": .number(Double(n))])
        return LaneWork(entry: BusEntry(stream: "s", id: "\(n)-0", event: event, raw: []), event: event)
    }

    @Test("a voice prompt supersedes the running turn unless it says supersedes false (the string too); absent or unreadable reads as true")
    func promptSupersedes() {
        func supersedes(_ payload: JSONValue) -> Bool {
            let event = BusEvent(type: EventType.messageReceived, conversationId: "c", channel: .voice, payload: payload)
            return LaneWork(entry: BusEntry(stream: "s", id: "1-0", event: event, raw: []), event: event).supersedesVoiceTurn
        }
        #expect(!supersedes(["text": "hi", "supersedes": false]))
        #expect(!supersedes(["text": "hi", "supersedes": "false"]))
        #expect(supersedes(["text": "hi", "supersedes": true]))
        #expect(supersedes(["text": "hi"]))
        #expect(supersedes(["text": "hi", "supersedes": .null]))
        #expect(supersedes(["text": "hi", "supersedes": 0]))
        #expect(supersedes(.array([])))
    }

    @Test("events of one conversation run in order, one at a time")
    func ordering() async {
        let lanes = ConversationLanes()
        let seen = NIOLockedValueBox<[Int]>([])
        let running = NIOLockedValueBox(0)
        let maxRunning = NIOLockedValueBox(0)
        var starts: [String] = []
        for n in 0..<20 where lanes.enqueue(work(EventType.messageReceived, "c", channel: .sms, n: n)) { starts.append("c") }
        #expect(starts.count == 1)
        await lanes.drain(
            conversationId: "c",
            perform: { item in
                let now = running.withLockedValue {
                    $0 += 1
                    return $0
                }
                maxRunning.withLockedValue { $0 = max($0, now) }
                try await Task.sleep(for: .milliseconds(1))
                seen.withLockedValue { $0.append(Int(item.event.payload["n"]?.double ?? -1)) }
                running.withLockedValue { $0 -= 1 }
            }, finish: { _, _ in })
        #expect(seen.withLockedValue { $0 } == Array(0..<20))
        #expect(maxRunning.withLockedValue { $0 } == 1)
        #expect(lanes.activeConversations == 0)
    }

    @Test("an interrupt cancels the running voice turn at once; the interrupt then runs")
    func interruptCancels() async {
        let lanes = ConversationLanes()
        let outcomes = NIOLockedValueBox<[String]>([])
        _ = lanes.enqueue(work(EventType.messageReceived, "call", n: 1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await lanes.drain(
                    conversationId: "call",
                    perform: { item in
                        if item.event.type == EventType.messageReceived { try await Task.sleep(for: .seconds(30)) }
                    },
                    finish: { item, outcome in
                        let label: String
                        switch outcome {
                        case .superseded: label = "cancelled"
                        case .completed: label = "done"
                        case .failed: label = "failed"
                        case .abandoned: label = "abandoned"
                        }
                        outcomes.withLockedValue { $0.append("\(item.event.type):\(label)") }
                    })
            }
            try? await Task.sleep(for: .milliseconds(50))
            let started = ContinuousClock.now
            _ = lanes.enqueue(work(EventType.voiceInterrupted, "call", n: 2))
            await group.waitForAll()
            // Cancelled, not waited out: well under the turn's 30 s, with room for a loaded machine (the
            // whole suite once took 4.8 s here while integration tests held both cores).
            #expect(ContinuousClock.now - started < .seconds(15))
        }
        #expect(outcomes.withLockedValue { $0 } == ["message.received:cancelled", "voice.interrupted:done"])
    }

    @Test("abandoning a conversation's lane cancels its running turn and leaves everything queued unrun")
    func abandonment() async {
        let lanes = ConversationLanes()
        let outcomes = NIOLockedValueBox<[String]>([])
        let ran = NIOLockedValueBox<[Int]>([])
        _ = lanes.enqueue(work(EventType.messageReceived, "c", channel: .sms, n: 1))
        _ = lanes.enqueue(work(EventType.messageReceived, "c", channel: .sms, n: 2))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await lanes.drain(
                    conversationId: "c",
                    perform: { item in
                        ran.withLockedValue { $0.append(Int(item.event.payload["n"]?.double ?? -1)) }
                        try await Task.sleep(for: .seconds(30))
                    },
                    finish: { item, outcome in
                        outcomes.withLockedValue { $0.append("\(Int(item.event.payload["n"]?.double ?? -1)):\(outcome)") }
                    })
            }
            try? await Task.sleep(for: .milliseconds(50))
            lanes.abandon { $0 == "c" }
            await group.waitForAll()
        }
        #expect(ran.withLockedValue { $0 } == [1])
        #expect(outcomes.withLockedValue { $0 } == ["1:abandoned", "2:abandoned"])
        #expect(lanes.activeConversations == 0)
    }

    @Test("a turn cancelled while it waits for a permit leaves the queue at once; the next waiter still gets the permit")
    func permitWaitersHonourCancellation() async throws {
        let permits = TurnPermits(1)
        let release = AsyncStream.makeStream(of: Void.self)
        let holding = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await permits.withPermit {
                holding.continuation.yield()
                for await _ in release.stream { break }
            }
        }
        for await _ in holding.stream { break }
        let cancelled = Task { try await permits.withPermit { "ran" } }
        let next = Task { try await permits.withPermit { "next" } }
        cancelled.cancel()
        // The cancelled waiter returns without a permit while the holder still has it.
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        release.continuation.yield()
        try await holder.value
        #expect(try await next.value == "next")
        // The permit went back: a new caller gets it at once.
        #expect(try await permits.withPermit { 1 } == 1)
    }

    @Test(
        "a turn's signal: fired before the turn runs it never starts, fired while it runs cancels it, fired after it ended changes nothing, and cancelling the caller cancels the turn"
    )
    func cancellationSignal() async throws {
        let started = NIOLockedValueBox(false)
        let early = CancellationSignal()
        early.fire()
        #expect(await early.run { started.withLockedValue { $0 = true } } == nil)
        #expect(!started.withLockedValue { $0 })

        let during = CancellationSignal()
        let running = AsyncStream<Void>.makeStream()
        async let outcome = during.run {
            running.continuation.yield()
            try await Task.sleep(for: .seconds(30))
        }
        var iterator = running.stream.makeAsyncIterator()
        await iterator.next()
        during.fire()
        #expect(await outcome == nil)

        let late = CancellationSignal()
        let finished = await late.run {}
        late.fire()
        #expect((try? finished?.get()) != nil)

        let failing = CancellationSignal()
        struct Refused: Error {}
        let failed = await failing.run { throw Refused() }
        guard case .failure(let error)? = failed else {
            Issue.record("expected the body's error, got \(String(describing: failed))")
            return
        }
        #expect(error is Refused)

        let caller = CancellationSignal()
        let bodyCancelled = NIOLockedValueBox(false)
        let callerRunning = AsyncStream<Void>.makeStream()
        let task = Task {
            await caller.run {
                callerRunning.continuation.yield()
                do { try await Task.sleep(for: .seconds(30)) } catch {
                    bodyCancelled.withLockedValue { $0 = true }
                    throw error
                }
            }
        }
        var callerIterator = callerRunning.stream.makeAsyncIterator()
        await callerIterator.next()
        task.cancel()
        let result = await task.value
        #expect(bodyCancelled.withLockedValue { $0 })
        guard case .failure(let cancelled)? = result else {
            Issue.record("expected the cancellation, got \(String(describing: result))")
            return
        }
        #expect(cancelled is CancellationError)
    }
}
