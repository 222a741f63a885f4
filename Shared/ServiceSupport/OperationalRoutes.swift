import Hummingbird
import NIOCore

/// Adds `GET /health/live`, `GET /health/ready` and `GET /metrics` to a router.
package enum OperationalRoutes {
    /// - Parameter readiness: an extra dependency check (e.g. Redis reachable) for `/health/ready`.
    package static func add<Context: RequestContext>(
        to router: Router<Context>, health: HealthState, readiness: (@Sendable () async -> Bool)? = nil
    ) {
        router.get("/health/live") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"live"}"#)))
        }
        router.get("/health/ready") { _, _ in
            let phase = health.current
            var ok = phase == .ready
            if ok, let readiness { ok = await readiness() }
            let body = ok ? #"{"status":"ready"}"# : #"{"status":"\#(phase == .ready ? "degraded" : phase.rawValue)"}"#
            return Response(
                status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: Observability.registry.emitToBuffer())))
        }
    }
}
