import AgentConnectCore
import Foundation
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import NIOWebSocket

/// The sockets of one call, as ConversationRelay keeps them: the first one, and with
/// `applicationReconnect` the ones that replace it after an unexpected drop.
///
/// What Twilio documents (changelog, 2026-10-28): with `applicationReconnect="true"`, "Twilio buffers
/// up to 500 events during an unexpected connection drop and automatically replays them when it
/// successfully reconnects to your application". What it leaves open is modelled as follows (see
/// twilio-sim's README): the reconnect goes to the same URL (signed the same way) and starts with a
/// new `setup` for the same call and session; a drop is unexpected unless the application closed the
/// socket normally (1000) or refused it (1002, 1003, 1007–1010); attempts go on for
/// ``RelayCaller/reconnectWindow`` with a backoff of 100 ms doubling to 1 s.
struct Connection: Sendable {
    let caller: RelayCaller
    let path: String
    let configuration: WebSocketClientConfiguration
    let setup: JSONValue?
    let queue: FrameQueue
    let link: CallLink
    let transcript: TranscriptBox
    /// Told after each reconnect, with the number so far.
    var onReconnect: (@Sendable (Int) -> Void)?

    /// Close codes after which ConversationRelay ends the session instead of reconnecting.
    static let finalCodes: Set<Int> = [1000, 1002, 1003, 1007, 1008, 1009, 1010]

    /// Runs the call's sockets until the caller hangs up, the relay ends the call, or reconnecting
    /// fails; throws only when the first socket cannot be opened.
    func run() async throws {
        defer { queue.close() }
        let urls = caller.reconnectURLs.isEmpty ? [caller.relayURL] : caller.reconnectURLs
        var index = urls.firstIndex(of: caller.relayURL) ?? 0
        var connectedOnce = false
        var reconnectUntil: ContinuousClock.Instant?
        var delay = Duration.milliseconds(100)
        while true {
            let base = connectedOnce ? urls[index % urls.count] : caller.relayURL
            let url = base.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + path
            let opened = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
            let framesSeen = NIOLockedValueBox(0)
            var close: WebSocketCloseFrame?
            var failure: (any Error)?
            do {
                close = try await WebSocketClient.connect(url: url, configuration: configuration, logger: caller.logger) { inbound, outbound, _ in
                    opened.withLockedValue { $0 = .now }
                    if let setup { try await outbound.write(.text(String(decoding: try JSONEncoder().encode(setup), as: UTF8.self))) }
                    try await link.attach(outbound)
                    let reconnects = await link.reconnects
                    if reconnects > 0 { onReconnect?(reconnects) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                if case .text(let text) = message, let frame = try? CompactJSON.decode(text.utf8) {
                                    framesSeen.withLockedValue { $0 += 1 }
                                    queue.push(frame)
                                }
                            }
                        }
                        group.addTask { await link.hungUp.wait() }
                        try await group.next()
                        group.cancelAll()
                    }
                    await link.detach()
                }
            } catch {
                failure = error
            }
            await link.detach()
            let openedAt = opened.withLockedValue { $0 }
            let code = close.map { Int(RelayCaller.code(of: $0.closeCode)) }
            if await link.isHungUp {
                if let code { transcript.closed(code: code, reason: close?.reason) }
                return
            }
            guard connectedOnce || openedAt != nil else {
                await link.connected(false)
                throw failure ?? CallerError("the socket could not be opened")
            }
            if !connectedOnce {
                connectedOnce = true
            }
            if let openedAt {
                let unexpected = failure != nil || code.map { !Self.finalCodes.contains($0) } ?? true
                guard caller.applicationReconnect, unexpected else {
                    transcript.closed(code: code, reason: close?.reason)
                    return
                }
                // A socket that carried the call (or lived a while) starts a new reconnect window; one
                // closed at once is just a failed attempt within the current window.
                if reconnectUntil == nil || framesSeen.withLockedValue({ $0 }) > 0 || ContinuousClock.now - openedAt > .seconds(2) {
                    reconnectUntil = .now + caller.reconnectWindow
                    delay = .milliseconds(100)
                }
            } else if !caller.applicationReconnect {
                transcript.closed(code: code, reason: close?.reason)
                return
            }
            guard let until = reconnectUntil, ContinuousClock.now < until else {
                transcript.closed(code: code, reason: close?.reason ?? "reconnect failed")
                return
            }
            index += 1
            if openedAt == nil {
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }
}

/// Where the caller's events go: the socket that is up, or a buffer of up to 500 while it is being
/// reopened (sent in order, after the new `setup`, once it is up).
actor CallLink {
    static let bufferLimit = 500

    private var writer: WebSocketOutboundWriter?
    private var buffer: [JSONValue] = []
    private var attachments = 0
    private var connectWaiters: [CheckedContinuation<Bool, Never>] = []
    private var connectOutcome: Bool?
    /// The caller hung up.
    nonisolated let hungUp = OneTimeEvent()
    /// Whether the caller hung up.
    var isHungUp: Bool { hungUp.hasHappened }
    /// Events dropped because the buffer was full.
    private(set) var dropped = 0

    /// How many times a socket replaced the first one.
    var reconnects: Int { max(0, attachments - 1) }

    /// Sends a frame now, or buffers it while no socket is up.
    func send(_ frame: JSONValue) async {
        if let writer, let text = Self.text(frame) {
            do {
                try await writer.write(.text(text))
                return
            } catch {
                self.writer = nil
            }
        }
        guard buffer.count < Self.bufferLimit else {
            dropped += 1
            return
        }
        buffer.append(frame)
    }

    /// A socket is up: the buffered events go out first (later ones wait in the buffer meanwhile).
    func attach(_ outbound: WebSocketOutboundWriter) async throws {
        while !buffer.isEmpty {
            let frame = buffer.removeFirst()
            if let text = Self.text(frame) {
                do {
                    try await outbound.write(.text(text))
                } catch {
                    buffer.insert(frame, at: 0)
                    throw error
                }
            }
        }
        writer = outbound
        attachments += 1
        connected(true)
    }

    /// The socket is gone.
    func detach() {
        writer = nil
    }

    /// Records whether the first socket opened, for ``waitConnected()``.
    func connected(_ outcome: Bool) {
        guard connectOutcome == nil else { return }
        connectOutcome = outcome
        for waiter in connectWaiters { waiter.resume(returning: outcome) }
        connectWaiters = []
    }

    /// Whether the first socket opened.
    func waitConnected() async -> Bool {
        if let connectOutcome { return connectOutcome }
        return await withCheckedContinuation { connectWaiters.append($0) }
    }

    /// The caller hangs up: the socket is closed normally and not reopened.
    func hangUp() {
        hungUp.happen()
        connected(false)
    }

    private static func text(_ frame: JSONValue) -> String? {
        (try? CompactJSON.encode(frame)).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension TranscriptBox {
    /// How the call ended, when the relay (or a failed reconnect) ended it.
    func closed(code: Int?, reason: String?) {
        update { transcript in
            transcript.closeCode = code
            transcript.closeReason = reason
        }
    }
}
