import AgentConnectCore
import EventBus
import Foundation
import NIOConcurrencyHelpers
import RelayCaller
import Testing

@Suite("Voice end to end through voice-relay, Redis and agent-workers")
struct VoiceAcceptanceTests {
    /// Relay-only mode (conversation id = CallSid), as with a plain Twilio number.
    static func relayOnly(relays: Int = 1, workers: Int = 1, extra: [String: String] = [:]) -> TestStack.Options {
        var options = TestStack.Options()
        options.relays = relays
        options.workers = workers
        options.ingress = false
        options.outbound = false
        options.extra = ["TWILIO_CONVERSATION_CONFIGURATION_ID": ""].merging(extra) { _, new in new }
        return options
    }

    func caller(_ stack: TestStack, relay: Int = 0, replyTimeout: Duration = .seconds(15)) -> RelayCaller {
        var caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[relay])", authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
        caller.replyTimeout = replyTimeout
        return caller
    }

    func call(
        _ stack: TestStack, relay: Int = 0, sid: String = "CA\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))",
        script: [RelayCaller.Step],
        replyTimeout: Duration = .seconds(15)
    ) async throws -> RelayCaller.Transcript {
        let caller = caller(stack, relay: relay, replyTimeout: replyTimeout)
        let (url, _) = try await caller.fetchTwiML(callSid: sid, from: "+15556660000", to: "+15550000001")
        return try await caller.call(publicURL: url, callSid: sid, from: "+15556660000", to: "+15550000001", script: script)
    }

    @Test(
        "the TwiML points ConversationRelay at our socket and escapes configured attributes; each prompt streams several last:false tokens, then last:true, joined 'You said: <prompt>'; unknown frames are tolerated; DTMF reaches the agent as voice.dtmf"
    )
    func streamedReplies() async throws {
        try await withStack(
            Self.relayOnly(extra: ["CONVERSATION_RELAY_WELCOME_GREETING": #"Hi "there" & <welcome>"#, "CONVERSATION_RELAY_DTMF_DETECTION": "true"])
        ) { stack in
            let caller = caller(stack)
            let sid = "CAstreamed\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
            let (url, twiml) = try await caller.fetchTwiML(callSid: sid, from: "+15556660000", to: "+15550000001")
            let prefix = "wss://127.0.0.1:\(stack.relayPorts[0])/ws?token="
            #expect(url.hasPrefix(prefix) && url.count == prefix.count + 64, "\(url)")
            #expect(twiml.contains(#"welcomeGreeting="Hi &quot;there&quot; &amp; &lt;welcome&gt;""#))
            #expect(twiml.contains(#"dtmfDetection="true""#))
            #expect(twiml.contains(#"<Connect action="https://127.0.0.1:\#(stack.relayPorts[0])/conversation-relay-callback">"#))
            #expect(!twiml.contains("conversationConfiguration"))
            let unknown = (0..<10).map { _ in RelayCaller.Step.raw(["type": "mystery", "x": 1]) } + [.raw(["type": "info"])]
            let transcript = try await caller.call(
                publicURL: url, callSid: sid, from: "+15556660000", to: "+15550000001",
                script: unknown + [.dtmf("7"), .say("hello there"), .say("what time is it")])
            #expect(transcript.turns.map(\.text) == ["You said: hello there", "You said: what time is it"])
            #expect(transcript.turns.map(\.words.count) == [4, 6])
            #expect(transcript.turns.allSatisfy { $0.completed != nil })
            var dtmf: BusEvent?
            _ = await eventually {
                dtmf = try? await VoiceControlTests.inboundEvents(stack).first { $0.type == EventType.voiceDTMF && $0.conversationId == sid }
                return dtmf != nil
            }
            #expect(dtmf?.payload["digit"]?.string == "7")
        }
    }

    @Test("an interrupt mid-reply is acknowledged, no further token of that turn arrives, and the next prompt is answered")
    func interrupt() async throws {
        try await withStack(Self.relayOnly(extra: ["ECHO_TOKEN_DELAY_MS": "200"])) { stack in
            let transcript = try await call(
                stack,
                script: [
                    .sayAndInterrupt("please tell me a very long story about the sea and the ships", afterTokens: 2, settle: .milliseconds(800)),
                    .say("short one"),
                ])
            let interrupted = try #require(transcript.turns.first)
            #expect(interrupted.acknowledged)
            #expect(interrupted.lateTokens.isEmpty)
            // The reply was cut: of its 15 words the caller got those before the interrupt and the few on their way.
            #expect((interrupted.tokens + interrupted.inFlightTokens).flatMap(RelayCaller.words).count < 13)
            #expect(transcript.turns.last?.text == "You said: short one")
        }
    }

    @Test("200 concurrent calls are all answered correctly")
    func concurrentCalls() async throws {
        try await withStack(Self.relayOnly()) { stack in
            // 200 calls at once on a machine running the whole suite: a reply may wait long behind
            // the others, so each call waits up to 45 s (a wrong text still fails at once).
            let results = try await withThrowingTaskGroup(of: (Int, Result<RelayCaller.Transcript, any Error>).self) { group in
                for index in 0..<200 {
                    group.addTask {
                        do {
                            return (
                                index,
                                .success(
                                    try await call(
                                        stack, sid: "CAconcurrent\(index)", script: [.say("caller number \(index)")], replyTimeout: .seconds(45)))
                            )
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                }
                return try await group.reduce(into: [Int: Result<RelayCaller.Transcript, any Error>]()) { $0[$1.0] = $1.1 }
            }
            let wrong = (0..<200).filter { index in
                guard case .success(let transcript)? = results[index] else { return true }
                return transcript.turns.first?.text != "You said: caller number \(index)"
            }
            // What a wrong call got: its transcript (turns, other frames, close) or the error it threw.
            let described = wrong.prefix(5).map { index -> String in
                switch results[index] {
                case .success(let transcript)?:
                    let turns = transcript.turns.map {
                        "\($0.prompt) -> \($0.text.debugDescription) words \($0.words.count) late \($0.lateTokens) repeated \($0.repeated)"
                    }
                    return
                        "call \(index): turns \(turns), other frames \(transcript.otherFrames), close \(transcript.closeCode.map(String.init) ?? "none") \(transcript.closeReason ?? ""), reconnects \(transcript.reconnects)"
                case .failure(let error)?: return "call \(index): threw \(error)"
                case nil: return "call \(index): no result"
                }
            }
            #expect(wrong.isEmpty, "wrong or missing replies for \(wrong.count) calls \(wrong.prefix(10)): \(described.joined(separator: "; "))")
        }
    }

    @Test(
        "two relays and two workers: tokens reach the relay holding the socket; a worker killed mid-turn is replaced and the reply arrives exactly once"
    )
    func replicas() async throws {
        try await withStack(Self.relayOnly(relays: 2, workers: 2, extra: ["ECHO_TOKEN_DELAY_MS": "150"])) { stack in
            let spread = try await withThrowingTaskGroup(of: String?.self) { group in
                for index in 0..<10 {
                    group.addTask { try await call(stack, relay: index % 2, script: [.say("spread \(index)")]).turns.first?.text }
                }
                return try await group.reduce(into: [String?]()) { $0.append($1) }
            }
            #expect(Set(spread.compactMap { $0 }) == Set((0..<10).map { "You said: spread \($0)" }))

            let sid = "CAkillworker01"
            let partition = Partitioner.partition(of: sid, partitions: 16)
            let killed = NIOLockedValueBox<String?>(nil)
            let transcript = try await call(
                stack, relay: 1, sid: sid,
                script: [
                    .sayWithAction("one two three four five six seven eight", afterTokens: 2) {
                        let client = stack.redis.client()
                        defer { client.shutdown() }
                        let owner = try? await client.command("GET", .string("tac:lease:agents:\(partition)")).string
                        if let process = stack.processes("agent-worker").first(where: { $0.instanceId == owner }) {
                            killed.withLockedValue { $0 = owner }
                            _ = await process.signal(SIGKILL, timeout: .seconds(5))
                        }
                    }
                ])
            #expect(killed.withLockedValue { $0 } != nil)
            #expect(transcript.turns.first?.text == "You said: one two three four five six seven eight")
            #expect(transcript.turns.first?.words.count == 10)
        }
    }
}
