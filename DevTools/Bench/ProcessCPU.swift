import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// CPU time (user + system) of the processes under test, read from `/proc/<pid>/stat`: the figure
/// that does not move with machine noise (a busy neighbour makes a message slower, not costlier).
struct ProcessCPU: Sendable {
    /// A process to watch, by name (`ingress`) and pid, or by a command-line prefix (every PostgreSQL
    /// backend serving the bench database: `postgres: agentconnect agentconnect_bench`).
    enum Target: Sendable {
        case pid(String, Int32)
        case commandPrefix(String, String)

        var name: String {
            switch self {
            case .pid(let name, _), .commandPrefix(let name, _): return name
            }
        }
    }

    let targets: [Target]

    /// Parses `name=pid` and `name=~command prefix` options; pids of 0 are dropped.
    init(options: [String]) {
        targets = options.compactMap { option in
            guard let equals = option.firstIndex(of: "=") else { return nil }
            let name = String(option[..<equals])
            let value = option[option.index(after: equals)...]
            if value.hasPrefix("~") { return .commandPrefix(name, String(value.dropFirst())) }
            guard let pid = Int32(value), pid > 0 else { return nil }
            return .pid(name, pid)
        }
    }

    /// CPU seconds so far of each target, by pid (a command prefix may match several processes).
    struct Snapshot: Sendable {
        var seconds: [String: [Int32: Double]] = [:]
    }

    func snapshot() -> Snapshot {
        var result = Snapshot()
        for target in targets {
            switch target {
            case .pid(let name, let pid):
                if let value = Self.cpuSeconds(pid) { result.seconds[name, default: [:]][pid] = value }
            case .commandPrefix(let name, let prefix):
                for pid in Self.pids(commandPrefix: prefix) {
                    if let value = Self.cpuSeconds(pid) { result.seconds[name, default: [:]][pid] = value }
                }
            }
        }
        return result
    }

    /// CPU milliseconds each target spent between two snapshots, divided by `count` (messages or
    /// turns), in target order; a process born in between counts from zero.
    func perItem(from start: Snapshot, to end: Snapshot, count: Int) -> [(name: String, milliseconds: Double)] {
        targets.map { target in
            let before = start.seconds[target.name] ?? [:]
            let after = end.seconds[target.name] ?? [:]
            let spent = after.reduce(0.0) { sum, item in sum + max(0, item.value - (before[item.key] ?? 0)) }
            return (target.name, count > 0 ? spent * 1000 / Double(count) : 0)
        }
    }

    /// `utime + stime` of a process in seconds (fields 14 and 15 of `/proc/<pid>/stat`).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3, so utime (14) is index 11 here.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(ticksPerSecond)
    }

    private static let ticksPerSecond: Int = {
        #if canImport(Glibc)
        return max(1, sysconf(Int32(_SC_CLK_TCK)))
        #else
        return 100
        #endif
    }()

    /// Pids whose command line starts with `prefix`.
    static func pids(commandPrefix prefix: String) -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name -> Int32? in
            guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
            let command = String(decoding: data.split(separator: 0).first ?? [], as: UTF8.self)
            return command.hasPrefix(prefix) ? pid : nil
        }
    }
}

/// The machine's load while a figure was measured: the 1-minute load average and how busy all cores
/// were (from `/proc/stat`), so a reader can judge the latency figures next to it.
struct MachineLoad: Sendable {
    private let busy: UInt64
    private let total: UInt64

    init() {
        let line = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?.split(separator: "\n").first ?? ""
        let values = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        let idle = values.count > 4 ? values[3] + values[4] : 0
        total = values.reduce(0, +)
        busy = total - idle
    }

    /// Percent of all cores busy since `start` (every process, ours and others').
    func busyPercent(since start: MachineLoad) -> Double {
        let spent = total &- start.total
        return spent > 0 ? Double(busy &- start.busy) * 100 / Double(spent) : 0
    }

    /// The 1-minute load average.
    static var loadAverage: Double {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return Double(text.split(separator: " ").first ?? "") ?? 0
    }
}
