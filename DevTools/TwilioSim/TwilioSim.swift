import AgentConnectCore
import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import ServiceSupport
import TwilioKit

/// twilio-sim: a local stand-in for Twilio, and a command line to talk to it.
@main
struct TwilioSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twilio-sim", abstract: "A local Twilio stand-in for AgentConnect.",
        subcommands: [Serve.self, SMS.self, Call.self], defaultSubcommand: Serve.self)
}

/// `twilio-sim serve`: runs the sim (the default).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the simulator's HTTP server.")

    func run() async throws {
        await ServiceMain.run(service: "twilio-sim") { environment, logger in
            try Serve.buildServiceGroup(configuration: SimConfiguration(environment: environment), logger: logger)
        }
    }

    static func buildServiceGroup(configuration: SimConfiguration, logger: Logger) throws -> ServiceGroup {
        let health = HealthState()
        let state = SimState()
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let webhooks = WebhookSender(
            http: http, signer: TwilioSignature(authToken: configuration.authToken), retries: configuration.webhookRetries, logger: logger,
            signedAs: [
                (configuration.messagingURL, configuration.messagingPublicBaseURL), (configuration.voiceURL, configuration.voicePublicBaseURL),
            ])
        let router = Router()
        OperationalRoutes.add(to: router, health: health)
        let voice = VoiceRoutes(state: state, configuration: configuration, logger: logger)
        let answerer = CallAnswerer(voice: voice)
        let statusCallbacks = StatusCallbackSender(state: state, webhooks: webhooks)
        let rest = TwilioRESTRoutes(
            state: state, configuration: configuration, webhooks: webhooks, answerCall: { answerer.enqueue($0) }, logger: logger,
            statusCallbacks: statusCallbacks)
        rest.add(to: router)
        ControlRoutes(state: state, configuration: configuration, webhooks: webhooks, rest: rest).add(to: router)
        voice.add(to: router)
        DevPhoneRoutes(
            state: state, phone: PhoneCalls(state: state, configuration: configuration, voice: voice, logger: logger), configuration: configuration
        )
        .add(to: router)
        // Long-polls (up to 60 s) and the dev phone's event streams are responses in progress, not idle.
        let app = Application(
            router: router, server: .http1(configuration: HTTPServerLimits(idleTimeout: .seconds(120)).http1),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "twilio-sim"),
            onServerRunning: { channel in
                health.markReady()
                logger.info(
                    "twilio-sim listening",
                    metadata: ["host": "\(configuration.host)", "port": "\(channel.localAddress?.port ?? configuration.port)"])
            }, logger: logger)
        // The event streams come after the server, so they are ended before it waits for open connections.
        return ServiceMain.group(
            services: [HTTPClientService(client: http), answerer, statusCallbacks, app, DevPhoneEvents(hub: state.events)], health: health,
            logger: logger)
    }
}

/// `twilio-sim sms --from +15550001111 "hello"`: writes to the agent as a customer and prints its reply.
struct SMS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a customer message and print the agent's reply.")

    @Option(help: "The customer's address.") var from: String = "+15550001111"
    @Option(help: "sms, whatsapp, rcs or chat.") var channel: String = "sms"
    @Option(help: "Use a classic Messaging webhook instead of Conversation Orchestrator.") var classic: Bool = false
    @Option(help: "The running simulator.") var sim: String = "http://127.0.0.1:8090"
    @Option(help: "Seconds to wait for the reply, the webhook (which the sim retries as Twilio would) included.") var timeout: Int = 10
    @Argument(help: "The message text.") var text: String

    func run() async throws {
        let http = HTTPClient.shared
        let before = classic ? try await messages(http, query: "to=\(FormCoding.percentEncode(from))", count: 0, waitMs: 0).count : 0
        let started = ContinuousClock.now
        let budget = Duration.seconds(max(1, timeout))
        let sent = try await post(
            http, "\(sim)/sim/messages", ["channel": .string(channel), "from": .string(from), "text": .string(text), "classic": .bool(classic)],
            timeout: .milliseconds(budget.milliseconds))
        guard let status = sent["webhookStatus"]?.double, status == 200 else {
            throw ValidationError("the webhook was not accepted: \(sent)")
        }
        let query = classic ? "to=\(FormCoding.percentEncode(from))" : "conversationId=\(sent["conversationId"]?.string ?? "")"
        let left = budget - (ContinuousClock.now - started)
        let replies = try await messages(http, query: query, count: before + 1, waitMs: max(0, Int(left.milliseconds)))
        guard replies.count > before, let reply = replies.last?["text"]?.string else {
            throw ValidationError("no reply within \(timeout) s")
        }
        let elapsed = ContinuousClock.now - started
        print(reply)
        FileHandle.standardError.write(Data("(\(elapsed.milliseconds) ms)\n".utf8))
    }

    private func messages(_ http: HTTPClient, query: String, count: Int, waitMs: Int) async throws -> [JSONValue] {
        var request = HTTPClientRequest(url: "\(sim)/sim/messages?\(query)&count=\(count)&waitMs=\(waitMs)")
        request.method = .GET
        let response = try await http.execute(request, timeout: .milliseconds(Int64(waitMs + 5000)))
        let body = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: try await response.body.collect(upTo: 1 << 20)))
        return body["messages"]?.array ?? []
    }

    private func post(_ http: HTTPClient, _ url: String, _ body: JSONValue, timeout: TimeAmount) async throws -> JSONValue {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await http.execute(request, timeout: timeout)
        return try JSONDecoder().decode(JSONValue.self, from: Data(buffer: try await response.body.collect(upTo: 1 << 20)))
    }
}

/// `twilio-sim call --say "hello" --say "what time is it"`: calls the agent and prints each reply with its timing.
struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Call the agent through voice-relay and print each reply.")

    @Option(name: .customLong("say"), help: "A sentence the caller says (repeatable).") var prompts: [String] = []
    @Option(help: "The caller's number.") var from: String = "+15559990000"
    @Option(help: "Interrupt the first reply after this many tokens.") var interruptAfter: Int?
    @Option(help: "The running simulator.") var sim: String = "http://127.0.0.1:8090"

    func run() async throws {
        var request = HTTPClientRequest(url: "\(sim)/sim/calls")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        var body: [String: JSONValue] = ["from": .string(from), "say": .array(prompts.map { .string($0) })]
        if let interruptAfter { body["interruptAfter"] = .number(Double(interruptAfter)) }
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(JSONValue.object(body))))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let result = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: try await response.body.collect(upTo: 1 << 20)))
        guard response.status == .ok else { throw ValidationError("the call failed: \(result)") }
        for turn in result["turns"]?.array ?? [] {
            let first = turn["firstTokenMs"]?.double.map { String(format: "%.1f", $0) } ?? "-"
            let done = turn["completedMs"]?.double.map { String(format: "%.1f", $0) } ?? "-"
            print("> \(turn["prompt"]?.string ?? "")")
            print(
                "< \(turn["text"]?.string ?? "")   (first token \(first) ms, done \(done) ms\(turn["interrupted"]?.bool == true ? ", interrupted" : ""))"
            )
        }
    }
}
