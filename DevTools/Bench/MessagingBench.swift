import AgentConnectCore
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import TwilioKit

/// Webhook→action latency at a fixed rate, and the maximum sustained rate, through the real
/// messaging-ingress, agent-worker and outbound, with this process playing Conversation Orchestrator.
/// With `--pid name=pid` it also reports each service's CPU time per message; with `--sweep` it
/// offers rising rates and prints one `SWEEP|messaging|…` line per rate (for the chart).
struct MessagingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "messaging")

    @Option var ingress = "http://127.0.0.1:18082"
    @Option var twilioPort = 19190
    @Option var authToken = "dev-auth-token-not-a-secret"
    @Option var agent = "+15550000001"
    @Option var rate = 500
    @Option var seconds = 10
    @Option var concurrency = 64
    @Option var conversations = 200
    @Option(help: "A process whose CPU time per message is reported: name=pid, or name=~command-line prefix.") var pid: [String] = []
    @Option(help: "Names (of --pid) that make up the services' total.") var total: [String] = ["ingress", "worker", "outbound"]
    @Option(parsing: .upToNextOption, help: "Offered rates (messages/s) to sweep after the fixed-rate run.") var sweep: [Int] = []
    @Option var sweepSeconds = 4
    @Option(help: "Skip the fixed-rate and max-rate runs (sweep only).") var sweepOnly = false

    func run() async throws {
        let logger = Logger(label: "bench")
        let clock = ContinuousClock()
        let sent = NIOLockedValueBox<[Int: ContinuousClock.Instant]>([:])
        let arrived = ReplyBoard()
        let agent = agent
        let router = Router()
        router.get("/v2/Conversations/:id/Participants") { _, context in
            let id = context.parameters.get("id") ?? ""
            let body =
                #"{"participants":[{"id":"PC\#(id)","type":"CUSTOMER","addresses":[{"channel":"SMS","address":"+1666\#(id.suffix(7))"}]},{"id":"PA\#(id)","type":"AI_AGENT","addresses":[{"channel":"SMS","address":"\#(agent)"}]}]}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("/v2/Conversations/:id/Actions") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            let now = clock.now
            if let json = try? CompactJSON.decode(body.readableBytesView),
                let text = json["payload"]?["content"]?["text"]?.string, let n = Int(text.split(separator: "m").last ?? "")
            {
                arrived.arrive(n, at: now)
            }
            return Response(
                status: .accepted, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"act","status":"PENDING"}"#)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: twilioPort)), logger: logger)
        // The client outbound uses for Twilio (cheaper than AsyncHTTPClient: the load generator shares the cores it measures).
        var httpConfiguration = HTTP1Client.Configuration()
        httpConfiguration.maxConnectionsPerHost = concurrency + 8
        let http = HTTP1Client(configuration: httpConfiguration)
        let run = UUID().uuidString.prefix(8)
        let signer = TwilioSignature(authToken: authToken)
        let ingress = ingress
        let conversations = conversations
        let cpu = ProcessCPU(options: pid)
        let totalNames = Set(total)

        @Sendable func webhook(_ n: Int) async throws {
            let number = String(n % conversations)
            let conversation = "benchconv" + String(repeating: "0", count: max(0, 7 - number.count)) + number
            let body =
                #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comm\#(n)-\#(run)","conversationId":"\#(conversation)","accountId":"ACbench","author":{"address":"+1666\#(conversation.suffix(7))","channel":"SMS","participantId":"PC\#(conversation)"},"content":{"type":"TEXT","text":"m\#(n)"},"recipients":[{"address":"\#(agent)","channel":"SMS","participantId":"PA\#(conversation)"}]}}"#
            let bytes = Array(body.utf8)
            let url = "\(ingress)/webhook?bodySHA256=\(TwilioSignature.bodyHash(bytes))"
            let headers: HTTPHeaders = ["Content-Type": "application/json", "X-Twilio-Signature": signer.compute(url: url)]
            sent.withLockedValue { $0[n] = clock.now }
            let response = try await http.execute(.POST, url: url, headers: headers, body: ByteBuffer(bytes: bytes), timeout: .seconds(30))
            guard response.status == .ok else { throw CleanExit.message("webhook answered \(response.status.code)") }
        }

        /// Waits until every message of `range` has its reply, or `deadline`; returns how many arrived.
        @Sendable func waitForReplies(_ range: Range<Int>, until deadline: ContinuousClock.Instant) async -> Int {
            while true {
                let count = arrived.count(in: range)
                if count == range.count || clock.now >= deadline { return count }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }

        /// Offers `rate` messages/s for `seconds` (open loop), waits for the replies, and measures.
        @Sendable func fixedRate(_ rate: Int, seconds: Double, base: Int, drain: Duration, tolerateRefusals: Bool) async throws -> Step {
            let total = max(1, Int(Double(rate) * seconds))
            let interval = Duration.seconds(1) / rate
            let load = MachineLoad()
            let before = cpu.snapshot()
            let started = clock.now
            var next = started
            let refused = NIOLockedValueBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in base..<(base + total) {
                    try await clock.sleep(until: next)
                    next += interval
                    group.addTask {
                        do {
                            try await webhook(n)
                        } catch _ where tolerateRefusals {
                            refused.withLockedValue { $0 += 1 }
                            // Refused: no reply is owed (the backlog drain below does not wait for it).
                            sent.withLockedValue { $0[n] = nil }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let replies = await waitForReplies(base..<(base + total), until: clock.now + drain)
            let after = cpu.snapshot()
            var step = Step(offered: rate, messages: total, replied: replies, refused: refused.withLockedValue { $0 })
            var latencies = Samples()
            var last = started
            for n in base..<(base + total) {
                guard let start = sent.withLockedValue({ $0[n] }), let end = arrived.time(of: n) else { continue }
                latencies.add(end - start)
                last = max(last, end)
            }
            step.p50 = latencies.percentile(50)
            step.p99 = latencies.percentile(99)
            step.achieved = Double(replies) / max(0.001, (last - started).inSeconds)
            step.measure(cpu, from: before, to: after, load: load, elapsed: clock.now - started, totalNames: totalNames)
            return step
        }

        try await withThrowingTaskGroup(of: Void.self) { server in
            server.addTask { try await app.runInLoadGenerator() }
            // Waits past their timeout end here (a wait holds no timer of its own).
            server.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(100))
                    arrived.expire(now: clock.now)
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            // Warm-up: reconcile every conversation once (remembered in PostgreSQL afterwards).
            var base = 1_000_000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in base..<(base + conversations) { group.addTask { try await webhook(n) } }
                try await group.waitForAll()
            }
            for n in base..<(base + conversations) { await arrived.wait(for: n, timeout: .seconds(10)) }

            if !sweepOnly {
                // 1. Fixed rate.
                base = 2_000_000
                let step = try await fixedRate(rate, seconds: Double(seconds), base: base, drain: .seconds(10), tolerateRefusals: false)
                row("messaging webhook→SEND_MESSAGE p50 at \(rate)/s (ms)", format(step.p50), step.loadNote)
                row("messaging webhook→SEND_MESSAGE p99 at \(rate)/s (ms)", format(step.p99), step.loadNote)
                row("messaging replies missing at \(rate)/s", String(step.messages - step.replied))
                if !cpu.targets.isEmpty {
                    row(
                        "messaging CPU per message at \(rate)/s, \(total.joined(separator: " + ")) (ms)", format(step.cpuTotal, digits: 3),
                        step.loadNote)
                    row("messaging CPU per message at \(rate)/s by process (ms)", step.cpuBreakdown, step.loadNote)
                }

                // 2. Maximum sustained rate: closed loop, `concurrency` customers writing back to back.
                base = 3_000_000
                let counter = NIOLockedValueBox(base)
                let deadline = clock.now + .seconds(seconds)
                let load = MachineLoad()
                let before = cpu.snapshot()
                let started = clock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<concurrency {
                        group.addTask {
                            while clock.now < deadline {
                                let n = counter.withLockedValue { value -> Int in
                                    value += 1
                                    return value
                                }
                                try await webhook(n)
                                await arrived.wait(for: n, timeout: .seconds(10))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let elapsed = clock.now - started
                let after = cpu.snapshot()
                let replied = arrived.count(above: base)
                var saturated = Step(offered: 0, messages: replied, replied: replied, refused: 0)
                saturated.measure(cpu, from: before, to: after, load: load, elapsed: elapsed, totalNames: totalNames)
                row("messaging max sustained rate, webhook→reply (messages/s)", String(Int(Double(replied) / elapsed.inSeconds)), saturated.loadNote)
                if !cpu.targets.isEmpty {
                    row(
                        "messaging CPU per message at the max rate, \(total.joined(separator: " + ")) (ms)", format(saturated.cpuTotal, digits: 3),
                        saturated.loadNote)
                    row("messaging CPU per message at the max rate by process (ms)", saturated.cpuBreakdown, saturated.loadNote)
                }
            }

            // 3. Sweep: rising offered rates until one is not kept up with.
            base = 4_000_000
            for offered in sweep {
                let step = try await fixedRate(
                    offered, seconds: Double(sweepSeconds), base: base, drain: .seconds(max(10, sweepSeconds * 3)), tolerateRefusals: true)
                base += step.messages + 1
                FileHandle.standardOutput.write(Data("\(step.sweepLine)\n".utf8))
                // Past saturation the backlog only grows: stop after the first rate not kept up with.
                if step.replied < step.messages || step.achieved < 0.9 * Double(offered) { break }
            }
            // The last step left a backlog: the services work it off (the fake Twilio still answering)
            // before this part ends, so what is measured next (voice) runs on idle services.
            let drainStarted = clock.now
            let owed = sent.withLockedValue { Array($0.keys) }
            var missing = owed.count
            while clock.now < drainStarted + .seconds(180) {
                missing = owed.reduce(0) { $0 + (arrived.time(of: $1) == nil ? 1 : 0) }
                if missing == 0 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            row(
                "messaging backlog worked off after the sweep, before the next part (s)", format((clock.now - drainStarted).inSeconds, digits: 1),
                missing == 0 ? "" : "\(missing) replies still missing after 180 s")
            server.cancelAll()
        }
        await http.shutdown()
    }
}

/// When each message's reply reached the fake Twilio, and the load generator's waits for them: a
/// wait is resumed by the reply itself (polling every millisecond per customer had the load generator
/// waking 64,000 times a second in the closed loop, CPU taken from the services it measures).
final class ReplyBoard: Sendable {
    private struct Waiter {
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var arrived: [Int: ContinuousClock.Instant] = [:]
        var waiting: [Int: [Waiter]] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Records the reply to message `n`, and wakes whoever waits for it.
    func arrive(_ n: Int, at instant: ContinuousClock.Instant) {
        let waiters = state.withLockedValue { state -> [Waiter] in
            state.arrived[n] = instant
            return state.waiting.removeValue(forKey: n) ?? []
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    /// Returns once message `n` has its reply, or about `timeout` later (``expire(now:)``'s period).
    func wait(for n: Int, timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLockedValue { state -> Bool in
                if state.arrived[n] != nil { return true }
                state.waiting[n, default: []].append(Waiter(deadline: .now + timeout, continuation: continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Ends the waits whose deadline has passed.
    func expire(now: ContinuousClock.Instant) {
        let expired = state.withLockedValue { state -> [Waiter] in
            var expired: [Waiter] = []
            for (n, waiters) in state.waiting {
                let (late, onTime) = (waiters.filter { $0.deadline <= now }, waiters.filter { $0.deadline > now })
                guard !late.isEmpty else { continue }
                expired += late
                state.waiting[n] = onTime.isEmpty ? nil : onTime
            }
            return expired
        }
        for waiter in expired { waiter.continuation.resume() }
    }

    func time(of n: Int) -> ContinuousClock.Instant? { state.withLockedValue { $0.arrived[n] } }

    func count(in range: Range<Int>) -> Int { state.withLockedValue { state in range.reduce(0) { $0 + (state.arrived[$1] == nil ? 0 : 1) } } }

    func count(above base: Int) -> Int { state.withLockedValue { $0.arrived.keys.filter { $0 > base }.count } }
}

/// The machine's load next to a figure: how busy all cores were, and how much of that was processes
/// other than those measured (the load generator, other work on the machine).
func loadDescription(machineBusy: Double, othersBusy: Double) -> String {
    String(format: "cores %.0f%% busy (%.0f%% other processes)", machineBusy, othersBusy)
}

/// What one run at an offered rate measured.
struct Step: Sendable {
    var offered: Int
    var messages: Int
    var replied: Int
    var refused: Int
    var p50: Double?
    var p99: Double?
    var achieved: Double = 0
    var cpu: [(name: String, milliseconds: Double)] = []
    var cpuTotal: Double = 0
    /// Percent of all cores busy during the run, and the part of it not spent by the processes watched.
    var machineBusy: Double = 0
    var othersBusy: Double = 0

    var loadNote: String { loadDescription(machineBusy: machineBusy, othersBusy: othersBusy) }

    /// Fills in the CPU per message of each process and the machine's load over the run.
    mutating func measure(
        _ cpu: ProcessCPU, from before: ProcessCPU.Snapshot, to after: ProcessCPU.Snapshot, load: MachineLoad, elapsed: Duration,
        totalNames: Set<String>
    ) {
        self.cpu = cpu.perItem(from: before, to: after, count: replied)
        cpuTotal = self.cpu.filter { totalNames.contains($0.name) }.reduce(0) { $0 + $1.milliseconds }
        machineBusy = MachineLoad().busyPercent(since: load)
        let watchedSeconds = self.cpu.reduce(0) { $0 + $1.milliseconds } * Double(replied) / 1000
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        othersBusy = max(0, machineBusy - watchedSeconds / max(0.001, elapsed.inSeconds) / cores * 100)
    }

    var cpuBreakdown: String { cpu.map { "\($0.name) \(format($0.milliseconds, digits: 3))" }.joined(separator: ", ") }

    /// `SWEEP|kind|offered|achieved|p50|p99|missing|cpuTotal|machineBusy|othersBusy|name=ms,…`
    var sweepLine: String {
        let breakdown = cpu.map { "\($0.name)=\(format($0.milliseconds, digits: 4))" }.joined(separator: ",")
        return
            "SWEEP|messaging|\(offered)|\(format(achieved, digits: 1))|\(format(p50, digits: 3))|\(format(p99, digits: 3))|\(messages - replied)|\(format(cpuTotal, digits: 4))|\(format(machineBusy, digits: 0))|\(format(othersBusy, digits: 0))|\(breakdown)"
    }
}
