import AgentConnect
import AgentConnectAgents
import AgentConnectRuntime
import ServiceSupport

/// agent-worker: the built-in agent chosen with `TAC_AGENT` (`echo` by default), run as a TAC worker.
@main
struct AgentWorker {
    static func main() async {
        await ServiceMain.run(service: "agent-worker") { environment, logger in
            let tac = TAC(configuration: try TACConfiguration(environment: environment), logger: logger)
            let agent = try environment.choice("TAC_AGENT", default: "echo", allowed: BuiltInAgents.names)
            switch agent {
            case "openai": try BuiltInAgents.installOpenAI(on: tac)
            default: BuiltInAgents.installEcho(on: tac)
            }
            return try WorkerServices.group(for: tac)
        }
    }
}
