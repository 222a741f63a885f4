import AgentConnectCore
import Foundation
import Logging

/// Writes one JSON object per line to stderr: `ts`, `level`, `service`, `msg`, `trace_id` and
/// `span_id` while a span is active (``Traces``), then the metadata.
package struct JSONLogHandler: LogHandler {
    package var logLevel: Logger.Level
    package var metadata: Logger.Metadata = [:]
    private let label: String

    package init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var object: [String: String] = [
            "ts": Timestamp.iso8601(Date()), "level": event.level.rawValue, "service": label, "msg": "\(event.message)",
        ]
        // `trace_id` and `span_id` of the active span, when tracing is on and one is.
        for (key, value) in Traces.logMetadata() { object[key] = "\(value)" }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            object[key] = "\(value)"
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return
        }
        line.append(0x0a)
        FileHandle.standardError.write(line)
    }
}
