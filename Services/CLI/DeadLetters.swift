import AgentConnectCore
import ArgumentParser
import EventBus
import Foundation
import ServiceSupport

/// `agentconnect dead-letters list|replay|drop`: the entries consumers gave up on (`tac:dead`).
struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters", abstract: "List, replay or drop the entries consumers gave up on (tac:dead).",
        discussion:
            "Reads REDIS_URL (and the rest of the common settings) like the services do; --calls: the dead letters of the calls' Redis (VOICE_REDIS_URL).",
        subcommands: [List.self, Replay.self, Drop.self])

    /// `--calls`: which Redis's `tac:dead`.
    struct Target: ParsableArguments {
        @Flag(help: "The calls' Redis (VOICE_REDIS_URL) instead of REDIS_URL's.")
        var calls = false
    }

    /// `list [--limit N] [--after ID] [--json]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show dead entries, oldest first: where each came from and why it failed (never its body).")

        @Option(help: "At most this many entries.")
        var limit: Int = 100

        @Option(help: "Start after this dead-letter id (paging).")
        var after: String?

        @Flag(help: "Print JSON: {\"total\": N, \"entries\": [{id, stream, group, entry, deliveries, error, type, eventId}]}.")
        var json = false

        @OptionGroup var target: Target

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1...10000") }
            if let after { try DeadLetters.validate(ids: [after]) }
        }

        func run() async throws {
            try await DeadLetters.withStream(calls: target.calls) { dead in
                let total = try await dead.count()
                let entries = try await dead.list(limit: limit, after: after)
                if json {
                    print((["total": .number(Double(total)), "entries": .array(entries.map(\.json))] as JSONValue).compactJSON)
                    return
                }
                guard !entries.isEmpty else {
                    print(total == 0 ? "no dead letters" : "no dead letters after \(after ?? "-") (\(total) in all)")
                    return
                }
                let rows =
                    [["ID", "STREAM", "GROUP", "ENTRY", "DELIVERIES", "TYPE", "ERROR"]]
                    + entries.map { entry in
                        [
                            entry.id, entry.stream ?? "?", entry.group ?? "?", entry.entry ?? "?", entry.deliveries.map(String.init) ?? "?",
                            entry.eventType ?? "?", (entry.error ?? "").replacingOccurrences(of: "\n", with: " "),
                        ]
                    }
                let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
                for row in rows {
                    let padded = (0..<6).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                    print((padded + [String(row[6].prefix(160))]).joined(separator: "  "))
                }
                print("\(entries.count) of \(total) dead letter(s)\(entries.count < total ? "; page on with --after \(entries.last?.id ?? "")" : "")")
            }
        }
    }

    /// `replay ID… | --all`.
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead entries back on their original stream (as new entries) and remove them from tac:dead, atomically per entry.",
            discussion:
                "An entry dead for longer than DELIVERY_RETENTION_SECONDS - BUS_STREAM_RETENTION_SECONDS is refused: its reply's delivery row may be gone, so a replay could send the reply twice."
        )

        @Argument(help: "Dead-letter ids (from list).")
        var ids: [String] = []

        @Flag(help: "Every entry dead at the time the command starts.")
        var all = false

        @OptionGroup var target: Target

        func validate() throws { try DeadLetters.validate(ids: ids, all: all) }

        func run() async throws {
            // Entries dead longer than outbound keeps delivery rows beyond the streams are refused.
            let environment = Environment.process()
            let streamRetention = try CommonConfiguration(environment: environment, defaultPort: 8080).streamRetentionSeconds
            let retention = try DeliveryRetentionSetting.seconds(environment, streamRetentionSeconds: streamRetention)
            let window = DeliveryRetentionSetting.replayWindowSeconds(retention: retention, streamRetention: streamRetention)
            try await DeadLetters.act(on: ids, all: all, calls: target.calls) { dead, id in
                switch try await dead.replay(id, windowSeconds: window) {
                case .replayed(let stream, let newId): return "replayed \(id) → \(stream) \(newId)"
                case .notFound: return nil
                }
            }
        }
    }

    /// `drop ID… | --all`.
    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead entries for good.")

        @Argument(help: "Dead-letter ids (from list).")
        var ids: [String] = []

        @Flag(help: "Every entry dead at the time the command starts.")
        var all = false

        @OptionGroup var target: Target

        func validate() throws { try DeadLetters.validate(ids: ids, all: all) }

        func run() async throws {
            try await DeadLetters.act(on: ids, all: all, calls: target.calls) { dead, id in try await dead.drop(id) ? "dropped \(id)" : nil }
        }
    }

    /// Ids look like stream entry ids (`1700000000000-0`); exactly one of ids or `--all`.
    static func validate(ids: [String], all: Bool? = nil) throws {
        if let all {
            if all && !ids.isEmpty { throw ValidationError("pass ids or --all, not both") }
            if !all && ids.isEmpty { throw ValidationError("pass the ids to act on (from dead-letters list), or --all") }
        }
        for id in ids {
            let parts = id.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }) else {
                throw ValidationError("\(id) is not a stream entry id like 1700000000000-0")
            }
        }
    }

    /// The ids given, or with `--all` every entry up to the newest one now.
    static func targets(_ ids: [String], all: Bool, in dead: DeadLetterStream) async throws -> [String] {
        guard all else { return ids }
        guard let newest = try await dead.newestId() else { return [] }
        return try await dead.ids(through: newest)
    }

    /// Runs `action` on each target entry, printing what it reports; an entry it does not find
    /// (`nil`) or an error is reported on stderr, and any failure makes the exit status 1.
    static func act(
        on ids: [String], all: Bool, calls: Bool, _ action: @escaping (DeadLetterStream, String) async throws -> String?
    ) async throws {
        try await withStream(calls: calls) { dead in
            var failures = 0
            for id in try await targets(ids, all: all, in: dead) {
                do {
                    if let done = try await action(dead, id) {
                        print(done)
                    } else {
                        failures += 1
                        FileHandle.standardError.write(Data("not found: \(id)\n".utf8))
                    }
                } catch {
                    failures += 1
                    FileHandle.standardError.write(Data("cannot act on \(id): \(error)\n".utf8))
                }
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }

    /// Runs `body` against `tac:dead` on the configured Redis (`calls`: the calls' Redis).
    static func withStream(calls: Bool, _ body: (DeadLetterStream) async throws -> Void) async throws {
        let common = try CommonConfiguration(environment: .process(), defaultPort: 8080)
        if calls && common.voiceRedis == nil {
            throw CLIError("--calls: VOICE_REDIS_URL is not set, or names REDIS_URL's own Redis (calls share it)")
        }
        let redis = calls ? common.callsRedis : common.redis
        let client = RedisClient(configuration: redis, logger: OperatorLogging.quiet)
        defer { client.shutdown() }
        do {
            try await body(DeadLetterStream(client: client))
        } catch let error as BusError {
            throw CLIError("Redis at \(redis.host):\(redis.port)/\(redis.database): \(error)")
        }
    }
}
