import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What one thread wake-up costs on this machine: two threads pass a byte back and forth over a pair
/// of pipes, back to back and then once every `gapMs`, and the process's CPU time is divided by the
/// round trips. Every hop of a message (a request, a Redis or PostgreSQL reply, a task resumed on
/// another thread) wakes a thread; on a machine whose idle CPU is expensive to wake (a virtual
/// machine), a round trip costs several times more when the cores idle between messages than back to
/// back — the floor under "CPU per message" at low rates, whatever the services do.
struct WakeupBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wakeup")

    @Option var roundTrips = 20_000
    @Option var pacedRoundTrips = 300
    @Option var gapMs = 10

    func run() throws {
        let hot = try Self.cpuPerRoundTrip(count: roundTrips, gapMicroseconds: 0)
        let paced = try Self.cpuPerRoundTrip(count: pacedRoundTrips, gapMicroseconds: gapMs * 1000)
        row(
            "ceiling: CPU per thread round trip over a pipe, back to back / one every \(gapMs) ms (µs)",
            String(format: "%.1f / %.1f", hot, paced))
    }

    /// CPU microseconds per round trip: this thread writes, a second thread answers, this one reads,
    /// then (when `gapMicroseconds` > 0) sleeps before the next.
    static func cpuPerRoundTrip(count: Int, gapMicroseconds: Int) throws -> Double {
        var ping: [Int32] = [0, 0]
        var pong: [Int32] = [0, 0]
        guard pipe(&ping) == 0, pipe(&pong) == 0 else { throw CleanExit.message("pipe failed: errno \(errno)") }
        // The answering thread owns the write end of `pong` and closes it when it stops, for whatever
        // reason: this thread's read then ends rather than waiting forever.
        defer { for fd in [ping[0], ping[1], pong[0]] { close(fd) } }
        let (pingRead, pongWrite) = (ping[0], pong[1])
        let answerer = Thread {
            defer { close(pongWrite) }
            var byte: UInt8 = 0
            for _ in 0..<count {
                guard transfer(reading: true, pingRead, &byte), transfer(reading: false, pongWrite, &byte) else { return }
            }
        }
        answerer.start()
        var byte: UInt8 = 1
        let before = processCPUSeconds()
        for _ in 0..<count {
            guard transfer(reading: false, ping[1], &byte), transfer(reading: true, pong[0], &byte) else {
                throw CleanExit.message("pipe round trip failed")
            }
            if gapMicroseconds > 0 { usleep(UInt32(gapMicroseconds)) }
        }
        return (processCPUSeconds() - before) * 1e6 / Double(count)
    }

    /// One byte read or written, retried when a signal interrupts the call; false on any other failure.
    static func transfer(reading: Bool, _ fd: Int32, _ byte: inout UInt8) -> Bool {
        while true {
            let done = reading ? read(fd, &byte, 1) : write(fd, &byte, 1)
            if done == 1 { return true }
            if done < 0 && errno == EINTR { continue }
            return false
        }
    }

    /// CPU time (user + system) of this whole process so far.
    static func processCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
