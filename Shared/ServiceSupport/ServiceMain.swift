import AgentConnectCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The shared `main` of every executable: reads `LOG_LEVEL`/`LOG_FORMAT`, builds the service group,
/// runs it until SIGTERM or SIGINT and exits 0 after draining; a configuration error is printed and
/// exits 2 before anything starts.
package enum ServiceMain {
    /// Isolated to the main actor so that its first steps (``configureThreads(_:default:)``) run on the main
    /// thread, before any other task is started; what it awaits (the build, the group) runs on the
    /// global executor as before.
    @MainActor
    package static func run(
        service name: String, defaultThreads: Int? = 1, build: @Sendable (Environment, Logger) async throws -> ServiceGroup
    ) async -> Never {
        unblockTerminationSignals()
        let environment = Environment.process()
        let logger: Logger
        let threads: Int
        do {
            threads = try configureThreads(environment, default: defaultThreads)
            logger = try bootstrap(service: name, environment: environment)
        } catch {
            fail(name, error)
        }
        if logger.logLevel <= .debug {
            let probe = await EventLoopGlobalExecutor.probe()
            logger.debug(
                "threads",
                metadata: [
                    "threads": "\(threads)", "tasks.on.event.loops": "\(probe.onEventLoop)",
                    "tasks.executor": "\(probe.generic.map { $0 ? "generic" : "isolated" } ?? "unknown")",
                ])
        }
        let group: ServiceGroup
        do {
            group = try await build(environment, logger)
        } catch {
            fail(name, error)
        }
        do {
            try await group.run()
            logger.info("stopped")
            exit(0)
        } catch {
            logger.critical("service failed", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// `SERVICE_THREADS` (default 1): the threads a service runs on, its network I/O and its Swift
    /// tasks together. SwiftNIO's event loops become Swift's global executor
    /// (``EventLoopGlobalExecutor``), so a task resumed by an answer (Redis, PostgreSQL, Twilio, an
    /// HTTP request) runs on the thread that read it instead of being handed to a second pool of
    /// threads. Measured on 2 cores, all services on one machine: about 10% less CPU per message at
    /// 1,000 messages/s and per voice turn, 15% at 2,000 offered; running each job as the generic
    /// executor rather than isolated to its loop took about 6% more off a message.
    /// One thread per process is the default because replicas are how a service scales; an agent
    /// whose callbacks compute (rather than await) should raise it to the cores a replica may use.
    /// `defaultThreads` nil (voice-relay): unset keeps SwiftNIO's and Swift's own threads (one event
    /// loop per core, tasks on Swift's pool). The relay holds thousands of idle calls, and with them
    /// all on one event loop its memory per idle call measured 41–48 KiB instead of 23 (the heap
    /// fragments in one malloc arena; MALLOC_ARENA_MAX=1 alone gave 36).
    /// Called once, first thing, from the main thread (SwiftNIO requires it), before anything uses
    /// SwiftNIO. Only the services' own executables: a program that runs `tac.run()` itself keeps
    /// Swift's and SwiftNIO's defaults (it may have used both before).
    /// Returns the number of threads.
    static func configureThreads(_ environment: Environment, default defaultCount: Int?) throws -> Int {
        guard environment.string("SERVICE_THREADS") != nil || defaultCount != nil else {
            return NIOSingletons.groupLoopCountSuggestion
        }
        let count = try environment.int("SERVICE_THREADS", default: defaultCount ?? 1, range: 1...256)
        // What runs the tasks is logged at start (`tasks.on.event.loops`, `tasks.executor`).
        EventLoopGlobalExecutor.runTasks(onEventLoops: count)
        return count
    }

    /// Logging (`LOG_LEVEL`, `LOG_FORMAT`), metrics and traces (`OTEL_*`, ``Traces``) for the process,
    /// once; the service's logger.
    package static func bootstrap(service name: String, environment: Environment) throws -> Logger {
        let level = try environment.choice(
            "LOG_LEVEL", default: "info", allowed: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        let format = try environment.choice("LOG_FORMAT", default: "text", allowed: ["text", "json"])
        Observability.bootstrap(service: name, level: Logger.Level(rawValue: level) ?? .info, json: format == "json")
        let logger = Logger(label: name)
        try Traces.bootstrap(service: name, environment: environment, logger: logger)
        return logger
    }

    /// A parent may start us with signals blocked (the mask is inherited across exec); SIGTERM and
    /// SIGINT must reach the service so it can drain.
    package static func unblockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    private static func fail(_ name: String, _ error: any Error) -> Never {
        FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
        exit(2)
    }

    /// One service group with the house order: clients first, consumers next, HTTP last, and a
    /// draining marker after everything (stopped first, so `/health/ready` turns 503 at once).
    package static func group(services: [any Service], health: HealthState, logger: Logger) -> ServiceGroup {
        var configured = services.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        configured.append(.init(service: ReadinessService(health: health, logger: logger)))
        // The span exporter, when tracing is on: first in, so it stops last and flushes every span.
        if let tracing = Traces.service {
            configured.insert(
                .init(service: tracing, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
                at: 0)
        }
        return ServiceGroup(
            configuration: .init(services: configured, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }
}

/// Marks the service draining as soon as shutdown begins (the HTTP server marks it ready once it listens).
struct ReadinessService: Service {
    let health: HealthState
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        health.markDraining()
        logger.info("draining")
    }
}
