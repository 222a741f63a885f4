import Testing

@testable import EventBus

@Suite("BUS_DURABILITY=auto: when WAITAOF can confirm an append")
struct BusDurabilityTests {
    let on = "# Persistence\r\naof_enabled:1\r\n"
    let off = "# Persistence\r\naof_enabled:0\r\n"
    func server(_ version: String) -> String { "# Server\r\nredis_version:\(version)\r\n" }

    @Test("Redis 7.2+ with the append-only file fsynced by Redis uses WAITAOF; appendfsync no, AOF off or an older Redis do not")
    func decide() {
        typealias Auto = BusDurability.AutoDetected
        #expect(Auto.decide(info: server("7.2.4"), persistence: on, appendfsync: "everysec"))
        #expect(Auto.decide(info: server("8.0.1"), persistence: on, appendfsync: "always"))
        // CONFIG refused (managed Redis): the setting is unknown, WAITAOF is used.
        #expect(Auto.decide(info: server("7.4.0"), persistence: on, appendfsync: nil))
        // Redis never fsyncs under `no`: every WAITAOF would time out and every webhook fail.
        #expect(!Auto.decide(info: server("7.4.0"), persistence: on, appendfsync: "no"))
        #expect(!Auto.decide(info: server("7.4.0"), persistence: off, appendfsync: "everysec"))
        #expect(!Auto.decide(info: server("7.0.15"), persistence: on, appendfsync: "always"))
    }

    @Test("the doctor's rule is the bus's: WAITAOF needs 7.2+, and confirms only with AOF on and fsyncs by Redis")
    func sharedRule() {
        #expect(BusDurability.waitAOFSupported(redisVersion: "7.2.0"))
        #expect(BusDurability.waitAOFSupported(redisVersion: "10.0"))
        #expect(!BusDurability.waitAOFSupported(redisVersion: "7.1.9"))
        #expect(!BusDurability.waitAOFSupported(redisVersion: "unknown"))
        #expect(BusDurability.waitAOFConfirms(redisVersion: "7.2.4", aofEnabled: true, appendfsync: "always"))
        #expect(!BusDurability.waitAOFConfirms(redisVersion: "7.2.4", aofEnabled: true, appendfsync: "NO"))
        #expect(!BusDurability.waitAOFConfirms(redisVersion: "7.2.4", aofEnabled: false, appendfsync: "always"))
    }
}
