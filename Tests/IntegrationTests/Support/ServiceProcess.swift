import AgentConnectCore
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers

/// One of our executables running as a real process, with its output in a log file.
final class ServiceProcess: Sendable {
    let name: String
    let port: Int
    let logPath: String
    /// `INSTANCE_ID` it was started with.
    let instanceId: String?
    private let process: Process
    private let exit = NIOLockedValueBox<Int32?>(nil)

    /// Starts `executable` with `environment` (on top of PATH/HOME) and `arguments`.
    init(_ executable: String, port: Int, environment: [String: String], arguments: [String] = [], logDirectory: String) throws {
        name = executable
        self.port = port
        instanceId = environment["INSTANCE_ID"]
        logPath = "\(logDirectory)/\(executable)-\(port).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process = Process()
        process.executableURL = URL(fileURLWithPath: "\(TestEnvironment.binDirectory)/\(executable)")
        process.arguments = arguments
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        env.merge(environment) { _, new in new }
        env["HTTP_PORT"] = String(port)
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        let box = exit
        process.terminationHandler = { finished in
            box.withLockedValue { $0 = finished.terminationStatus }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool {
        if exit.withLockedValue({ $0 != nil }) { return false }
        // Without a termination report, ask the kernel (0 = exists; a reaped or zombie child counts as gone).
        var raw: Int32 = 0
        if waitpid(process.processIdentifier, &raw, WNOHANG) == process.processIdentifier {
            let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            exit.withLockedValue { $0 = status }
            return false
        }
        return true
    }

    /// Waits until `GET /health/ready` (or another health path, e.g. `/health/live` for a service
    /// whose dependencies are down on purpose) answers 200.
    func waitReady(timeout: Duration = .seconds(20), path: String = "/health/ready") async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard isRunning else { throw TestFailure("\(name) exited early:\n\(log)") }
            if let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .milliseconds(500)),
                response.status == .ok, log.contains(":\(port)")
            {
                // Our process answered (it logged its port), not another test's on a reused port.
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(name) not ready after \(timeout):\n\(log)")
    }

    /// Sends a signal and waits for the exit status.
    func signal(_ signal: Int32, timeout: Duration = .seconds(30)) async -> Int32? {
        if isRunning { kill(process.processIdentifier, signal) }
        return await waitForExit(timeout: timeout)
    }

    /// SIGTERM and the exit status.
    func terminate() async -> Int32? {
        await signal(SIGTERM)
    }

    /// Waits for the exit status; after `timeout` the process is killed. Reaps the child itself when
    /// Foundation's termination handler does not report it (it depends on SIGCHLD reaching us).
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var killed = false
        while true {
            if let status = exit.withLockedValue({ $0 }) { return killed ? nil : status }
            var raw: Int32 = 0
            let reaped = waitpid(process.processIdentifier, &raw, WNOHANG)
            if reaped == process.processIdentifier {
                // WIFEXITED: low 7 bits zero; WEXITSTATUS: the next 8 bits. Signalled: 128 + signal.
                let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                exit.withLockedValue { $0 = status }
                return killed ? nil : status
            }
            if ContinuousClock.now >= deadline {
                if killed { return nil }
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The process's output so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// A failed expectation outside `#expect`, with a message.
struct TestFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
