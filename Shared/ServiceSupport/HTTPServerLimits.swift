import AgentConnectCore
import Hummingbird
import HummingbirdCore
import NIOCore

/// Limits on the HTTP connections a service accepts, so one slow client cannot hold it.
///
/// `idleTimeout` closes a connection on which nothing was read for that long while no response is
/// being written: a client that never finishes its headers (counted from connect), trickles its body,
/// or keeps an idle keep-alive connection. (On voice-relay, upgraded WebSockets have their own
/// limits, `VOICE_IDLE_TIMEOUT_SECONDS` and `VOICE_MAX_SOCKETS`.)
package struct HTTPServerLimits: Sendable {
    /// Closes connections idle this long (`HTTP_IDLE_TIMEOUT_SECONDS`).
    package var idleTimeout: Duration

    /// 30 s: well above any honest client's gap between bytes, well below a slow client's patience.
    package static let standard = HTTPServerLimits(idleTimeout: .seconds(30))

    package init(idleTimeout: Duration) {
        self.idleTimeout = idleTimeout
    }

    /// Reads `HTTP_IDLE_TIMEOUT_SECONDS` (1…3600, default 30).
    package init(environment: AgentConnectCore.Environment, defaultIdleSeconds: Int = 30) throws {
        idleTimeout = .seconds(try environment.int("HTTP_IDLE_TIMEOUT_SECONDS", default: defaultIdleSeconds, range: 1...3600))
    }

    /// The HTTP/1 channel configuration with these limits.
    package var http1: HTTP1Channel.Configuration {
        HTTP1Channel.Configuration(idleTimeout: TimeAmount.nanoseconds(idleTimeout.nanoseconds))
    }
}
