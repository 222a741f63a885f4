import AgentConnectCore
import Logging
import Metrics
import ServiceLifecycle

/// Reports, every few seconds, how long each stream is and how many entries a group has not yet
/// acknowledged: `agentconnect_stream_length{stream}` and `agentconnect_stream_pending{stream,group}`,
/// with `dimensions` added (`redis="main"` or `redis="calls"` when calls are on a Redis of their own).
package struct StreamLagReporter: Service {
    let bus: any EventBus
    let group: String
    let dimensions: [(String, String)]
    let streams: @Sendable () -> [String]
    let interval: Duration
    let logger: Logger

    package init(
        bus: any EventBus, group: String, dimensions: [(String, String)] = [], interval: Duration = .seconds(5), logger: Logger,
        streams: @escaping @Sendable () -> [String]
    ) {
        self.bus = bus
        self.group = group
        self.dimensions = dimensions
        self.streams = streams
        self.interval = interval
        self.logger = logger
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                var lengths: [String: Int] = [:]
                var pending: [String: Int] = [:]
                for stream in streams() {
                    let label = streamLabel(stream)
                    lengths[label, default: 0] += (try? await bus.length(of: stream)) ?? 0
                    pending[label, default: 0] += (try? await bus.pendingCount(group, stream: stream)) ?? 0
                }
                for (label, value) in lengths {
                    Gauge(label: "agentconnect_stream_length", dimensions: [("stream", label)] + dimensions).record(value)
                }
                for (label, value) in pending {
                    Gauge(label: "agentconnect_stream_pending", dimensions: [("stream", label), ("group", group)] + dimensions).record(value)
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
