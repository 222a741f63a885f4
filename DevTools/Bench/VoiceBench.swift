import AgentConnectCore
import ArgumentParser
import Foundation
import Logging
import NIOConcurrencyHelpers
import RelayCaller
import TwilioKit

/// Prompt→first token and prompt→`last:true` with many concurrent calls, and idle calls per relay.
struct VoiceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "voice")

    @Option var relay = "http://127.0.0.1:18081"
    @Option var authToken = "dev-auth-token-not-a-secret"
    @Option(parsing: .upToNextOption) var calls: [Int] = [200]
    @Option var prompts = 5
    @Option(help: "Pause between a caller's utterances (people do not speak back to back).") var gapMs = 1000
    @Option var idleCalls = 2000
    @Option(help: "Idle calls set up at once (the next wave starts once these are up).") var idleWave = 250
    @Option var relayPid: Int32 = 0
    @Option(help: "A process whose CPU time per turn is reported: name=pid, or name=~command-line prefix.") var pid: [String] = []
    @Option(help: "Names (of --pid) that make up the services' total.") var total: [String] = ["relay", "worker"]
    @Option(parsing: .upToNextOption, help: "Call counts that get table rows (all counts get a SWEEP line).") var tableCalls: [Int] = []
    @Flag(
        help:
            "Only the idle calls (on a relay started for them: one that just served the load keeps freed heap resident, which blurs its memory per call)."
    )
    var idleOnly = false

    func run() async throws {
        var configured = RelayCaller(relayURL: relay, authToken: authToken, logger: Logger(label: "bench"))
        configured.replyTimeout = .seconds(30)
        let caller = configured
        let prompts = prompts
        let gap = gapMs
        let (url, _) = try await caller.fetchTwiML(callSid: "CAwarmup", from: "+15556660000", to: "+15550000001")
        _ = try await caller.call(publicURL: url, callSid: "CAwarmup", from: "+15556660000", to: "+15550000001", script: [.say("warm up")])

        let cpu = ProcessCPU(options: pid)
        let totalNames = Set(total)
        for count in idleOnly ? [] : calls {
            // Three phases: every call is set up (voice webhook, socket, `setup`); then they speak, each
            // once per gap from a random start within the first gap, and the turns are timed and their
            // CPU counted; then, once every call said its last, they hang up. Call setup and hang-up
            // are counted per call, apart from the turns: "1,000 calls, each speaking once a second"
            // is the steady state, not the moment a thousand calls ring at once.
            let load = NIOLockedValueBox(MachineLoad())
            let failedCalls = NIOLockedValueBox(0)
            let setupStart = cpu.snapshot()
            let started = ContinuousClock.now
            let speakingStart = NIOLockedValueBox<(ContinuousClock.Instant, ProcessCPU.Snapshot)?>(nil)
            let speakingEnd = NIOLockedValueBox<(ContinuousClock.Instant, ProcessCPU.Snapshot)?>(nil)
            let speaking = CallBarrier(calls: count) {
                speakingStart.withLockedValue { $0 = (.now, cpu.snapshot()) }
                load.withLockedValue { $0 = MachineLoad() }
            }
            let finished = CallBarrier(calls: count) { speakingEnd.withLockedValue { $0 = (.now, cpu.snapshot()) } }
            let results = try await withThrowingTaskGroup(of: [RelayCaller.Turn].self) { group in
                for index in 0..<count {
                    group.addTask {
                        let sid = "CAbench\(count)x\(index)"
                        var script: [RelayCaller.Step] = [
                            .action { await speaking.arriveAndWait(index) }, .pause(.milliseconds(Int.random(in: 0..<max(1, gap)))),
                        ]
                        for turn in 0..<prompts {
                            if turn > 0 { script.append(.pause(.milliseconds(gap))) }
                            script.append(.say("turn \(turn) of call \(index)"))
                        }
                        script.append(.action { await finished.arriveAndWait(index) })
                        // Each call has its own single-use socket URL, from its own voice webhook. A call
                        // that fails (the relay past saturation) counts its turns as missing.
                        defer {
                            speaking.arrive(index)
                            finished.arrive(index)
                        }
                        do {
                            let (callURL, _) = try await caller.fetchTwiML(callSid: sid, from: "+1555666\(index)", to: "+15550000001")
                            return try await caller.call(
                                publicURL: callURL, callSid: sid, from: "+1555666\(index)", to: "+15550000001", script: script
                            )
                            .turns
                        } catch {
                            failedCalls.withLockedValue { $0 += 1 }
                            return []
                        }
                    }
                }
                return try await group.reduce(into: [RelayCaller.Turn]()) { $0 += $1 }
            }
            // What hanging up starts (the call's end on the bus, the worker's end of the conversation)
            // is done within a second here.
            try await Task.sleep(for: .seconds(1))
            let end = cpu.snapshot()
            var first = Samples()
            var last = Samples()
            var wrong = failedCalls.withLockedValue { $0 } * prompts
            for turn in results {
                if let value = turn.firstToken { first.add(value) }
                if let value = turn.completed { last.add(value) }
                if turn.text != "You said: \(turn.prompt)" { wrong += 1 }
            }
            guard let (speakingAt, speakingCPU) = speakingStart.withLockedValue({ $0 }),
                let (finishedAt, finishedCPU) = speakingEnd.withLockedValue({ $0 })
            else { throw ValidationError("the calls' phases did not complete") }
            let elapsed = finishedAt - speakingAt
            var step = Step(offered: count, messages: count * prompts, replied: last.count, refused: 0)
            step.p50 = first.percentile(50)
            step.p99 = first.percentile(99)
            step.achieved = Double(last.count) / elapsed.inSeconds
            step.measure(
                cpu, from: speakingCPU, to: finishedCPU, load: load.withLockedValue { $0 }, elapsed: elapsed, totalNames: totalNames)
            // Setup and hang-up: the CPU outside the speaking phase, per call.
            let outside = zip(cpu.perItem(from: setupStart, to: speakingCPU, count: count), cpu.perItem(from: finishedCPU, to: end, count: count))
                .map { (name: $0.name, milliseconds: $0.milliseconds + $1.milliseconds) }
            let outsideTotal = outside.filter { totalNames.contains($0.name) }.reduce(0) { $0 + $1.milliseconds }
            let breakdown = step.cpu.map { "\($0.name)=\(format($0.milliseconds, digits: 4))" }.joined(separator: ",")
            FileHandle.standardOutput.write(
                Data(
                    "SWEEP|voice|\(count)|\(format(step.achieved, digits: 1))|\(format(step.p50, digits: 3))|\(format(step.p99, digits: 3))|\(wrong)|\(format(step.cpuTotal, digits: 4))|\(format(step.machineBusy, digits: 0))|\(format(step.othersBusy, digits: 0))|\(breakdown)|\(format(last.percentile(50), digits: 3))\n"
                        .utf8))
            guard tableCalls.isEmpty || tableCalls.contains(count) else { continue }
            row(
                "voice prompt→first token p50 / p99 at \(count) calls, one utterance per call per \(gap) ms (ms)",
                "\(format(first.percentile(50))) / \(format(first.percentile(99)))", step.loadNote)
            row(
                "voice prompt→last:true p50 / p99 at \(count) calls, one utterance per call per \(gap) ms (ms)",
                "\(format(last.percentile(50))) / \(format(last.percentile(99)))", step.loadNote)
            row("voice wrong or missing replies at \(count) calls", "\(wrong) of \(count * prompts)")
            if !cpu.targets.isEmpty {
                row("voice CPU per turn at \(count) calls, \(total.joined(separator: " + ")) (ms)", format(step.cpuTotal, digits: 3), step.loadNote)
                row("voice CPU per turn at \(count) calls by process (ms)", step.cpuBreakdown, step.loadNote)
                row("voice calls set up at \(count) calls (voice webhook, socket, setup), all within (s)", format((speakingAt - started).inSeconds))
                row(
                    "voice CPU per call for setup and hang-up at \(count) calls, \(total.joined(separator: " + ")) (ms)",
                    format(outsideTotal, digits: 3))
                row(
                    "voice CPU per call for setup and hang-up at \(count) calls by process (ms)",
                    outside.map { "\($0.name) \(format($0.milliseconds, digits: 3))" }.joined(separator: ", "))
            }
        }

        guard idleCalls > 0 else { return }
        // Idle calls: sockets that did setup and stay open; the relay's resident memory per call held
        // (the relay's own count of live calls, not the calls attempted).
        let before = rss(relayPid)
        // Set up in waves of `idleWave` calls, each wave once the previous one is set up (or failed):
        // a load generator on the same cores that rings them all at once loses calls to its own
        // timeouts, and the row would count how fast the machine sets calls up instead of what a
        // held call costs. Each call then stays up until the relay's memory is measured.
        // Unstructured tasks, cancelled and not awaited once measured: a call that does not notice
        // the cancellation must not hold the run (the process exits soon after).
        let measuredEvent = OneTimeEvent()
        var idle: [Task<Void, Never>] = []
        let waveSize = max(1, idleWave)
        for waveStart in stride(from: 0, to: idleCalls, by: waveSize) {
            let wave = waveStart..<min(idleCalls, waveStart + waveSize)
            let setUp = CallBarrier(calls: wave.count) {}
            for index in wave {
                idle.append(
                    Task {
                        defer { setUp.arrive(index) }
                        let sid = "CAidle\(index)"
                        guard let (callURL, _) = try? await caller.fetchTwiML(callSid: sid, from: "+1555777\(index)", to: "+15550000001") else {
                            return
                        }
                        _ = try? await caller.call(
                            publicURL: callURL, callSid: sid, from: "+1555777\(index)", to: "+15550000001",
                            script: [.raw(["type": "info"]), .action { setUp.arrive(index) }, .action { await measuredEvent.wait() }])
                    })
            }
            // A wave whose calls hang (a socket that never opens) holds the run for 30 s at most.
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await setUp.wait() }
                group.addTask { try? await Task.sleep(for: .seconds(30)) }
                await group.next()
                group.cancelAll()
            }
        }
        try await Task.sleep(for: .seconds(3))
        let measured = rss(relayPid)
        let held = await liveCalls()
        measuredEvent.happen()
        for task in idle { task.cancel() }
        if let before, let measured, let held, held > 0 {
            row("voice idle calls held by one relay", String(held))
            row("voice relay memory per idle call (KiB)", String(format: "%.1f", Double(measured - before) / Double(held)))
        }
    }

    /// The relay's `agentconnect_live_calls` gauge, from its `/metrics`.
    func liveCalls() async -> Int? {
        guard let response = try? await HTTP1Client.shared.execute(.GET, url: "\(relay)/metrics", timeout: .seconds(5)) else { return nil }
        let text = String(buffer: response.body)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("agentconnect_live_calls ") }) else { return nil }
        return line.split(separator: " ").last.flatMap { Double($0) }.map { Int($0) }
    }

    /// Resident set size of a process in KiB.
    func rss(_ pid: Int32) -> Int? {
        guard pid > 0, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}

/// Calls that wait for one another: released (`onRelease` first) once every call arrived, or gave up.
final class CallBarrier: Sendable {
    private let calls: Int
    private let arrived = NIOLockedValueBox(Set<Int>())
    private let released = OneTimeEvent()
    private let onRelease: @Sendable () -> Void

    init(calls: Int, onRelease: @escaping @Sendable () -> Void) {
        self.calls = calls
        self.onRelease = onRelease
    }

    /// Call `index` is here (again: nothing happens).
    func arrive(_ index: Int) {
        let last = arrived.withLockedValue { $0.insert(index).inserted && $0.count == calls }
        guard last else { return }
        onRelease()
        released.happen()
    }

    func arriveAndWait(_ index: Int) async {
        arrive(index)
        await released.wait()
    }

    /// Waits until every call arrived.
    func wait() async {
        await released.wait()
    }
}
