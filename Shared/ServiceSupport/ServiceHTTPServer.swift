import Hummingbird
import Logging
import ServiceLifecycle

/// The HTTP server every service runs: bound to `HTTP_HOST:HTTP_PORT`, named after the service,
/// reporting ready once it listens, closing idle and slow connections (``HTTPServerLimits``).
package enum ServiceHTTPServer {
    package static func make<Context: RequestContext>(
        router: Router<Context>, common: CommonConfiguration, name: String, health: HealthState, logger: Logger,
        limits: HTTPServerLimits = .standard
    ) -> some Service where Context.Source == ApplicationRequestContextSource {
        Application(
            router: router, server: .http1(configuration: limits.http1),
            configuration: .init(address: .hostname(common.host, port: common.port), serverName: name),
            onServerRunning: { _ in health.markReady() }, logger: logger)
    }
}
