import AgentConnect
import AgentConnectAgents
import AgentConnectCore
import ArgumentParser
import Foundation
import ServiceSupport
import TwilioKit

/// `agentconnect doctor`: checks what a deployment needs, one line per check, and exits 1 when any
/// check fails.
///
/// Reads the same environment the services read, parsed by the same code (``CommonConfiguration``,
/// ``TwilioAPIConfiguration``, ``TACConfiguration``…). Every network check is bounded by `--timeout`.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check configuration, Redis, PostgreSQL, the public domain and Twilio credentials.",
        discussion: """
            Prints one line per check: ok, warn or fail, and for warn and fail what to fix. Exits 1 when \
            any check fails. Run it with the environment the services run with.
            """)

    /// The services whose configuration `doctor` checks.
    static let serviceNames = ["messaging-ingress", "voice-relay", "outbound", "agent-worker"]

    @Option(
        name: .customLong("service"),
        help: "Check only this service's configuration (\(serviceNames.joined(separator: ", "))); repeat for several. Default: all.")
    var services: [String] = []

    @Option(help: "Seconds each network check may take.")
    var timeout: Int = 5

    func validate() throws {
        for service in services where !Self.serviceNames.contains(service) {
            throw ValidationError("--service must be one of \(Self.serviceNames.joined(separator: ", ")), got \(service)")
        }
        guard (1...300).contains(timeout) else { throw ValidationError("--timeout must be 1...300 seconds") }
    }

    func run() async throws {
        let checks = DoctorChecks(
            environment: Environment.process(), services: services.isEmpty ? Self.serviceNames : services, timeout: .seconds(timeout))
        var failed = 0
        await checks.run { check in
            FileHandle.standardOutput.write(Data((check.line + "\n").utf8))
            if check.status == .fail { failed += 1 }
        }
        if failed > 0 {
            FileHandle.standardError.write(Data("doctor: \(failed) check(s) failed\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// The checks behind `agentconnect doctor`, in the order they print.
struct DoctorChecks: Sendable {
    let environment: Environment
    /// Services whose configuration is checked.
    let services: [String]
    /// Bound on each network check.
    let timeout: Duration

    /// Runs every check, handing each result to `report` as it is known.
    func run(report: (DoctorCheck) -> Void) async {
        let common: CommonConfiguration
        do {
            common = try CommonConfiguration(environment: environment, defaultPort: 8080)
            report(.ok("config", "the common settings (Redis, PostgreSQL, instance id, partitions, bus) parse"))
        } catch {
            report(.configuration("config", error))
            for service in services { report(serviceConfiguration(service)) }
            report(publicDomain())
            report(await twilioCredentials())
            return
        }
        for service in services { report(serviceConfiguration(service)) }
        for check in await RedisDoctor(
            configuration: common.redis, partitions: common.inboundPartitions, durability: common.busDurability, timeout: timeout
        ).checks() {
            report(check)
        }
        if let voice = common.voiceRedis {
            for check in await RedisDoctor(
                configuration: voice, partitions: common.inboundPartitions, durability: .none, timeout: timeout, voice: true
            ).checks() {
                report(check)
            }
        }
        for check in await PostgresDoctor(configuration: common.database, timeout: timeout).checks() { report(check) }
        report(publicDomain())
        report(await twilioCredentials())
    }

    /// Parses what `service` reads on top of the common settings, with the parsers it uses.
    func serviceConfiguration(_ service: String) -> DoctorCheck {
        let name = "config \(service)"
        do {
            switch service {
            case "messaging-ingress":
                _ = try environment.required("TWILIO_AUTH_TOKEN")
                return senders(name, try Senders(environment: environment), "reads TWILIO_AUTH_TOKEN and its senders")
            case "voice-relay":
                _ = try environment.required("TWILIO_AUTH_TOKEN")
                guard PublicDomain.normalized(try environment.required("TWILIO_VOICE_PUBLIC_DOMAIN")) != nil else {
                    throw ConfigurationError(variable: "TWILIO_VOICE_PUBLIC_DOMAIN", reason: "must be a host name")
                }
                if environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID") != nil {
                    _ = try TwilioAPIConfiguration(environment: environment)
                }
                return senders(name, try Senders(environment: environment), "reads TWILIO_AUTH_TOKEN, TWILIO_VOICE_PUBLIC_DOMAIN and its numbers")
            case "outbound":
                _ = try TwilioAPIConfiguration(environment: environment)
                _ = try environment.required("OUTBOUND_API_TOKEN")
                return senders(name, try Senders(environment: environment), "reads Twilio REST credentials, OUTBOUND_API_TOKEN and its senders")
            case "agent-worker":
                let tac = try TACConfiguration(environment: environment)
                let agent = try environment.choice("TAC_AGENT", default: "echo", allowed: BuiltInAgents.names)
                if agent == "openai" {
                    let openAI = try OpenAIConfiguration(environment: environment)
                    if openAI.apiKey == nil, openAI.baseURL.contains("api.openai.com") {
                        return .warn(name, "TAC_AGENT=openai against api.openai.com without OPENAI_API_KEY", fix: "set OPENAI_API_KEY")
                    }
                }
                if tac.outboundAPIToken == nil {
                    return .warn(name, "OUTBOUND_API_TOKEN is not set: agents cannot start conversations or calls", fix: "set OUTBOUND_API_TOKEN")
                }
                return .ok(name, "TAC_AGENT=\(agent), memory, delivery and lease settings parse")
            default:
                return .fail(name, "unknown service", fix: "use one of \(Doctor.serviceNames.joined(separator: ", "))")
            }
        } catch {
            return .configuration(name, error)
        }
    }

    private func senders(_ name: String, _ senders: Senders, _ summary: String) -> DoctorCheck {
        if senders.phoneNumbers.isEmpty && senders.whatsappNumbers.isEmpty && senders.rcsSenderIds.isEmpty {
            return .warn(
                name, "no agent addresses: no TWILIO_PHONE_NUMBER(S), TWILIO_WHATSAPP_NUMBER(S) or TWILIO_RCS_SENDER_ID(S)",
                fix: "set the numbers and senders the agent answers on")
        }
        return .ok(name, summary)
    }
}
