import AgentConnectCore
import NIOConcurrencyHelpers
import Tracing

/// Spans that outlive the code that starts them, by key: a voice prompt's span stays open from the
/// prompt until the last token of its answer reaches the caller.
///
/// Starting a span ends the table's other open spans (a newer prompt supersedes them); the owner
/// ends what is left when it goes away (``endAll(event:)``). While tracing is off nothing is kept.
package final class OpenSpans: Sendable {
    private let spans = NIOLockedValueBox<[String: any Span]>([:])

    package init() {}

    /// Starts span `name` under `key` as the root of a new trace and returns its `traceparent`, or
    /// `fallback` when tracing is off.
    package func start(
        _ name: String, key: String, kind: SpanKind = .server, attributes: [String: String] = [:], fallback: String
    ) -> String {
        guard Traces.makesSpans else { return fallback }
        let span = Tracing.startSpan(name, context: .topLevel, ofKind: kind)
        for (key, value) in attributes { span.attributes[key] = value }
        // No traceparent: tracing is off, the span is a no-op and nothing is kept.
        let traceparent = Traces.traceparent(of: span.context)
        let superseded: [any Span] = spans.withLockedValue { spans in
            let others = Array(spans.values)
            spans.removeAll()
            if traceparent != nil { spans[key] = span }
            return others
        }
        for other in superseded { finish(other, event: "superseded") }
        return traceparent ?? fallback
    }

    /// Adds event `name` to the span under `key`, when it is open.
    package func event(_ key: String, _ name: String) {
        guard let span = spans.withLockedValue({ $0[key] }) else { return }
        span.addEvent(SpanEvent(name: name))
    }

    /// Ends the span under `key` (after event `event`, when given).
    package func end(_ key: String, event: String? = nil) {
        guard let span = spans.withLockedValue({ $0.removeValue(forKey: key) }) else { return }
        finish(span, event: event)
    }

    /// Ends every open span after event `event` (an interrupt, the call's end).
    package func endAll(event: String) {
        let open: [any Span] = spans.withLockedValue { spans in
            defer { spans.removeAll() }
            return Array(spans.values)
        }
        for span in open { finish(span, event: event) }
    }

    private func finish(_ span: any Span, event: String?) {
        if let event { span.addEvent(SpanEvent(name: event)) }
        span.end()
    }
}
