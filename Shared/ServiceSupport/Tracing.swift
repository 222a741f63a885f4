import AgentConnectCore
import Logging
import NIOConcurrencyHelpers
import OTel
import ServiceLifecycle
import Synchronization
import Tracing

/// OpenTelemetry traces: off by default, on with the standard `OTEL_*` variables, exported over
/// OTLP/HTTP by swift-otel.
///
/// Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`), or when an OTLP
/// endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
/// `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` keep it off. Everything else
/// (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_BSP_*`, …) is
/// read by swift-otel itself. Off (and no tracer set up by other means), no span is made at all:
/// ``withSpan(_:continuing:kind:attributes:isolation:_:)`` runs its operation directly (through
/// swift-distributed-tracing's no-op tracer a span still cost 2–5% of a service's CPU a message: a
/// context extracted and injected through dictionaries, a task local bound, and the next hop's
/// `traceparent` made whether or not it was read).
///
/// Hops join across services through the W3C `traceparent` each ``BusEvent`` carries.
package enum Traces {
    private static let exporter = NIOLockedValueBox<Bootstrapped?>(nil)
    /// Set once at start when this process's tracing is off and no tracer came from elsewhere (an
    /// author's own `InstrumentationSystem.bootstrap`): spans are then skipped. Never set where
    /// ``bootstrap(service:environment:logger:)`` did not run (a worker given its author's logger, unit
    /// tests): spans go through whatever tracer is there, as they always did.
    private static let skipSpans = Atomic<Bool>(false)

    private struct Bootstrapped {
        var service: (any Service)?
    }

    /// Whether `environment` turns tracing on (see ``Traces``).
    package static func isEnabled(_ environment: Environment) -> Bool {
        if environment.string("OTEL_SDK_DISABLED")?.lowercased() == "true" { return false }
        if let exporter = environment.string("OTEL_TRACES_EXPORTER")?.lowercased() { return exporter != "none" }
        return environment.string("OTEL_EXPORTER_OTLP_ENDPOINT") != nil || environment.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != nil
    }

    /// Bootstraps the process's tracer once, when `environment` turns tracing on.
    ///
    /// The service name defaults to `service` (`OTEL_SERVICE_NAME` overrides it); swift-otel reads
    /// the rest of the `OTEL_*` variables. A configuration it refuses (an unknown exporter, gRPC,
    /// which this build leaves out) throws, naming the problem.
    /// - Returns: the exporter's service (it flushes spans when shut down), or `nil` when tracing is off.
    @discardableResult
    package static func bootstrap(service: String, environment: Environment, logger: Logger) throws -> (any Service)? {
        try exporter.withLockedValue { state in
            if let state { return state.service }
            guard isEnabled(environment) else {
                state = Bootstrapped(service: nil)
                if InstrumentationSystem.tracer is NoOpTracer { skipSpans.store(true, ordering: .releasing) }
                return nil
            }
            try validate(environment)
            var configuration = OTel.Configuration.default
            configuration.serviceName = service
            if let instance = environment.string("INSTANCE_ID") { configuration.resourceAttributes["service.instance.id"] = instance }
            configuration.logs.enabled = false
            configuration.metrics.enabled = false
            configuration.traces.enabled = true
            configuration.diagnosticLogger = .custom(logger)
            configuration.diagnosticLogLevel = .warning
            let backend: (factory: any Tracer, service: any Service)
            do {
                let made = try OTel.makeTracingBackend(configuration: configuration)
                backend = (made.factory, made.service)
            } catch {
                throw ConfigurationError(variable: "OTEL_*", reason: "cannot set up tracing: \(error)")
            }
            InstrumentationSystem.bootstrap(backend.factory)
            state = Bootstrapped(service: backend.service)
            logger.info("tracing on", metadata: ["otel.service": "\(environment.string("OTEL_SERVICE_NAME") ?? service)"])
            return backend.service
        }
    }

    /// What swift-otel would stop the process over (a `fatalError`) or answer vaguely: refused here
    /// as a configuration error naming the variable.
    static func validate(_ environment: Environment) throws {
        if let exporter = environment.string("OTEL_TRACES_EXPORTER")?.lowercased(), !["otlp", "console", "none"].contains(exporter) {
            throw ConfigurationError(variable: "OTEL_TRACES_EXPORTER", reason: "must be otlp, console or none (got \(exporter))")
        }
        for variable in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            guard let value = environment.string(variable)?.lowercased() else { continue }
            guard value == "http/protobuf" || value == "http/json" else {
                throw ConfigurationError(variable: variable, reason: "must be http/protobuf or http/json (OTLP/gRPC is not built in)")
            }
            break
        }
    }

    /// The exporter's service once tracing is bootstrapped and on; `nil` otherwise.
    package static var service: (any Service)? {
        exporter.withLockedValue { $0?.service }
    }

    /// Runs `operation` in a span named `name`, a child of `traceparent` (a W3C header value) when
    /// it is valid, else of the active span, else the root of a new trace.
    ///
    /// The operation receives a ``TraceSpan`` whose ``TraceSpan/traceparent`` is what the next hop
    /// continues: the span's own context while tracing is on, otherwise `traceparent` continued as
    /// today (``Traceparent/continuing(_:)``). An error thrown by `operation` is recorded on the span.
    package static func withSpan<T>(
        _ name: String, continuing traceparent: String?, kind: SpanKind = .internal, attributes: [String: String] = [:],
        isolation: isolated (any Actor)? = #isolation, _ operation: (TraceSpan) async throws -> T
    ) async rethrows -> T {
        guard makesSpans else { return try await operation(TraceSpan(span: nil, fallback: traceparent)) }
        let parent = context(continuing: traceparent)
        return try await Tracing.withSpan(name, context: parent, ofKind: kind, isolation: isolation) { span in
            for (key, value) in attributes { span.attributes[key] = value }
            return try await operation(TraceSpan(span: span, fallback: traceparent))
        }
    }

    /// The active span's `traceparent`, or `nil` when no span is active (tracing off).
    package static var currentTraceparent: String? {
        guard makesSpans else { return nil }
        return InstrumentationContext.current.flatMap(traceparent(of:))
    }

    /// Whether spans are made (see `skipSpans`).
    static var makesSpans: Bool { !skipSpans.load(ordering: .acquiring) }

    /// `trace_id` and `span_id` of the active span for log lines (swift-otel's logging metadata
    /// provider); empty when no span is active.
    package static func logMetadata() -> Logger.Metadata {
        guard makesSpans, InstrumentationContext.current != nil else { return [:] }
        return metadataProvider.get().filter { $0.key == "trace_id" || $0.key == "span_id" }
    }

    private static let metadataProvider = OTel.makeLoggingMetadataProvider()

    /// A context to start a span in: `traceparent`'s when it is valid, else the active one.
    static func context(continuing traceparent: String?) -> InstrumentationContext {
        var context = InstrumentationContext.current ?? .topLevel
        if let traceparent, Traceparent(traceparent) != nil {
            InstrumentationSystem.tracer.extract(["traceparent": traceparent], into: &context, using: HeaderExtractor())
        }
        return context
    }

    /// The W3C `traceparent` of a context's span, or `nil` when it has none (tracing off).
    static func traceparent(of context: InstrumentationContext) -> String? {
        var carrier: [String: String] = [:]
        InstrumentationSystem.tracer.inject(context, into: &carrier, using: HeaderInjector())
        guard let value = carrier["traceparent"], Traceparent(value) != nil else { return nil }
        return value
    }

    private struct HeaderExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    private struct HeaderInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }
}

/// The span of one hop, as ``Traces/withSpan(_:continuing:kind:attributes:isolation:_:)`` hands it over.
package struct TraceSpan: Sendable {
    /// The span while tracing is on; `nil` while it is off (no span is made).
    let span: (any Span)?
    /// The span's own `traceparent` (tracing on).
    private let own: String?
    /// The incoming `traceparent` (tracing off).
    private let fallback: String?

    /// The `traceparent` the next hop continues: this span's context while tracing is on, else the
    /// incoming one continued (a new trace when there was none). While tracing is off it is made on
    /// each read, with a new span id each time: read it once per hop.
    package var traceparent: String {
        own ?? Traceparent.continuing(fallback).description
    }

    init(span: (any Span)?, fallback: String?) {
        self.span = span
        self.fallback = fallback
        own = span.flatMap { Traces.traceparent(of: $0.context) }
    }

    /// Adds a timestamped event to the span.
    package func event(_ name: String, attributes: [String: String] = [:]) {
        guard let span else { return }
        var spanAttributes = SpanAttributes()
        for (key, value) in attributes { spanAttributes[key] = value }
        span.addEvent(SpanEvent(name: name, attributes: spanAttributes))
    }

    /// Sets a string attribute on the span.
    package func attribute(_ key: String, _ value: String) {
        span?.attributes[key] = value
    }
}
