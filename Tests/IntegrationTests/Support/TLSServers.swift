import AgentConnectCore
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import Store

// MARK: - Servers of our own

/// A CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA.
struct TestPKI: Sendable {
    let caFile: String
    let wrongCAFile: String
    let certFile: String
    let keyFile: String

    static func make(in directory: String) async throws -> TestPKI {
        func openssl(_ arguments: [String]) async throws {
            try await runTool("/usr/bin/openssl", arguments, in: directory)
        }
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "wrong-ca"] {
            try await openssl(
                ["req", "-x509"] + curve + [
                    "-keyout", "\(name).key", "-out", "\(name).crt", "-days", "2", "-subj", "/CN=AgentConnect test \(name)",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ])
        }
        try await openssl(["req"] + curve + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(
            toFile: "\(directory)/server.ext", atomically: true, encoding: .utf8)
        try await openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2",
            "-extfile", "server.ext",
        ])
        return TestPKI(
            caFile: "\(directory)/ca.crt", wrongCAFile: "\(directory)/wrong-ca.crt", certFile: "\(directory)/server.crt",
            keyFile: "\(directory)/server.key")
    }
}

/// Runs a tool to completion, throwing with its output when it fails. The wait happens on a Dispatch
/// thread: blocking one of the cooperative pool's threads (two on two cores) for an initdb stalls
/// every other test's tasks in the process for seconds.
@discardableResult
func runTool(_ path: String, _ arguments: [String], in directory: String? = nil) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try runToolBlocking(path, arguments, in: directory) })
        }
    }
}

private func runToolBlocking(_ path: String, _ arguments: [String], in directory: String?) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else {
        throw TestFailure("\(path) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)):\n\(text)")
    }
    return text
}

/// redis-server with TLS only and an ACL user, and PostgreSQL with `ssl=on`, on free ports in a temp directory.
final class TLSServers: Sendable {
    static let defaultPostgresPassword = "pg-p@ss"
    let directory: String
    let pki: TestPKI
    let redisPort: Int
    let postgresPort: Int
    let postgresPassword = TLSServers.defaultPostgresPassword
    private let children = NIOLockedValueBox<[Process]>([])
    private let postgresData: String

    /// A `DATABASE_URL` for our PostgreSQL (the password percent-encoded; trust auth ignores it).
    func databaseURL(mode: String, root: String, host: String = "localhost") -> String {
        "postgres://agentconnect:pg-p%40ss@\(host):\(postgresPort)/agentconnect?sslmode=\(mode)&sslrootcert=\(root)"
    }

    private init(directory: String, pki: TestPKI) {
        self.directory = directory
        self.pki = pki
        redisPort = TestEnvironment.freePort()
        postgresPort = TestEnvironment.freePort()
        postgresData = "\(directory)/pgdata"
    }

    static let isRoot = getuid() == 0
    static let postgresBin: String? = {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.compactMap(Int.init).max().map { "/usr/lib/postgresql/\($0)/bin" }
    }()

    static func start(redis: Bool, postgres: Bool) async throws -> TLSServers {
        let directory = NSTemporaryDirectory() + "agentconnect-tls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let servers = TLSServers(directory: directory, pki: try await TestPKI.make(in: directory))
        do {
            if redis { try await servers.startRedis() }
            if postgres { try await servers.startPostgres() }
        } catch {
            await servers.stop()
            throw error
        }
        return servers
    }

    /// Starts a server with an empty signal mask (the test runner may block signals, and the mask
    /// survives exec; the server must stop on SIGTERM), as scripts/stack.sh does.
    private func spawn(_ command: [String], log: String) throws -> Process {
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let unblock = [
            "/usr/bin/python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])",
        ]
        var full = command
        // runuser first (it runs the rest as another user), the unblocking exec right before the server.
        let split = full.firstIndex(of: "--").map { $0 + 1 } ?? 0
        full.insert(contentsOf: unblock, at: split)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: full[0])
        process.arguments = Array(full.dropFirst())
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        children.withLockedValue { $0.append(process) }
        return process
    }

    private func startRedis() async throws {
        let process = try spawn(
            [
                "/usr/bin/redis-server",
                "--port", "0", "--tls-port", String(redisPort), "--bind", "127.0.0.1", "127.0.0.2", "--tls-cert-file", pki.certFile, "--tls-key-file",
                pki.keyFile, "--tls-ca-cert-file", pki.caFile, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
                "--user", TLSTests.redisUser, "on", ">\(TLSTests.redisPassword)", "~*", "&*", "+@all", "--user", "default", "off",
                "--enable-debug-command", "yes",
            ], log: "\(directory)/redis.log")
        var configuration = RedisConfiguration(
            host: "127.0.0.1", port: redisPort, username: TLSTests.redisUser, password: TLSTests.redisPassword, tls: true, caFile: pki.caFile)
        configuration.connectTimeout = .seconds(1)
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            guard process.isRunning else { throw TestFailure("redis-server with TLS exited:\n\(log("redis.log"))") }
            if let connection = try? await RedisConnection.connect(configuration: configuration, on: MultiThreadedEventLoopGroup.singleton) {
                connection.close()
                return
            }
            if ContinuousClock.now > deadline { throw TestFailure("redis-server with TLS not ready:\n\(log("redis.log"))") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func startPostgres() async throws {
        guard let bin = Self.postgresBin else { throw TestFailure("PostgreSQL is not installed") }
        var prefix: [String] = []
        if Self.isRoot {
            // PostgreSQL refuses to run as root: its files belong to `postgres` (see scripts/stack.sh).
            try await runTool("/usr/bin/chown", ["-R", "postgres:postgres", directory])
            prefix = ["/usr/sbin/runuser", "-u", "postgres", "--"]
        }
        try await runTool("/bin/chmod", ["600", pki.keyFile])
        let initdb = prefix + ["\(bin)/initdb", "-D", postgresData, "-U", "agentconnect", "--auth=trust", "-E", "UTF8", "--no-locale"]
        try await runTool(initdb[0], Array(initdb.dropFirst()))
        let server =
            prefix + [
                "\(bin)/postgres", "-D", postgresData, "-p", String(postgresPort), "-k", directory, "-c", "listen_addresses=127.0.0.1,127.0.0.2",
                "-c", "ssl=on", "-c", "ssl_cert_file=\(pki.certFile)", "-c", "ssl_key_file=\(pki.keyFile)", "-c", "fsync=off",
                "-c", "max_connections=50",
            ]
        let process = try spawn(server, log: "\(directory)/postgres.log")
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            guard process.isRunning else { throw TestFailure("PostgreSQL with TLS exited:\n\(log("postgres.log"))") }
            if (try? await runTool("\(bin)/pg_isready", ["-h", "127.0.0.1", "-p", String(postgresPort), "-q"])) != nil { break }
            if ContinuousClock.now > deadline { throw TestFailure("PostgreSQL with TLS not ready:\n\(log("postgres.log"))") }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await runTool(
            "\(bin)/psql",
            ["-h", "127.0.0.1", "-p", String(postgresPort), "-U", "agentconnect", "-d", "postgres", "-qc", "CREATE DATABASE agentconnect"])
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? ""
    }

    /// Stops both servers (PostgreSQL by its postmaster pid: `runuser` may not pass signals on) and removes the directory.
    func stop() async {
        if let text = try? String(contentsOfFile: "\(postgresData)/postmaster.pid", encoding: .utf8),
            let pid = text.split(separator: "\n").first.flatMap({ Int32($0) })
        {
            kill(pid, SIGINT)
        }
        for process in children.withLockedValue({ $0 }) {
            if process.isRunning { process.terminate() }
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with TLS servers of its own and always stops them.
func withTLSServers<T>(redis: Bool = true, postgres: Bool = true, _ body: (TLSServers) async throws -> T) async throws -> T {
    let servers = try await TLSServers.start(redis: redis, postgres: postgres)
    do {
        let result = try await body(servers)
        await servers.stop()
        return result
    } catch {
        let logs = servers.log("redis.log").suffix(2000) + "\n" + servers.log("postgres.log").suffix(2000)
        await servers.stop()
        throw TestFailure("\(error)\n--- server logs\n\(logs)")
    }
}
