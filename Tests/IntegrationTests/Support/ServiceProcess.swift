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
    private let exit = NIOLockedValueBox<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))

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
            let waiters = box.withLockedValue { state -> [CheckedContinuation<Int32, Never>] in
                state.status = finished.terminationStatus
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: finished.terminationStatus) }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { exit.withLockedValue { $0.status == nil } }

    /// Waits until `GET /health/ready` answers 200.
    func waitReady(timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard isRunning else { throw TestFailure("\(name) exited early:\n\(log)") }
            if let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/ready"), timeout: .milliseconds(500)),
                response.status == .ok
            {
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

    func waitForExit(timeout: Duration) async -> Int32? {
        await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let status = self.exit.withLockedValue { state -> Int32? in
                        if state.status == nil { state.waiters.append(continuation) }
                        return state.status
                    }
                    if let status { continuation.resume(returning: status) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            if first == nil {
                kill(self.process.processIdentifier, SIGKILL)
            }
            group.cancelAll()
            // Let the exit waiter finish once the process is gone.
            _ = await group.next()
            return first
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
