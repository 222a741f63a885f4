import AgentConnectCore
import ArgumentParser
import Foundation

/// `agentconnect-bench`: the load generator behind `make bench` (scripts/bench.sh starts the stack).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentconnect-bench", abstract: "Measure AgentConnect on this machine.",
        subcommands: [BusBench.self, MessagingBench.self, VoiceBench.self, CeilingBench.self])
}

/// Prints one result row as `name|figure|ceiling` for the table script.
func row(_ name: String, _ figure: String, _ note: String = "") {
    FileHandle.standardOutput.write(Data("ROW|\(name)|\(figure)|\(note)\n".utf8))
}
