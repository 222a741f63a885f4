import AgentConnectCore
import AsyncHTTPClient
import EventBus
import Foundation
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PostgresNIO
import Store

/// One of the harness's processes, its output in a log file.
final class HarnessProcess: Sendable {
    let name: String
    let logPath: String
    private let process: Process
    private let exit = NIOLockedValueBox<Int32?>(nil)

    init(_ executable: String, port: Int?, environment: [String: String], logDirectory: String) throws {
        name = executable
        logPath = "\(logDirectory)/\(executable)-\(port ?? 0).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process = Process()
        let binDirectory =
            ProcessInfo.processInfo.environment["AGENTCONNECT_BIN_DIR"]
            ?? {
                var url = URL(fileURLWithPath: #filePath)
                for _ in 0..<3 { url.deleteLastPathComponent() }
                return url.path + "/.build/debug"
            }()
        process.executableURL = URL(fileURLWithPath: "\(binDirectory)/\(executable)")
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        env.merge(environment) { $1 }
        if let port { env["HTTP_PORT"] = String(port) }
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        let box = exit
        process.terminationHandler = { finished in box.withLockedValue { $0 = finished.terminationStatus } }
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var exited: Int32? {
        if let status = exit.withLockedValue({ $0 }) { return status }
        var raw: Int32 = 0
        if waitpid(process.processIdentifier, &raw, WNOHANG) == process.processIdentifier {
            let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            exit.withLockedValue { $0 = status }
            return status
        }
        return nil
    }

    func waitReady(port: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if exited != nil { throw HarnessError("\(name) exited early:\n\(log)") }
            if let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/ready"), timeout: .milliseconds(500)),
                response.status == .ok, log.contains(":\(port)")
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("\(name) not ready after \(timeout):\n\(log)")
    }

    func waitExit(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exited { return status }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func stop() async {
        guard exited == nil else { return }
        kill(process.processIdentifier, SIGTERM)
        if (try? await waitExit(timeout: .seconds(5))) ?? nil == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = try? await waitExit(timeout: .seconds(5))
        }
    }
}
