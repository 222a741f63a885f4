import EventBus
import NIOConcurrencyHelpers
import Testing

/// A consumer loop at its limit waits on its entries in flight for room: woken by the entry that
/// makes it, by its bound, or by cancellation; never by entries that leave too little room.
@Suite("InFlightEntries: waiting for room", .timeLimit(.minutes(1)))
struct InFlightEntriesTests {
    static func entry(_ id: Int, stream: String = "s") -> BusEntry {
        BusEntry(stream: stream, id: "\(id)-0", event: nil, raw: [])
    }

    static func filled(_ count: Int) -> InFlightEntries {
        let entries = InFlightEntries()
        for id in 0..<count { _ = entries.begin(entry(id, stream: id % 2 == 0 ? "a" : "b")) }
        return entries
    }

    /// How long `body` took.
    static func timed(_ body: () async -> Void) async -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        await body()
        return clock.now - started
    }

    @Test("counts entries across streams; a second begin of the same entry and an end of an unknown one change nothing")
    func counting() {
        let entries = Self.filled(4)
        #expect(entries.count == 4)
        #expect(!entries.begin(Self.entry(0, stream: "a")))
        entries.end(Self.entry(99, stream: "a"))
        #expect(entries.count == 4)
        #expect(entries.count(in: ["a"]) == 2)
        entries.end(Self.entry(0, stream: "a"))
        #expect(entries.count == 3)
        #expect(entries.snapshot["a"] == ["2-0"])
    }

    @Test("returns at once when there is already room")
    func roomAlready() async {
        let entries = Self.filled(3)
        #expect(await Self.timed { await entries.wait(untilAtMost: 3, bound: .seconds(60)) } < .seconds(20))
    }

    @Test("wakes when the entry that makes the room ends, not before")
    func wokenByRoom() async throws {
        let entries = Self.filled(8)
        let returned = NIOLockedValueBox(false)
        let woken = Task {
            await entries.wait(untilAtMost: 6, bound: .seconds(60))
            returned.withLockedValue { $0 = true }
            return entries.count
        }
        // Until the waiter is registered, so that the first end below meets it.
        try await Task.sleep(for: .milliseconds(100))
        entries.end(Self.entry(0, stream: "a"))
        try await Task.sleep(for: .milliseconds(200))
        #expect(entries.count == 7)
        #expect(!returned.withLockedValue { $0 }, "7 in flight is not room for a waiter on 6")
        entries.end(Self.entry(1, stream: "b"))
        let wokenAfter = await Self.timed { #expect(await woken.value <= 6) }
        #expect(wokenAfter < .seconds(20), "woken by the end, long before the 60 s bound")
    }

    @Test("returns after its bound when no room comes, and at once when cancelled")
    func boundAndCancellation() async {
        let entries = Self.filled(2)
        let bounded = await Self.timed { await entries.wait(untilAtMost: 0, bound: .milliseconds(150)) }
        #expect(bounded >= .milliseconds(140))
        #expect(bounded < .seconds(20))
        let cancelled = await Self.timed {
            let waiting = Task { await entries.wait(untilAtMost: 0, bound: .seconds(60)) }
            waiting.cancel()
            await waiting.value
        }
        #expect(cancelled < .seconds(20))
        #expect(entries.count == 2)
    }
}
