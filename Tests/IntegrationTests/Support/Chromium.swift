import AgentConnectCore
import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A headless Chromium driven over the DevTools protocol (Debian's `chromium`).
final class Chromium: Sendable {
    let process: Process
    let profile: String
    let port: Int

    static let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func launch() async throws -> Chromium {
        guard let binary else { throw TestFailure("chromium is not installed (apt-get install chromium)") }
        let profile = NSTemporaryDirectory() + "agentconnect-chromium-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--remote-allow-origins=*", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--remote-debugging-port=0",
            "--user-data-dir=\(profile)", "--window-size=1280,900", "about:blank",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: profile + "/DevToolsActivePort", encoding: .utf8),
                let port = text.split(separator: "\n").first.flatMap({ Int($0) })
            {
                return Chromium(process: process, profile: profile, port: port)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.terminate()
        throw TestFailure("chromium did not open its DevTools port")
    }

    private init(process: Process, profile: String, port: Int) {
        self.process = process
        self.profile = profile
        self.port = port
    }

    func close() {
        kill(process.processIdentifier, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(process.processIdentifier, &status, 0)
        try? FileManager.default.removeItem(atPath: profile)
    }

    /// Runs `body` with the first page's DevTools session.
    func withPage<T: Sendable>(_ body: @escaping @Sendable (DevToolsPage) async throws -> T) async throws -> T {
        let list = try await TestStack.request(.GET, "http://127.0.0.1:\(port)/json/list").json
        guard let url = list.array?.first(where: { $0["type"]?.string == "page" })?["webSocketDebuggerUrl"]?.string else {
            throw TestFailure("no page target in \(list)")
        }
        let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
        _ = try await WebSocketClient.connect(
            url: url, configuration: WebSocketClientConfiguration(maxFrameSize: 64 << 20), logger: Logger(label: "devtools")
        ) { inbound, outbound, _ in
            let page = DevToolsPage(outbound: outbound)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 64 << 20) {
                        if case .text(let text) = message, let json = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) {
                            page.received(json)
                        }
                    }
                }
                do {
                    let value = try await body(page)
                    result.withLockedValue { $0 = .success(value) }
                } catch {
                    result.withLockedValue { $0 = .failure(error) }
                }
                group.cancelAll()
            }
        }
        guard let outcome = result.withLockedValue({ $0 }) else { throw TestFailure("the DevTools session ended early") }
        return try outcome.get()
    }
}

/// One page's DevTools session: commands by id, answers matched back.
final class DevToolsPage: Sendable {
    private let outbound: WebSocketOutboundWriter
    private let pending = NIOLockedValueBox<(next: Int, waiting: [Int: CheckedContinuation<JSONValue, any Error>])>((1, [:]))

    init(outbound: WebSocketOutboundWriter) {
        self.outbound = outbound
    }

    func received(_ message: JSONValue) {
        guard let id = message["id"]?.double.map({ Int($0) }) else { return }
        let waiter = pending.withLockedValue { $0.waiting.removeValue(forKey: id) }
        if let error = message["error"] {
            waiter?.resume(throwing: TestFailure("DevTools error: \(error.compactJSON)"))
        } else {
            waiter?.resume(returning: message["result"] ?? .null)
        }
    }

    /// Sends a command and waits for its result.
    func send(_ method: String, _ params: JSONValue = [:]) async throws -> JSONValue {
        let id = pending.withLockedValue { state -> Int in
            defer { state.next += 1 }
            return state.next
        }
        let command: JSONValue = ["id": .number(Double(id)), "method": .string(method), "params": params]
        return try await withCheckedThrowingContinuation { continuation in
            pending.withLockedValue { $0.waiting[id] = continuation }
            Task {
                do {
                    try await outbound.write(.text(command.compactJSON))
                } catch {
                    pending.withLockedValue { $0.waiting.removeValue(forKey: id) }?.resume(throwing: error)
                }
            }
        }
    }

    /// Evaluates JavaScript in the page and returns its value.
    @discardableResult
    func evaluate(_ expression: String) async throws -> JSONValue {
        let result = try await send("Runtime.evaluate", ["expression": .string(expression), "awaitPromise": true, "returnByValue": true])
        if let exception = result["exceptionDetails"] { throw TestFailure("JavaScript failed: \(exception.compactJSON)") }
        return result["result"]?["value"] ?? .null
    }

    /// Polls a JavaScript condition until it is true.
    func waitFor(_ condition: String, timeout: Duration = .seconds(10)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await evaluate("Boolean(\(condition))").bool == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
