import AgentConnectCore
import ArgumentParser
import Foundation

/// `agentconnect-bench`: the load generator behind `make bench` (scripts/bench.sh starts the stack).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentconnect-bench", abstract: "Measure AgentConnect on this machine.",
        subcommands: [BusBench.self, MessagingBench.self, VoiceBench.self, CeilingBench.self, HotPathBench.self, PoolBench.self, WakeupBench.self])
}

/// A synchronous entry point that waits on a semaphore while the command runs as a task. Swift's
/// async `main` parks the main thread in libdispatch's `dispatch_main`, whose `sigsuspend` on a
/// read-only signal mask valgrind cannot emulate: this way the bench runs under callgrind too.
@main
enum BenchMain {
    static func main() {
        let command: any ParsableCommand
        do {
            command = try Bench.parseAsRoot()
        } catch {
            Bench.exit(withError: error)
        }
        // The hot path's executor is chosen before anything is enqueued on the global executor.
        if let hotPath = command as? HotPathBench { HotPathBench.install(hotPath.executor) }
        let box = CommandBox(command)
        let finished = DispatchSemaphore(value: 0)
        // Detached: `main` is on the main actor, whose queue nobody drains while the thread waits.
        Task.detached {
            do {
                if var asynchronous = box.command as? any AsyncParsableCommand {
                    try await asynchronous.run()
                } else {
                    var synchronous = box.command
                    try synchronous.run()
                }
            } catch {
                box.error = error
            }
            finished.signal()
        }
        finished.wait()
        if let error = box.error { Bench.exit(withError: error) }
    }

    /// Hands the parsed command to the task and its error back (only one side touches it at a time).
    private final class CommandBox: @unchecked Sendable {
        let command: any ParsableCommand
        var error: (any Error)?
        init(_ command: any ParsableCommand) { self.command = command }
    }
}

/// Prints one result row as `name|figure|note` for the table script.
func row(_ name: String, _ figure: String, _ note: String = "") {
    FileHandle.standardOutput.write(Data("ROW|\(name)|\(figure)|\(note)\n".utf8))
}
