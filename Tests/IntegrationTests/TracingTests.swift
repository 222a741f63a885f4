import AgentConnectCore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import RelayCaller
import ServiceSupport
import Testing

@Suite("OpenTelemetry traces: off by default, one trace per turn across services when on")
struct TracingTests {
    @Test("an SMS turn exports webhook → turn → delivery spans in one trace, flushed at shutdown, and JSON logs name them")
    func oneTracePerTurn() async throws {
        let collector = try await FakeCollector.start()
        defer { collector.stop() }
        var options = TestStack.Options()
        options.extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:\(collector.port)"
        // Nothing is exported on a timer during the test: the spans arrive because shutdown flushes them.
        options.extra["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
        options.extra["LOG_FORMAT"] = "json"
        // The per-message lines (webhook accepted, turn) are debug.
        options.extra["LOG_LEVEL"] = "debug"
        try await withStack(options) { stack in
            let sent = try await stack.customerSays("trace me", from: "+15557772001")
            let conversationId = try #require(sent["conversationId"]?.string)
            _ = try await stack.agentMessages(conversationId: conversationId)
            var accepted: [String: Any]?
            #expect(
                await eventually {
                    accepted = stack.jsonLines("messaging-ingress").first {
                        $0["msg"] as? String == "webhook accepted" && $0["conversation.id"] as? String == conversationId
                            && $0["event.type"] as? String == "message.received"
                    }
                    return accepted != nil
                })
            let turnLogs = stack.jsonLines("agent-worker").filter {
                $0["msg"] as? String == "turn" && $0["conversation.id"] as? String == conversationId
            }
            await stack.stop(timeout: .seconds(30))  // spans are flushed at a clean exit

            // A loaded machine may redo a turn (a lease renewal missed its deadline): every attempt is a
            // `turn` span under the same webhook, and the delivery is the child of the one that published.
            let spans = collector.spans
            let delivery = try #require(spans.first { $0.service == "outbound" && $0.name == "delivery" }, "no delivery span in \(spans)")
            let trace = delivery.traceID
            let turn = try #require(
                spans.first { $0.service == "agent-worker" && $0.name == "turn" && $0.spanID == delivery.parentSpanID },
                "the delivery's parent is not a turn: \(spans)")
            #expect(turn.traceID == trace)
            let webhook = try #require(
                spans.first { $0.service == "messaging-ingress" && $0.name == "webhook" && $0.traceID == trace }, "\(spans)")
            let turns = spans.filter { $0.service == "agent-worker" && $0.name == "turn" && $0.traceID == trace }
            #expect(turns.allSatisfy { $0.parentSpanID == webhook.spanID }, "\(spans)")
            // The webhook starts the trace, or continues the caller's `traceparent` (twilio-sim's HTTP client traces too).
            #expect(webhook.parentSpanID.isEmpty || spans.contains { $0.service == "twilio-sim" && $0.spanID == webhook.parentSpanID })
            // The published event carried the webhook span's context; logs inside a span name it.
            #expect(accepted?["traceparent"] as? String == "00-\(trace)-\(webhook.spanID)-01")
            #expect(accepted?["trace_id"] as? String == trace)
            #expect(accepted?["span_id"] as? String == webhook.spanID)
            #expect(!turnLogs.isEmpty)
            for turnLog in turnLogs {
                #expect(turnLog["trace_id"] as? String == trace)
                #expect(turns.contains { $0.spanID == turnLog["span_id"] as? String })
            }
        }
    }

    @Test("a voice prompt's span runs to its answer's last token, with a first-token event, and the turn is its child")
    func voicePrompt() async throws {
        let collector = try await FakeCollector.start()
        defer { collector.stop() }
        var options = TestStack.Options()
        options.relays = 1
        options.extra["TWILIO_CONVERSATION_CONFIGURATION_ID"] = ""
        options.extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:\(collector.port)"
        try await withStack(options) { stack in
            var caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[0])", authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
            caller.replyTimeout = .seconds(10)
            let (url, _) = try await caller.fetchTwiML(callSid: "CAtrace", from: "+15556660001", to: "+15550000001")
            let call = try await caller.call(publicURL: url, callSid: "CAtrace", from: "+15556660001", to: "+15550000001", script: [.say("hi")])
            #expect(call.turns.first?.text == "You said: hi")
            await stack.stop(timeout: .seconds(30))  // spans are flushed at a clean exit
            let spans = collector.spans
            let prompt = try #require(spans.first { $0.service == "voice-relay" && $0.name == "prompt" }, "no prompt span in \(spans)")
            #expect(prompt.events.first == "first token")
            #expect(prompt.events.last == "last token")
            let turn = try #require(spans.first { $0.service == "agent-worker" && $0.name == "turn" && $0.traceID == prompt.traceID }, "\(spans)")
            #expect(turn.parentSpanID == prompt.spanID)
        }
    }

    @Test("OTEL_TRACES_EXPORTER=none keeps tracing off even with an endpoint: no export, no trace ids in logs")
    func offExportsNothing() async throws {
        let collector = try await FakeCollector.start()
        defer { collector.stop() }
        var options = TestStack.Options()
        options.extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:\(collector.port)"
        options.extra["OTEL_TRACES_EXPORTER"] = "none"
        options.extra["LOG_FORMAT"] = "json"
        // The per-message lines (webhook accepted, turn) are debug.
        options.extra["LOG_LEVEL"] = "debug"
        try await withStack(options) { stack in
            let sent = try await stack.customerSays("do not trace me", from: "+15557772002")
            let conversationId = try #require(sent["conversationId"]?.string)
            _ = try await stack.agentMessages(conversationId: conversationId)
            let accepted = stack.jsonLines("messaging-ingress").first {
                $0["msg"] as? String == "webhook accepted" && $0["conversation.id"] as? String == conversationId
            }
            #expect(accepted?["traceparent"] != nil)
            #expect(accepted?["trace_id"] == nil)
            await stack.stop(timeout: .seconds(30))  // spans are flushed at a clean exit
            #expect(collector.requests == 0)
        }
    }

    @Test("tracing is on only when the OTEL variables say so")
    func switchedByEnvironment() {
        #expect(!Traces.isEnabled(AgentConnectCore.Environment([:])))
        #expect(!Traces.isEnabled(AgentConnectCore.Environment(["OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"])))
        #expect(Traces.isEnabled(AgentConnectCore.Environment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"])))
        #expect(Traces.isEnabled(AgentConnectCore.Environment(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"])))
        #expect(Traces.isEnabled(AgentConnectCore.Environment(["OTEL_TRACES_EXPORTER": "otlp"])))
        #expect(
            !Traces.isEnabled(AgentConnectCore.Environment(["OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"])))
        #expect(
            !Traces.isEnabled(AgentConnectCore.Environment(["OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"])))
    }

    @Test("a service refuses OTLP/gRPC and unknown exporters with a configuration error naming the variable")
    func refusesWhatIsNotBuiltIn() async throws {
        for (variable, value) in [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_TRACES_EXPORTER", "zipkin")] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "\(TestEnvironment.binDirectory)/messaging-ingress")
            process.environment = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", variable: value]
            let stderr = Pipe()
            process.standardError = stderr
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let output = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 2, "\(variable)=\(value): \(output)")
            #expect(output.contains("configuration error: \(variable)"), "\(output)")
        }
    }
}

extension TestStack {
    /// The JSON log lines of the running processes of one executable.
    func jsonLines(_ executable: String) -> [[String: Any]] {
        processes(executable).flatMap { process in
            process.log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }
}

/// An OTLP/HTTP collector on a free port: accepts `POST /v1/traces` (protobuf) and keeps the spans.
final class FakeCollector: Sendable {
    struct ExportedSpan: Sendable, CustomStringConvertible {
        var service: String
        var name: String
        var traceID: String
        var spanID: String
        var parentSpanID: String
        var events: [String]
        var description: String { "\(service)/\(name) \(traceID) \(spanID)←\(parentSpanID) \(events)" }
    }

    private struct State {
        var requests = 0
        var spans: [ExportedSpan] = []
    }

    let port: Int
    private let state: NIOLockedValueBox<State>
    private let task: Task<Void, any Error>

    private init(port: Int, state: NIOLockedValueBox<State>, task: Task<Void, any Error>) {
        self.port = port
        self.state = state
        self.task = task
    }

    /// Export requests received so far (any path).
    var requests: Int { state.withLockedValue { $0.requests } }
    /// Every span received so far.
    var spans: [ExportedSpan] { state.withLockedValue { $0.spans } }

    static func start() async throws -> FakeCollector {
        let state = NIOLockedValueBox(State())
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let spans = try OTLPTraces.decode(Array(buffer: body)[...])
            state.withLockedValue {
                $0.requests += 1
                $0.spans += spans
            }
            // An empty ExportTraceServiceResponse: full success.
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: ResponseBody(byteBuffer: ByteBuffer()))
        }
        router.post("/**") { _, _ -> Response in
            state.withLockedValue { $0.requests += 1 }
            return Response(status: .notFound)
        }
        let port = NIOLockedValueBox<Int?>(nil)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port } })
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        let deadline = ContinuousClock.now + .seconds(10)
        while port.withLockedValue({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard let bound = port.withLockedValue({ $0 }) else { throw TestFailure("the collector did not start") }
        return FakeCollector(port: bound, state: state, task: task)
    }

    func stop() {
        task.cancel()
    }
}

/// Just enough of the protobuf wire format to read spans out of an `ExportTraceServiceRequest`.
enum OTLPTraces {
    struct Malformed: Error {}

    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
    }

    /// `resource_spans(1)` → `resource(1).attributes(1)` and `scope_spans(2).spans(2)` (`events(11).name(2)`).
    static func decode(_ request: ArraySlice<UInt8>) throws -> [FakeCollector.ExportedSpan] {
        var out: [FakeCollector.ExportedSpan] = []
        for resourceSpans in try bytes(1, in: request) {
            var service = ""
            for resource in try bytes(1, in: resourceSpans) {
                for attribute in try bytes(1, in: resource) {
                    let key = try bytes(1, in: attribute).first.map { String(decoding: $0, as: UTF8.self) }
                    let value = try bytes(2, in: attribute).first.flatMap { try bytes(1, in: $0).first }
                    if key == "service.name", let value { service = String(decoding: value, as: UTF8.self) }
                }
            }
            for scopeSpans in try bytes(2, in: resourceSpans) {
                for span in try bytes(2, in: scopeSpans) {
                    out.append(
                        FakeCollector.ExportedSpan(
                            service: service, name: String(decoding: try bytes(5, in: span).first ?? [], as: UTF8.self),
                            traceID: hex(try bytes(1, in: span).first ?? []), spanID: hex(try bytes(2, in: span).first ?? []),
                            parentSpanID: hex(try bytes(4, in: span).first ?? []),
                            events: try bytes(11, in: span).map { String(decoding: try bytes(2, in: $0).first ?? [], as: UTF8.self) }))
                }
            }
        }
        return out
    }

    /// The length-delimited values of field `number` in `message`.
    static func bytes(_ number: Int, in message: ArraySlice<UInt8>) throws -> [ArraySlice<UInt8>] {
        try fields(message).compactMap { field, value in
            guard field == number, case .bytes(let bytes) = value else { return nil }
            return bytes
        }
    }

    static func fields(_ message: ArraySlice<UInt8>) throws -> [(Int, Value)] {
        var out: [(Int, Value)] = []
        var index = message.startIndex
        func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < message.endIndex, shift < 64 else { throw Malformed() }
                let byte = message[index]
                index += 1
                result |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }
        while index < message.endIndex {
            let key = try varint()
            let field = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((field, .varint(try varint())))
            case 1, 5:
                let size = key & 7 == 1 ? 8 : 4
                guard message.endIndex - index >= size else { throw Malformed() }
                index += size
            case 2:
                let length = Int(try varint())
                guard length >= 0, message.endIndex - index >= length else { throw Malformed() }
                out.append((field, .bytes(message[index..<index + length])))
                index += length
            default: throw Malformed()
            }
        }
        return out
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
