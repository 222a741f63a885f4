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
        FileHandle.standardError.write(Data(line(event, at: Date())))
    }

    /// The line for `event`: one JSON object, keys sorted, then a newline (written with
    /// ``CompactJSON``: Foundation's `JSONSerialization` with sorted keys took about 7% of a worker's
    /// CPU at 1,000 calls, for a few lines a call).
    func line(_ event: LogEvent, at date: Date) -> [UInt8] {
        var object: [String: JSONValue] = [
            "ts": .string(Timestamp.iso8601(date)), "level": .string(event.level.rawValue), "service": .string(label),
            "msg": .string("\(event.message)"),
        ]
        // `trace_id` and `span_id` of the active span, when tracing is on and one is.
        for (key, value) in Traces.logMetadata() { object[key] = .string("\(value)") }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            object[key] = .string("\(value)")
        }
        // Strings only: nothing here can fail to encode.
        var line = (try? CompactJSON.encode(.object(object))) ?? []
        line.append(0x0a)
        return line
    }
}
