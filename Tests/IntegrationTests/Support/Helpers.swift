import AgentConnectCore
import EventBus
import Foundation
import NIOConcurrencyHelpers

/// Runs `body` with a started stack and always stops it.
func withStack<T>(_ options: TestStack.Options = .init(), _ body: (TestStack) async throws -> T) async throws -> T {
    let stack = try await TestStack.start(options)
    do {
        let result = try await body(stack)
        await stack.stop()
        return result
    } catch {
        let logs = stack.logs
        await stack.stop()
        throw TestFailure("\(error)\n\(logs)")
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

extension TestStack {
    /// Entries on every inbound partition.
    func inboundLength() async throws -> Int {
        let client = redis.client()
        defer { client.shutdown() }
        let replies = try await client.send((0..<16).map { ["XLEN", .string(Streams.inboundPartition($0))] })
        return replies.compactMap(\.integer).map(Int.init).reduce(0, +)
    }

    /// Entries on a stream.
    func length(of stream: String) async throws -> Int {
        let client = redis.client()
        defer { client.shutdown() }
        return Int(try await client.command("XLEN", .string(stream)).integer ?? 0)
    }

    /// Waits until nothing is in flight on `streams` (by default the inbound partitions and the
    /// outbound stream): every consumer group has read each entry (its `last-delivered-id` is the
    /// stream's `last-generated-id`) and acknowledged it (`pending` 0), and a stream holding entries has
    /// a group. Consumers acknowledge an entry only after handling it, so whatever the entries led to
    /// (turns, replies published, messages sent to Twilio) has happened by then: the condition a check
    /// that nothing more happened waits for. False when `timeout` passes first.
    func settled(
        streams: [String] = (0..<16).map(Streams.inboundPartition) + [Streams.outbound], timeout: Duration = .seconds(30)
    ) async -> Bool {
        let client = redis.client()
        defer { client.shutdown() }
        let commands: [[RedisArgument]] = streams.flatMap { stream -> [[RedisArgument]] in
            [["XINFO", "STREAM", .string(stream)], ["XINFO", "GROUPS", .string(stream)]]
        }
        return await eventually(timeout: timeout) {
            guard let replies = try? await client.send(commands), replies.count == commands.count else { return false }
            return stride(from: 0, to: replies.count, by: 2).allSatisfy { Self.drained(stream: replies[$0], groups: replies[$0 + 1]) }
        }
    }

    /// Whether one stream's `XINFO STREAM` and `XINFO GROUPS` replies show nothing unread or unacknowledged.
    static func drained(stream: RedisValue, groups: RedisValue) -> Bool {
        // No such key: nothing was ever published to the stream.
        if stream.isError { return true }
        let info = fields(stream)
        guard let last = info["last-generated-id"]?.string else { return false }
        let rows = (groups.array ?? []).map(fields)
        if rows.isEmpty { return info["length"]?.integer == 0 }
        return rows.allSatisfy { $0["pending"]?.integer == 0 && $0["last-delivered-id"]?.string == last }
    }

    /// A RESP2 `XINFO` reply's name/value pairs.
    static func fields(_ reply: RedisValue) -> [String: RedisValue] {
        let items = reply.array ?? []
        var fields: [String: RedisValue] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let name = items[index].string { fields[name] = items[index + 1] }
        }
        return fields
    }

    /// A metric's value summed over its series, from a service's `/metrics`.
    func metric(_ name: String, port: Int, matching filter: String = "") async throws -> Double {
        let text = try await TestStack.request(.GET, "http://127.0.0.1:\(port)/metrics").body
        return text.split(separator: "\n").filter { $0.hasPrefix(name) && !$0.hasPrefix("#") && (filter.isEmpty || $0.contains(filter)) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}

/// ``withStack(_:_:)`` for fault tests, one at a time across every suite: they restart and kill the
/// shared Redis and PostgreSQL, so two at once would measure each other's faults.
func withFaultStack<T>(_ options: TestStack.Options = .init(), _ body: (TestStack) async throws -> T) async throws -> T {
    await faultGate.enter()
    do {
        let result = try await withStack(options, body)
        await faultGate.leave()
        return result
    } catch {
        await faultGate.leave()
        throw error
    }
}

private let faultGate = AsyncGate()

/// A one-at-a-time gate for async tasks, first come first served.
actor AsyncGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func enter() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func leave() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
