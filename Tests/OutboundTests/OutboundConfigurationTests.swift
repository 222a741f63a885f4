import AgentConnectCore
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import Outbound

@Suite("outbound configuration: delivery rows' retention")
struct OutboundConfigurationTests {
    static let required = [
        "OUTBOUND_API_TOKEN": "token", "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000001", "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9", "TWILIO_CONVERSATIONS_BASE_URL": "http://127.0.0.1:9",
    ]

    func configuration(_ settings: [String: String]) throws -> OutboundConfiguration {
        try OutboundConfiguration(environment: Environment(Self.required.merging(settings) { $1 }))
    }

    @Test("rows are kept 30 days by default, or as long as the streams keep entries when that is longer; 0 keeps them forever")
    func defaults() throws {
        #expect(try configuration([:]).deliveryRetentionSeconds == 30 * 86_400)
        #expect(try configuration(["BUS_STREAM_RETENTION_SECONDS": "\(40 * 86_400)"]).deliveryRetentionSeconds == 40 * 86_400)
        #expect(try configuration(["DELIVERY_RETENTION_SECONDS": "0"]).deliveryRetentionSeconds == 0)
        #expect(try configuration(["DELIVERY_RETENTION_SECONDS": "\(7 * 86_400)"]).deliveryRetentionSeconds == 7 * 86_400)
    }

    @Test("a retention shorter than the streams' is refused: a row must outlive every entry that could send its reply again")
    func shorterThanStreams() {
        #expect(throws: ConfigurationError.self) { try configuration(["DELIVERY_RETENTION_SECONDS": "3600"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["DELIVERY_RETENTION_SECONDS": "-1"]) }
    }
}

@Suite("outbound's delivery retention sweep")
struct DeliveryRetentionTests {
    @Test("a sweep deletes batch after batch until one comes back short, and counts what went")
    func sweepsInBatches() async throws {
        let answers = NIOLockedValueBox<[Int]>([3, 3, 1, 3])
        let limits = NIOLockedValueBox<[Int]>([])
        let retention = DeliveryRetention(batch: 3, logger: Logger(label: "test")) { limit in
            limits.withLockedValue { $0.append(limit) }
            return answers.withLockedValue { $0.removeFirst() }
        }
        #expect(try await retention.sweep() == 7)
        #expect(limits.withLockedValue { $0 } == [3, 3, 3])
        // Nothing past the retention: one statement.
        answers.withLockedValue { $0 = [0] }
        #expect(try await retention.sweep() == 0)
    }

    @Test("a failed statement ends the sweep with its error (the next sweep retries)")
    func failure() async throws {
        let retention = DeliveryRetention(batch: 3, logger: Logger(label: "test")) { _ in throw CancellationError() }
        await #expect(throws: CancellationError.self) { try await retention.sweep() }
    }
}
