import AgentConnectCore
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RelayCaller
import ServiceLifecycle
import ServiceSupport

/// What the dev phone page sees, live: customer and agent messages, calls' frames and timings.
final class SimEventHub: Sendable {
    private struct State {
        var subscribers: [UUID: AsyncStream<JSONValue>.Continuation] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let started = ContinuousClock.now

    /// Sends an event to every open page, stamped with `at` (milliseconds since the sim started).
    func publish(_ event: JSONValue) {
        guard case .object(var members) = event else { return }
        members["at"] = .number(Double((ContinuousClock.now - started).inMilliseconds))
        let stamped = JSONValue.object(members)
        for subscriber in state.withLockedValue({ Array($0.subscribers.values) }) { subscriber.yield(stamped) }
    }

    /// Ends every open page's stream (the sim is stopping: open event streams must not hold it).
    func finishAll() {
        for subscriber in state.withLockedValue({ Array($0.subscribers.values) }) { subscriber.finish() }
    }

    /// A keep-alive to every page (`null`, written as an SSE comment), so a page that went away is
    /// noticed and its subscription dropped.
    func heartbeat() {
        for subscriber in state.withLockedValue({ Array($0.subscribers.values) }) { subscriber.yield(.null) }
    }

    /// A stream of events from now on; it ends its subscription when dropped.
    func subscribe() -> AsyncStream<JSONValue> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<JSONValue>.makeStream(bufferingPolicy: .bufferingNewest(1000))
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
        }
        state.withLockedValue { $0.subscribers[id] = continuation }
        return stream
    }
}

/// Calls the page places: a live ConversationRelay socket per call, driven by the page's buttons.
final class PhoneCalls: Sendable {
    private struct Call {
        var commands: AsyncStream<JSONValue>.Continuation
        var promptAt: ContinuousClock.Instant?
        var firstTokenSeen = false
    }

    private let calls = NIOLockedValueBox<[String: Call]>([:])
    let state: SimState
    let configuration: SimConfiguration
    let voice: VoiceRoutes
    let logger: Logger

    init(state: SimState, configuration: SimConfiguration, voice: VoiceRoutes, logger: Logger) {
        self.state = state
        self.configuration = configuration
        self.voice = voice
        self.logger = logger
    }

    /// Rings voice-relay as `from`; the call runs in the background until hung up or closed.
    func start(from: String) async throws -> String {
        let to = configuration.senders.defaultSender(for: .voice) ?? "+15550000001"
        let sid = "CA" + state.nextId("").suffix(32)
        var caller = RelayCaller(
            relayURL: configuration.voiceURL, authToken: configuration.authToken, publicBaseURL: configuration.voicePublicBaseURL, logger: logger)
        let (url, twiml) = try await caller.fetchTwiML(callSid: sid, from: from, to: to)
        caller.applicationReconnect = RelayCaller.attribute("applicationReconnect", in: twiml)?.lowercased() == "true"
        voice.createCallConversation(twiml: twiml, sid: sid, customer: from, agent: to)
        let (commands, continuation) = AsyncStream<JSONValue>.makeStream()
        calls.withLockedValue { $0[sid] = Call(commands: continuation) }
        state.events.publish(["kind": "call.started", "callSid": .string(sid), "from": .string(from), "to": .string(to), "twiml": .string(twiml)])
        Task {
            var closeCode: Int?
            do {
                closeCode = try await caller.converse(
                    publicURL: url, callSid: sid, from: from, to: to, commands: commands,
                    onReconnect: { count in
                        self.state.events.publish(["kind": "call.reconnected", "callSid": .string(sid), "reconnects": .number(Double(count))])
                    }
                ) { frame in
                    self.received(frame, callSid: sid)
                }
            } catch {
                logger.warning("dev phone call failed", metadata: ["call.sid": "\(sid)", "error": "\(error)"])
            }
            _ = calls.withLockedValue { $0.removeValue(forKey: sid) }
            state.events.publish(["kind": "call.ended", "callSid": .string(sid), "closeCode": closeCode.map { .number(Double($0)) } ?? .null])
        }
        return sid
    }

    /// Sends a frame on a live call; false when there is no such call.
    func send(_ frame: JSONValue, callSid: String) -> Bool {
        let sent = calls.withLockedValue { calls -> Bool in
            guard var call = calls[callSid] else { return false }
            if frame["type"]?.string == "prompt" {
                call.promptAt = .now
                call.firstTokenSeen = false
            }
            calls[callSid] = call
            call.commands.yield(frame)
            return true
        }
        if sent { state.events.publish(["kind": "call.sent", "callSid": .string(callSid), "frame": frame]) }
        return sent
    }

    func hangUp(callSid: String) -> Bool {
        calls.withLockedValue { $0[callSid]?.commands.finish() } != nil
    }

    private func received(_ frame: JSONValue, callSid: String) {
        var event: [String: JSONValue] = ["kind": "call.frame", "callSid": .string(callSid), "frame": frame]
        let timing = calls.withLockedValue { calls -> (first: Int?, last: Int?) in
            guard var call = calls[callSid], let promptAt = call.promptAt, frame["type"]?.string == "text" else { return (nil, nil) }
            let elapsed = Int((ContinuousClock.now - promptAt).inMilliseconds)
            var result: (first: Int?, last: Int?) = (nil, nil)
            if !call.firstTokenSeen, !(frame["token"]?.string ?? "").isEmpty {
                call.firstTokenSeen = true
                result.first = elapsed
            }
            if frame["last"]?.bool == true {
                result.last = elapsed
                call.promptAt = nil
            }
            calls[callSid] = call
            return result
        }
        if let first = timing.first { event["firstTokenMs"] = .number(Double(first)) }
        if let last = timing.last { event["lastTokenMs"] = .number(Double(last)) }
        state.events.publish(.object(event))
    }
}

/// The dev phone: `GET /` (the page), `GET /sim/events` (server-sent events) and the call controls.
struct DevPhoneRoutes: Sendable {
    let state: SimState
    let phone: PhoneCalls
    let configuration: SimConfiguration

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: DevPhonePage.html(configuration: configuration))))
        }
        router.get("/sim/events") { _, _ in
            let events = state.events.subscribe()
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: ": connected\n\n"))
                    for await event in events {
                        try await writer.write(ByteBuffer(string: event == .null ? ": keep-alive\n\n" : "data: \(event.compactJSON)\n\n"))
                    }
                    try await writer.finish(nil)
                })
        }
        router.post("/sim/phone/calls") { request, _ in
            let input = try await Self.json(request)
            let sid = try await phone.start(from: input["from"]?.string ?? "+15559990000")
            return JSONResponse.bytes(.created, Array(JSONValue.object(["callSid": .string(sid)]).compactJSON.utf8))
        }
        router.post("/sim/phone/calls/:sid/:action") { request, context -> Response in
            guard let sid = context.parameters.get("sid"), let action = context.parameters.get("action") else {
                return JSONResponse.error(.badRequest, "missing call or action")
            }
            let input = try await Self.json(request)
            let frame: JSONValue
            switch action {
            case "say":
                guard let text = input["text"]?.string, !text.isEmpty else { return JSONResponse.error(.badRequest, "text is required") }
                frame = ["type": "prompt", "voicePrompt": .string(text), "lang": "en-US", "last": true]
            case "interrupt":
                frame = [
                    "type": "interrupt", "utteranceUntilInterrupt": .string(input["heard"]?.string ?? ""),
                    "durationUntilInterruptMs": .string(input["durationMs"]?.string ?? "0"),
                ]
            case "dtmf":
                guard let digit = input["digit"]?.string, digit.count == 1 else { return JSONResponse.error(.badRequest, "one digit is required") }
                frame = ["type": "dtmf", "digit": .string(digit)]
            case "hangup":
                return phone.hangUp(callSid: sid) ? JSONResponse.raw(.ok, #"{"status":"hung up"}"#) : JSONResponse.error(.notFound, "no such call")
            default:
                return JSONResponse.error(.notFound, "unknown action \(action)")
            }
            return phone.send(frame, callSid: sid) ? JSONResponse.raw(.ok, #"{"status":"sent"}"#) : JSONResponse.error(.notFound, "no such call")
        }
    }

    static func json(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: 1 << 16)
        guard buffer.readableBytes > 0 else { return [:] }
        return (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))) ?? [:]
    }
}

/// Keeps the dev phone's event streams alive, and ends them first when the sim stops.
struct DevPhoneEvents: Service {
    let hub: SimEventHub

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            // Returns at once when the sim starts shutting down.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(15)) }
            hub.heartbeat()
        }
        hub.finishAll()
    }
}
