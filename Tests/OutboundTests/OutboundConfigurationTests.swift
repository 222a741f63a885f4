import AgentConnectCore
import Logging
import NIOConcurrencyHelpers
import ServiceSupport
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

    @Test("rows are kept 30 days by default, or a week past the streams' retention when that is longer; 0 keeps them forever")
    func defaults() throws {
        #expect(try configuration([:]).deliveryRetentionSeconds == 30 * 86_400)
        #expect(try configuration(["BUS_STREAM_RETENTION_SECONDS": "\(40 * 86_400)"]).deliveryRetentionSeconds == 47 * 86_400)
        #expect(try configuration(["DELIVERY_RETENTION_SECONDS": "0"]).deliveryRetentionSeconds == 0)
        #expect(try configuration(["DELIVERY_RETENTION_SECONDS": "\(8 * 86_400)"]).deliveryRetentionSeconds == 8 * 86_400)
    }

    @Test("a retention less than a day past the streams' is refused: a row must outlive every entry that could send its reply again")
    func shorterThanStreams() {
        #expect(throws: ConfigurationError.self) { try configuration(["DELIVERY_RETENTION_SECONDS": "3600"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["DELIVERY_RETENTION_SECONDS": "\(7 * 86_400)"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["DELIVERY_RETENTION_SECONDS": "-1"]) }
        #expect(DeliveryRetentionSetting.replayWindowSeconds(retention: 30 * 86_400, streamRetention: 7 * 86_400) == 23 * 86_400)
        #expect(DeliveryRetentionSetting.replayWindowSeconds(retention: 0, streamRetention: 7 * 86_400) == nil)
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

    struct Refused: Error {}

    @Test("a failed statement ends the sweep with its error (the next sweep retries)")
    func failure() async throws {
        let retention = DeliveryRetention(batch: 3, logger: Logger(label: "test")) { _ in throw Refused() }
        await #expect(throws: Refused.self) { try await retention.sweep() }
    }
}
