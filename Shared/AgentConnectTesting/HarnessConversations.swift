import AgentConnectCore
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Store
import Testing

/// A live call through the sim's phone: say something, read the reply as it streams, interrupt,
/// press keys, hang up.
public final class HarnessCall: Sendable {
    /// The call's CallSid.
    public let callSid: String
    let harness: AgentHarness
    let events: SimEvents
    private let cursor = NIOLockedValueBox(0)

    init(harness: AgentHarness, callSid: String, events: SimEvents) {
        self.harness = harness
        self.callSid = callSid
        self.events = events
    }

    /// The caller says `text` (a `prompt` frame); the next ``reply()`` reads the answer to it.
    public func say(_ text: String) async throws {
        cursor.withLockedValue { $0 = events.count }
        _ = try await harness.post("/sim/phone/calls/\(callSid)/say", ["text": .string(text)])
    }

    /// The agent's next spoken reply, whole (its tokens joined), once its `last: true` arrives.
    public func reply() async throws -> String {
        try await replyTokens().joined()
    }

    /// The agent's next spoken reply, token by token as it reached the caller: tokens the relay read
    /// together (a reply handed over faster than the relay reads) arrive joined in one message.
    public func replyTokens() async throws -> [String] {
        var tokens: [String] = []
        let start = cursor.withLockedValue { $0 }
        let end = try await events.waitFor(from: start, timeout: harness.options.replyTimeout, "a reply on call \(callSid)") { event in
            guard let frame = self.frame(event), frame["type"]?.string == "text" else { return false }
            if let token = frame["token"]?.string, !token.isEmpty { tokens.append(token) }
            return frame["last"]?.bool == true
        }
        cursor.withLockedValue { $0 = end + 1 }
        return tokens
    }

    /// Interrupts the reply being spoken after `afterTokens` words (as ConversationRelay does when
    /// the caller talks over it); returns what the caller heard.
    @discardableResult
    public func interrupt(afterTokens: Int = 1) async throws -> String {
        var heard: [String] = []
        var ended = false
        let start = cursor.withLockedValue { $0 }
        let end = try await events.waitFor(from: start, timeout: harness.options.replyTimeout, "\(afterTokens) tokens on call \(callSid)") { event in
            guard let frame = self.frame(event), frame["type"]?.string == "text" else { return false }
            if let token = frame["token"]?.string, !token.isEmpty { heard.append(token) }
            ended = frame["last"]?.bool == true
            return ended || heard.joined().split(whereSeparator: \.isWhitespace).count >= afterTokens
        }
        let text = heard.joined()
        if ended {
            // The reply ended before the caller spoke over it: there is nothing to interrupt.
            cursor.withLockedValue { $0 = end + 1 }
            return text
        }
        _ = try await harness.post("/sim/phone/calls/\(callSid)/interrupt", ["heard": .string(text), "durationMs": .string("\(heard.count * 200)")])
        // The relay acknowledges with an empty `last: true`; the next reply starts after it.
        let acknowledged = try? await events.waitFor(from: end + 1, timeout: .seconds(10), "the interrupt's acknowledgement") { event in
            guard let frame = self.frame(event), frame["type"]?.string == "text" else { return false }
            return frame["last"]?.bool == true && (frame["token"]?.string ?? "").isEmpty
        }
        cursor.withLockedValue { $0 = acknowledged.map { $0 + 1 } ?? events.count }
        return text
    }

    /// The caller presses a key (`dtmf`).
    public func press(_ digit: String) async throws {
        cursor.withLockedValue { $0 = events.count }
        _ = try await harness.post("/sim/phone/calls/\(callSid)/dtmf", ["digit": .string(digit)])
    }

    /// The caller hangs up.
    public func hangUp() async throws {
        _ = try await harness.post("/sim/phone/calls/\(callSid)/hangup", [:])
        events.close()
    }

    /// Waits for the agent to end the call (an `end` frame); returns its `handoffData` (parsed), or
    /// `null` when it ended without one.
    public func waitForEnd() async throws -> JSONValue {
        var data: JSONValue = .null
        _ = try await events.waitFor(from: cursor.withLockedValue { $0 }, timeout: harness.options.replyTimeout, "the end of call \(callSid)") {
            event in
            guard let frame = self.frame(event), frame["type"]?.string == "end" else { return false }
            if let text = frame["handoffData"]?.string { data = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .string(text) }
            return true
        }
        return data
    }

    /// The tool calls the agent made during this call, oldest first.
    public func toolCalls() async throws -> [ToolCallRecord] {
        let sid = callSid
        return try await harness.withStore { store in
            var ids: [String] = []
            let rows = try await store.client.query(
                "SELECT id FROM conversations WHERE metadata->>'call_sid' = \(sid)", logger: .init(label: "harness"))
            for try await id in rows.decode(String.self) { ids.append(id) }
            var calls: [ToolCallRecord] = []
            for id in ids { calls += try await store.toolCalls(conversationId: id, limit: 1000) }
            return calls
        }
    }

    // MARK: expectations

    /// Reads the next reply and records an issue (with the reply) unless it contains `text`.
    @discardableResult
    public func expectReply(contains text: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let reply = try await reply()
        if !reply.localizedCaseInsensitiveContains(text) {
            Issue.record("expected the reply to contain \"\(text)\", but the agent said: \"\(reply)\"", sourceLocation: sourceLocation)
        }
        return reply
    }

    /// Records an issue unless the agent called exactly these tools (by name, in order) on this call.
    public func expectToolCalls(_ names: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let deadline = ContinuousClock.now + harness.options.replyTimeout
        var called: [String] = []
        // Tool calls and the conversation row are written as the turn runs and just after it.
        while ContinuousClock.now < deadline {
            called = try await toolCalls().map(\.name)
            if called == names { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("expected the tool calls \(names), but the agent called \(called)", sourceLocation: sourceLocation)
    }

    private func frame(_ event: JSONValue) -> JSONValue? {
        guard event["kind"]?.string == "call.frame", event["callSid"]?.string == callSid else { return nil }
        return event["frame"]
    }
}

/// A messaging conversation driven through the sim, on any channel.
public final class HarnessConversation: Sendable {
    /// The customer's address.
    public let customer: String
    /// `sms`, `whatsapp`, `rcs` or `chat`.
    public let channel: String
    let harness: AgentHarness
    private let state = NIOLockedValueBox<(conversationId: String?, seen: Int)>((nil, 0))

    init(harness: AgentHarness, customer: String, channel: String) {
        self.harness = harness
        self.customer = customer
        self.channel = channel
    }

    /// The conversation's id, once the first message created it.
    public var conversationId: String? { state.withLockedValue(\.conversationId) }

    /// The customer sends `text`.
    public func send(_ text: String) async throws {
        let answer = try await harness.post("/sim/messages", ["channel": .string(channel), "from": .string(customer), "text": .string(text)])
        if let id = answer["conversationId"]?.string { state.withLockedValue { $0.conversationId = id } }
    }

    /// The agent's next reply (in order; each is returned once).
    public func reply() async throws -> String {
        let (id, seen) = state.withLockedValue { ($0.conversationId, $0.seen) }
        guard let id else { throw HarnessError("send a message before waiting for a reply") }
        let query = "conversationId=\(AgentHarness.escape(id))&count=\(seen + 1)&waitMs=\(harness.options.replyTimeout.milliseconds)"
        let messages = (try await harness.get("/sim/messages?\(query)")["messages"]?.array ?? []).compactMap { $0["text"]?.string }
        guard messages.count > seen else {
            throw HarnessError("no reply within \(harness.options.replyTimeout) (replies so far: \(messages))")
        }
        state.withLockedValue { $0.seen = seen + 1 }
        return messages[seen]
    }

    /// Reads the next reply and records an issue (with the reply) unless it contains `text`.
    @discardableResult
    public func expectReply(contains text: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let reply = try await reply()
        if !reply.localizedCaseInsensitiveContains(text) {
            Issue.record("expected the reply to contain \"\(text)\", but the agent wrote: \"\(reply)\"", sourceLocation: sourceLocation)
        }
        return reply
    }

    /// The tool calls the agent made in this conversation, oldest first.
    public func toolCalls() async throws -> [ToolCallRecord] {
        guard let id = conversationId else { return [] }
        return try await harness.toolCalls(conversationId: id)
    }

    /// Closes the conversation (as the orchestrator does when it ends).
    public func close() async throws {
        guard let id = conversationId else { return }
        _ = try await harness.post("/sim/conversations/\(id)/close", [:])
    }
}

/// The sim's event stream (`/sim/events`), kept in order.
final class SimEvents: Sendable {
    private let events = NIOLockedValueBox<[JSONValue]>([])
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    static func open(simURL: String) async throws -> SimEvents {
        let stream = SimEvents()
        let connected = NIOLockedValueBox(false)
        let task = Task {
            do {
                var request = HTTPClientRequest(url: simURL + "/sim/events")
                request.headers.add(name: "Accept", value: "text/event-stream")
                let response = try await HTTPClient.shared.execute(request, timeout: .hours(4))
                connected.withLockedValue { $0 = true }
                var line: [UInt8] = []
                for try await chunk in response.body {
                    for byte in chunk.readableBytesView {
                        guard byte == UInt8(ascii: "\n") else {
                            line.append(byte)
                            continue
                        }
                        let text = String(decoding: line, as: UTF8.self)
                        line.removeAll(keepingCapacity: true)
                        if text.hasPrefix("data: "), let event = try? JSONDecoder().decode(JSONValue.self, from: Data(text.dropFirst(6).utf8)) {
                            stream.events.withLockedValue { $0.append(event) }
                        }
                    }
                }
            } catch {}
        }
        stream.task.withLockedValue { $0 = task }
        let deadline = ContinuousClock.now + .seconds(10)
        while !connected.withLockedValue({ $0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return stream
    }

    var count: Int { events.withLockedValue(\.count) }

    /// Feeds events from `start` on to `matches` until it says done; returns the index of that event.
    func waitFor(from start: Int, timeout: Duration, _ what: String, _ matches: (JSONValue) -> Bool) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        var index = start
        while true {
            let batch = events.withLockedValue { Array($0.dropFirst(index)) }
            for event in batch {
                if matches(event) { return index }
                index += 1
            }
            guard ContinuousClock.now < deadline else { throw HarnessError("waited \(timeout) for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func close() {
        task.withLockedValue { $0?.cancel() }
    }
}
