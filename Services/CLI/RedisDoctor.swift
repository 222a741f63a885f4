import AgentConnectCore
import EventBus
import Foundation
import Logging

/// `doctor`'s Redis checks: reachable and recent enough, never evicting, the consumer groups in place,
/// and the dead letters waiting.
struct RedisDoctor: Sendable {
    let configuration: RedisConfiguration
    /// `TAC_INBOUND_PARTITIONS`.
    let partitions: Int
    /// `BUS_DURABILITY`.
    let durability: BusDurability
    let timeout: Duration
    /// The Redis of calls (`VOICE_REDIS_URL`): no webhook waits on its fsync, and it has no outbound group.
    var voice = false

    private var target: String { "\(configuration.host):\(configuration.port)/\(configuration.database)" }

    /// Its checks' names start with `voice ` for the calls' Redis.
    func checks() async -> [DoctorCheck] {
        let results = await rawChecks()
        guard voice else { return results }
        return results.map { check in
            var check = check
            check.name = "voice \(check.name)"
            return check
        }
    }

    private func rawChecks() async -> [DoctorCheck] {
        let client = RedisClient(configuration: configuration, logger: OperatorLogging.quiet)
        defer { client.shutdown() }
        let info: [String: String]
        do {
            info = try await withTimeout(timeout, "Redis at \(target)") {
                let replies = try await client.send([
                    ["INFO", "server"], ["INFO", "memory"], ["INFO", "persistence"], ["CONFIG", "GET", "appendfsync"],
                ])
                if let failure = replies.prefix(3).first(where: \.isError) { throw BusError(.server, "\(failure)") }
                var info = Self.parseInfo(replies.prefix(3).compactMap(\.string).joined(separator: "\n"))
                // CONFIG is often disabled on managed Redis: then appendfsync stays unknown.
                if let pair = replies[3].array, pair.count == 2, let value = pair[1].string { info["appendfsync"] = value }
                return info
            }
        } catch {
            return [
                .fail(
                    "redis", "cannot use Redis at \(target): \(DoctorCheck.describe(error))",
                    fix: "check \(configuration.variable) (host, port, password, database) and that Redis runs")
            ]
        }
        var results = [version(info), eviction(info), persistence(info)]
        do {
            results += try await withTimeout(timeout, "stream groups on \(target)") { try await groups(client) }
        } catch {
            results.append(
                .fail(
                    "stream groups", "cannot read them: \(DoctorCheck.describe(error))",
                    fix: "check that the \(configuration.variable) user may run XINFO, SCAN and XLEN"))
        }
        return results
    }

    private func version(_ info: [String: String]) -> DoctorCheck {
        let version = info["redis_version"] ?? "unknown"
        let parts = version.split(separator: ".").compactMap { Int($0) }
        if (parts.first ?? 0) < 7 {
            return .fail(
                "redis", "Redis \(version) at \(target) is too old: AgentConnect needs 7.0 or later (XAUTOCLAIM, stream trimming)",
                fix: "upgrade Redis to 7.2 or later")
        }
        return .ok("redis", "Redis \(version) at \(target)")
    }

    /// Whether an acknowledged webhook survives a Redis crash: `WAITAOF` (Redis 7.2+ with the
    /// append-only file), or `appendfsync always`.
    private func persistence(_ info: [String: String]) -> DoctorCheck {
        let name = "redis durability"
        if voice {
            let fsync = info["appendfsync"] ?? "unknown (CONFIG GET refused)"
            guard info["aof_enabled"] == "1" else {
                return .warn(
                    name, "appendonly off: a Redis restart loses live calls' state and turns in flight",
                    fix: "turn on appendonly with appendfsync everysec (fsynced once a second, in the background)")
            }
            switch fsync {
            case "everysec": return .ok(name, "appendonly with appendfsync everysec: fsynced once a second; no voice turn waits for it")
            case "always": return .ok(name, "appendonly with appendfsync always: every voice turn waits for two fsyncs (everysec does not)")
            default:
                return .warn(
                    name, "appendfsync \(fsync): a machine crash can lose far more than the last seconds of calls' writes",
                    fix: "set appendfsync everysec")
            }
        }
        let version = info["redis_version"] ?? ""
        let waitAOFSupported = BusDurability.waitAOFSupported(redisVersion: version)
        let aof = info["aof_enabled"] == "1"
        let fsync = info["appendfsync"]
        let waitAOFConfirms = BusDurability.waitAOFConfirms(redisVersion: version, aofEnabled: aof, appendfsync: fsync)
        let waitAOFMissing = !waitAOFSupported ? "Redis 7.2 or later" : !aof ? "appendonly yes" : "appendfsync everysec or always"
        switch durability {
        case .waitAOF:
            guard waitAOFConfirms else {
                return .fail(
                    name, "BUS_DURABILITY=waitaof but WAITAOF needs \(waitAOFMissing)",
                    fix: "turn on appendonly (appendfsync everysec or always) on Redis 7.2+, or set BUS_DURABILITY=auto")
            }
            return .ok(name, "WAITAOF: an accepted webhook is on disk before Twilio gets 200")
        case .auto where waitAOFConfirms:
            return .ok(name, "WAITAOF (BUS_DURABILITY=auto): an accepted webhook is on disk before Twilio gets 200")
        default:
            if aof && fsync == "always" { return .ok(name, "appendonly with appendfsync always") }
            let found = aof ? "appendfsync \(fsync ?? "unknown (CONFIG GET refused)")" : "appendonly off"
            return .warn(
                name, "\(found): a Redis crash can lose webhooks already acknowledged to Twilio (WAITAOF needs \(waitAOFMissing))",
                fix: "run Redis 7.2+ with appendonly yes (BUS_DURABILITY=auto uses WAITAOF), or appendfsync always")
        }
    }

    private func eviction(_ info: [String: String]) -> DoctorCheck {
        let policy = info["maxmemory_policy"] ?? "unknown"
        guard policy == "noeviction" else {
            return .fail(
                "redis eviction", "maxmemory_policy is \(policy): Redis may evict streams, leases and deduplication keys",
                fix: "set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, or the managed service's parameter group)")
        }
        return .ok("redis eviction", "maxmemory_policy noeviction")
    }

    /// The `agents` group on every inbound partition and `outbound` on `tac:outbound` (created by the
    /// services when they start), no stray partitions, and the dead-letter count.
    private func groups(_ client: RedisClient) async throws -> [DoctorCheck] {
        let inbound = (0..<partitions).map(Streams.inboundPartition)
        let replies = try await client.send(
            inbound.map { ["XINFO", "GROUPS", .string($0)] } + [["XINFO", "GROUPS", .string(Streams.outbound)], ["XLEN", .string(Streams.dead)]])
        let withAgents = zip(inbound, replies).filter { Self.groupNames($0.1).contains("agents") }.map(\.0)
        let outboundReady = voice || Self.groupNames(replies[inbound.count]).contains("outbound")
        var results: [DoctorCheck] = []
        let stray = try await strayPartitions(client)
        if !stray.isEmpty {
            results.append(
                .fail(
                    "stream groups",
                    "inbound partitions beyond TAC_INBOUND_PARTITIONS=\(partitions) exist: \(stray.prefix(5).joined(separator: ", "))",
                    fix: "use the same TAC_INBOUND_PARTITIONS on every service (and drain the extra partitions)"))
        } else if !withAgents.isEmpty && withAgents.count < inbound.count {
            let missing = inbound.filter { !withAgents.contains($0) }
            results.append(
                .fail(
                    "stream groups",
                    "group agents is missing on \(missing.count) of \(partitions) partitions (\(missing.prefix(3).joined(separator: ", "))…)",
                    fix: "use the same TAC_INBOUND_PARTITIONS on every service"))
        } else if withAgents.isEmpty || !outboundReady {
            var absent: [String] = []
            if withAgents.isEmpty { absent.append("agents on tac:inbound:*") }
            if !outboundReady { absent.append("outbound on \(Streams.outbound)") }
            results.append(
                .warn(
                    "stream groups", "not created yet: \(absent.joined(separator: ", "))",
                    fix: voice
                        ? "start agent-worker once (it creates the group); until then no call is answered"
                        : "start agent-worker and outbound once (they create their groups); until then nothing is consumed"))
        } else {
            results.append(
                .ok("stream groups", "agents on \(partitions) inbound partitions" + (voice ? "" : ", outbound on \(Streams.outbound)")))
        }
        let dead = Int(replies[inbound.count + 1].integer ?? 0)
        if dead > 0 {
            results.append(
                .warn(
                    "dead letters", "\(dead) entries in \(Streams.dead)",
                    fix: voice
                        ? "inspect with agentconnect dead-letters list --calls, then replay or drop them (--calls)"
                        : "inspect with agentconnect dead-letters list, then replay or drop them"
                ))
        } else {
            results.append(.ok("dead letters", "none in \(Streams.dead)"))
        }
        return results
    }

    /// Inbound partition streams with an index at or beyond the configured partition count.
    private func strayPartitions(_ client: RedisClient) async throws -> [String] {
        var stray: [String] = []
        var cursor = "0"
        repeat {
            let reply = try await client.command("SCAN", .string(cursor), "MATCH", .string(Streams.inbound + ":*"), "COUNT", "1000", "TYPE", "stream")
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw BusError(.protocolViolation, "SCAN returned \(reply)")
            }
            cursor = next
            for key in parts[1].array?.compactMap(\.string) ?? [] {
                if let index = Int(key.dropFirst(Streams.inbound.count + 1)), index >= partitions { stray.append(key) }
            }
        } while cursor != "0"
        return stray.sorted()
    }

    /// Group names in an `XINFO GROUPS` reply (`[[name, agents, consumers, 2, …], …]`); none for an error.
    static func groupNames(_ reply: RedisValue) -> [String] {
        (reply.array ?? []).compactMap { row in
            let fields = row.array ?? []
            var index = 0
            while index + 1 < fields.count {
                if fields[index].string == "name" { return fields[index + 1].string }
                index += 2
            }
            return nil
        }
    }

    /// `key:value` lines of `INFO`.
    static func parseInfo(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return values
    }
}

/// Loggers for the clients the CLI uses: their own logs would only clutter an operator's terminal.
enum OperatorLogging {
    static let quiet = Logger(label: "agentconnect", factory: { _ in SwiftLogNoOpLogHandler() })
}
