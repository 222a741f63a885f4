import AgentConnectCore
import Foundation

/// Latency samples and their percentiles (exact: the samples are sorted).
struct Samples: Sendable {
    private(set) var values: [Double] = []

    mutating func add(_ duration: Duration) {
        values.append(duration.inMilliseconds)
    }

    mutating func add(milliseconds: Double) {
        values.append(milliseconds)
    }

    /// The `p`-th percentile in milliseconds (nil without samples).
    func percentile(_ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let index = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[index]
    }

    var count: Int { values.count }
}

/// `12.3` or `–`.
func format(_ value: Double?, digits: Int = 2) -> String {
    value.map { String(format: "%.\(digits)f", $0) } ?? "–"
}
