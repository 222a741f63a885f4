import AgentConnectCore
import Logging
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Process-wide logging and metrics set-up: swift-log (text, or JSON lines when `LOG_FORMAT=json`)
/// and swift-metrics backed by a Prometheus registry that `/metrics` renders.
package enum Observability {
    private static let registryBox = NIOLockedValueBox<PrometheusCollectorRegistry?>(nil)

    /// Latency buckets fine enough for sub-millisecond hops and coarse enough for slow Twilio calls.
    static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(3),
        .milliseconds(5), .milliseconds(10), .milliseconds(15), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// Bootstraps logging and metrics once per process and returns the registry.
    @discardableResult
    package static func bootstrap(service: String, level: Logger.Level, json: Bool) -> PrometheusCollectorRegistry {
        registry {
            LoggingSystem.bootstrap { label in
                if json { return JSONLogHandler(label: service, level: level) }
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }

    /// The registry `/metrics` renders. When nothing bootstrapped this process yet (a worker built
    /// with its author's own logger, tests), metrics are bootstrapped on it now, and logging is left
    /// alone (swift-log stops a process that bootstraps it twice).
    package static var registry: PrometheusCollectorRegistry { registry {} }

    /// The process's registry; the first call runs `setUp`, then makes the registry.
    private static func registry(settingUp setUp: () -> Void) -> PrometheusCollectorRegistry {
        registryBox.withLockedValue { existing in
            if let existing { return existing }
            setUp()
            let registry = makeRegistry()
            existing = registry
            return registry
        }
    }

    /// One timer per channel, made once (a `Timer(label:dimensions:)` per call asks the registry
    /// each time): `label` with dimension `channel`. Make it after the metrics are bootstrapped.
    package static func timersByChannel(_ label: String) -> [ChannelKind: Timer] {
        Dictionary(uniqueKeysWithValues: ChannelKind.allCases.map { ($0, Timer(label: label, dimensions: [("channel", $0.rawValue)])) })
    }

    /// A new registry, made the metrics system's backend unless the process already has one of its
    /// own (an author's; swift-metrics also stops a process that bootstraps it twice).
    private static func makeRegistry() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        guard MetricsSystem.factory is NOOPMetricsHandler else { return registry }
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        MetricsSystem.bootstrap(factory)
        return registry
    }
}
