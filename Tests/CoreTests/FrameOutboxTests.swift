import AgentConnectCore
import NIOConcurrencyHelpers
import Testing

@testable import AgentConnectRuntime

/// A voice reply's frames go out one publish at a time: the first at once, those that come while a
/// publish is on the way together next, each with its place in the turn.
@Suite("Frame outbox: a reply's frames batched while a publish is on the way")
struct FrameOutboxTests {
    /// Publishes recorded as (first sequence, tokens); each publish waits until the test lets it go.
    final class HeldPublisher: Sendable {
        let published = NIOLockedValueBox<[(Int, [String])]>([])
        let starts: AsyncStream<Int>
        let startContinuation: AsyncStream<Int>.Continuation
        let releases: AsyncStream<Void>
        let releaseContinuation: AsyncStream<Void>.Continuation

        init() {
            (starts, startContinuation) = AsyncStream.makeStream(of: Int.self)
            (releases, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
        }

        func publish(_ frames: ArraySlice<JSONValue>, _ sequence: Int) async throws {
            startContinuation.yield(sequence)
            var iterator = releases.makeAsyncIterator()
            _ = await iterator.next()
            published.withLockedValue { $0.append((sequence, frames.map { $0["token"]?.string ?? "" })) }
        }
    }

    private static func token(_ text: String) -> JSONValue { ["type": "text", "token": .string(text), "last": false] }

    @Test("the first frame goes alone and at once; frames added meanwhile follow as one batch, numbered on")
    func batchesWhilePublishing() async throws {
        let outbox = FrameOutbox()
        let publisher = HeldPublisher()
        #expect(try outbox.add(Self.token("a")))
        let drain = Task { try await outbox.drain(publisher.publish) }
        var starts = publisher.starts.makeAsyncIterator()
        #expect(await starts.next() == 1)
        // While "a" is on the way, three more come: none starts a publisher of its own.
        for text in ["b", "c", "d"] { #expect(try outbox.add(Self.token(text)) == false) }
        publisher.releaseContinuation.yield()
        #expect(await starts.next() == 2)
        publisher.releaseContinuation.yield()
        try await drain.value
        #expect(publisher.published.withLockedValue { $0.map(\.0) } == [1, 2])
        #expect(publisher.published.withLockedValue { $0.map(\.1) } == [["a"], ["b", "c", "d"]])
        // Drained: the next frame starts a publisher again, numbered after the last.
        #expect(try outbox.add(Self.token("e")))
        let again = Task { try await outbox.drain(publisher.publish) }
        #expect(await starts.next() == 5)
        publisher.releaseContinuation.yield()
        try await again.value
    }

    @Test("at most 64 frames to an event")
    func eventSize() async throws {
        let outbox = FrameOutbox()
        for index in 0..<150 { _ = try outbox.add(Self.token("\(index)")) }
        let batches = NIOLockedValueBox<[(Int, Int)]>([])
        try await outbox.drain { frames, sequence in batches.withLockedValue { $0.append((sequence, frames.count)) } }
        #expect(batches.withLockedValue { $0.map(\.0) } == [1, 65, 129])
        #expect(batches.withLockedValue { $0.map(\.1) } == [64, 64, 22])
    }

    @Test("for a relay that reads one frame per event, each frame is an event of its own")
    func oneFramePerEvent() async throws {
        let outbox = FrameOutbox(framesPerEvent: 1)
        for index in 0..<3 { _ = try outbox.add(Self.token("\(index)")) }
        let batches = NIOLockedValueBox<[(Int, Int)]>([])
        try await outbox.drain { frames, sequence in batches.withLockedValue { $0.append((sequence, frames.count)) } }
        #expect(batches.withLockedValue { $0.map(\.0) } == [1, 2, 3])
        #expect(batches.withLockedValue { $0.map(\.1) } == [1, 1, 1])
    }

    @Test("a failed publish fails the reply: the next frame is refused with its error")
    func failure() async throws {
        struct Down: Error, Equatable {}
        let outbox = FrameOutbox()
        #expect(try outbox.add(Self.token("a")))
        await #expect(throws: Down.self) { try await outbox.drain { _, _ in throw Down() } }
        #expect(throws: Down.self) { try outbox.add(Self.token("b")) }
    }
}
