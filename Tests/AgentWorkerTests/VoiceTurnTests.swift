import AgentConnect
import AgentConnectCore
import AgentConnectRuntime
import EventBus
import Foundation
import Store
import Testing

@Suite("Agent worker in-process: voice turns")
struct VoiceTurnTests {
    @Test("a prompt's streamed reply goes to the relay holding the call as frames of one turn, in order, ending last:true")
    func promptStreamsFrames() async throws {
        let worker = try WorkerHarness()
        let voice = VoiceChannel(worker.tac)
        worker.tac.onMessageReady { text, session, _ in
            #expect(session.callSid == "CAconv-v1")
            try await voice.sendResponse(conversationId: session.conversationId, tokens: ["You ", "said: ", text])
            return nil
        }
        try await worker.deliver(try WorkerHarness.prompt("hello", conversationId: "conv-v1", relay: "relay-b"))

        let frames = try worker.frames(relay: "relay-b")
        #expect(frames.map(\.seq) == [1, 2, 3, 4])
        #expect(Set(frames.map(\.turnId)).count == 1)
        #expect(frames.map { $0.frame["token"]?.string ?? "" } == ["You ", "said: ", "hello", ""])
        #expect(frames.map { $0.frame["last"] } == [false, false, false, true])
        #expect(try worker.frames(relay: "relay-a").isEmpty)
        #expect(worker.replies.isEmpty)
        let history = try await worker.store.history(conversationId: "conv-v1", limit: 10)
        #expect(history.map(\.body) == ["hello", "You said: hello"])
        #expect(worker.store.historyWrites == [["hello", "You said: hello"]], "the prompt and its reply in one write at the turn's end")
    }

    @Test("a turn batches its frames only for a relay that said it reads several from one event; an older relay gets one per event")
    func framesInRowFromThePrompt() async throws {
        let worker = try WorkerHarness()
        let voice = VoiceChannel(worker.tac)
        let seen = Recorder<Bool>()
        let words = (1...40).map { "w\($0) " }
        worker.tac.onMessageReady { _, session, _ in
            seen.append(TurnContext.current?.framesInRow ?? false)
            try await voice.sendResponse(conversationId: session.conversationId, tokens: words)
            return nil
        }
        try await worker.deliver(try WorkerHarness.prompt("new relay", conversationId: "conv-v9", relay: "relay-new"))
        try await worker.deliver(try WorkerHarness.prompt("old relay", conversationId: "conv-v10", relay: "relay-old", framesInRow: nil))
        #expect(seen.all == [true, false])
        // What an older relay reads: one frame per event (it would drop any in `more`), all of them, in order.
        let old = try worker.bus.events(on: Streams.voice(instance: "relay-old")).map { try $0.decode(VoiceFrame.self) }
        #expect(old.allSatisfy { $0.more == nil })
        #expect(old.map(\.seq) == Array(1...41))
        // A relay that reads `more` gets the same frames, however they were batched.
        let new = try worker.frames(relay: "relay-new")
        #expect(new.map(\.seq) == Array(1...41))
        #expect(new.compactMap { $0.frame["token"]?.string } == words + [""])
    }

    @Test("a token a streamed reply hands over goes out before the stream's next one comes; the rest follow, in order")
    func firstTokenNotHeldBack() async throws {
        let worker = try WorkerHarness()
        let voice = VoiceChannel(worker.tac)
        let relay = "relay-p"
        worker.tac.onMessageReady { _, session, _ in
            let (tokens, more) = AsyncStream.makeStream(of: String.self)
            more.yield("first ")
            // The model's next token comes only once the first is on the relay's stream (or after 5 s,
            // when the first was held back and this test fails on what it finds).
            Task {
                let deadline = ContinuousClock.now + .seconds(5)
                while ((try? worker.frames(relay: relay)) ?? []).isEmpty, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(5))
                }
                more.yield("second")
                more.finish()
            }
            try await voice.sendResponse(conversationId: session.conversationId, response: tokens)
            return nil
        }
        try await worker.deliver(try WorkerHarness.prompt("hi", conversationId: "conv-v11", relay: relay))
        let events = try worker.bus.events(on: Streams.voice(instance: relay)).map { try $0.decode(VoiceFrame.self) }
        #expect(events.first?.frame["token"]?.string == "first " && events.first?.more == nil, "\(events)")
        #expect(try worker.frames(relay: relay).map { $0.frame["token"]?.string ?? "" } == ["first ", "second", ""])
    }

    @Test("outside a turn, a reply goes to the relay the call registry names; no live call throws")
    func replyOutsideATurn() async throws {
        let worker = try WorkerHarness()
        let voice = VoiceChannel(worker.tac)
        await #expect(throws: TACError.self) { try await voice.sendResponse(conversationId: "conv-v2", response: "hello?") }
        worker.calls.register("conv-v2", relayInstance: "relay-c")
        try await voice.sendResponse(conversationId: "conv-v2", response: "hello?")

        let frames = try worker.frames(relay: "relay-c")
        #expect(frames.map { $0.frame["token"]?.string } == ["hello?"])
        #expect(frames.first?.frame["last"] == true)
    }

    @Test("an interrupt calls onInterrupt with what the caller heard and replaces the recorded reply with it")
    func interruptReplacesHistory() async throws {
        let worker = try WorkerHarness()
        let interrupts = Recorder<InterruptMessage>()
        worker.tac.onMessageReady { _, _, _ in "one two three four" }
        worker.tac.onInterrupt { session, interrupt in
            #expect(session.conversationId == "conv-v3")
            interrupts.append(interrupt)
        }
        try await worker.deliver(try WorkerHarness.prompt("count", conversationId: "conv-v3"))
        let interrupted = VoiceInterrupted(
            utteranceUntilInterrupt: "one two", durationUntilInterruptMs: 800, callSid: "CAconv-v3", relayInstance: "relay-a")
        try await worker.deliver(try BusEvent(interrupted, conversationId: "conv-v3", channel: .voice))

        #expect(interrupts.all == [InterruptMessage(utteranceUntilInterrupt: "one two", durationUntilInterruptMs: 800)])
        let history = try await worker.store.history(conversationId: "conv-v3", limit: 10)
        #expect(history.map(\.body) == ["count", "one two"])
        #expect(history.map(\.direction) == [.inbound, .outbound])
    }

    @Test("an interrupt cancels the turn streaming a reply: no frame of that turn after it, and the next prompt is answered")
    func interruptCancelsTheRunningTurn() async throws {
        let worker = try WorkerHarness()
        let voice = VoiceChannel(worker.tac)
        let cancelled = Recorder<String>()
        let interrupts = Recorder<String>()
        worker.tac.onMessageReady { text, session, _ in
            guard text == "long" else { return "short answer" }
            let (tokens, more) = AsyncThrowingStream<String, any Error>.makeStream()
            more.yield("once upon")
            // Never finishes on its own: only the interrupt ends it.
            try? await voice.sendResponse(conversationId: session.conversationId, response: tokens)
            if Task.isCancelled { cancelled.append(text) }
            return nil
        }
        worker.tac.onInterrupt { _, interrupt in interrupts.append(interrupt.utteranceUntilInterrupt) }
        try await worker.running {
            try await worker.publishInbound(try WorkerHarness.prompt("long", conversationId: "conv-v4"))
            #expect(await eventually { (try? worker.frames(relay: "relay-a").count) == 1 })
            let interrupted = VoiceInterrupted(
                utteranceUntilInterrupt: "once", durationUntilInterruptMs: 300, callSid: "CAconv-v4", relayInstance: "relay-a")
            try await worker.publishInbound(try BusEvent(interrupted, conversationId: "conv-v4", channel: .voice))
            try await worker.publishInbound(try WorkerHarness.prompt("again", conversationId: "conv-v4"))
            #expect(await eventually { (try? worker.frames(relay: "relay-a").last?.frame["token"]) == "short answer" })
        }
        #expect(cancelled.all == ["long"])
        #expect(interrupts.all == ["once"])
        // The cut turn's tokens stop at the interrupt (the relay drops its frames by turn id).
        let frames = try worker.frames(relay: "relay-a")
        let cut = try #require(frames.first?.turnId)
        #expect(frames.filter { $0.turnId == cut }.compactMap { $0.frame["token"]?.string }.filter { !$0.isEmpty } == ["once upon"])
        #expect(frames.filter { $0.turnId != cut }.map { $0.frame["token"]?.string } == ["short answer"])
        let history = try await worker.store.history(conversationId: "conv-v4", limit: 10)
        #expect(history.filter { $0.direction == .outbound }.map(\.body) == ["once", "short answer"])
    }

    @Test("the TwiML hook answers voice-relay's requests with the author's options; a throwing hook reaches onError and answers nothing")
    func twimlHook() async throws {
        struct HookFailed: Error {}
        let worker = try WorkerHarness()
        let errors = Recorder<String>()
        let voice = VoiceChannel(worker.tac)
        voice.onInboundCallTwiML { request in
            guard request.fields["From"] != "+15550000000" else { throw HookFailed() }
            var options = VoiceTwiMLOptions()
            options.welcomeGreeting = "Hello \(request.fields["From"] ?? "")"
            return options
        }
        worker.tac.onError { error, context in
            if error is HookFailed { errors.append(context["source"] ?? "") }
        }
        try await worker.running {
            #expect(await eventually { worker.twimlHookRequests.isServed })
            let options = try await worker.twimlHookRequests.ask(["CallSid": "CA1", "From": "+15551234567"])
            #expect(options?.welcomeGreeting == "Hello +15551234567")
            await #expect(throws: HookFailed.self) { try await worker.twimlHookRequests.ask(["CallSid": "CA2", "From": "+15550000000"]) }
        }
        #expect(errors.all == ["twiml-hook"])
        #expect(!worker.twimlHookRequests.isServed)
    }
}
