import AgentConnectCore
import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import TwilioKit

/// Plays Twilio's side of a ConversationRelay call against voice-relay: the signed voice webhook
/// to `/twiml`, then the signed WebSocket with `setup`, prompts, DTMF and interrupts, timing each
/// reply's tokens.
package struct RelayCaller: Sendable {
    /// One step of a call script.
    package enum Step: Sendable {
        /// A final prompt; waits for the reply's `last: true`.
        case say(String)
        /// A prompt, interrupted after `afterTokens` words; then waits `settle` for stray tokens.
        case sayAndInterrupt(String, afterTokens: Int, settle: Duration = .milliseconds(300))
        /// A prompt; after `afterTokens` words `action` runs (e.g. kill a worker), then the reply is awaited.
        case sayWithAction(String, afterTokens: Int, action: @Sendable () async -> Void)
        /// A key press.
        case dtmf(String)
        /// Any frame, sent as is.
        case raw(JSONValue)
        /// Waits.
        case pause(Duration)
        /// Waits until `count` words of text (an empty token counts as one) have arrived since the last
        /// step (frames kept like `pause` keeps them), or `timeout` passes: "while the reply is
        /// streaming", whatever the machine's load and however the relay framed the tokens.
        case waitForTokens(Int, timeout: Duration)
        /// Waits until a text frame with `last: true` arrives (kept like `pause` keeps it), or `timeout` passes.
        case waitForLast(timeout: Duration)
        /// Runs `action` between two utterances (the socket stays up, and reconnects, meanwhile).
        case action(@Sendable () async -> Void)
    }

    /// What happened to one prompt.
    package struct Turn: Sendable {
        package var prompt: String
        /// The reply's tokens as they came, one per message: a relay may send several tokens that it read
        /// together as one message (their text joined), so count ``words`` rather than these.
        package var tokens: [String] = []
        /// Tokens that arrived after the interrupt was sent and before its acknowledgement (already on
        /// their way; not part of `tokens`, which is what the caller heard when it spoke).
        package var inFlightTokens: [String] = []
        /// Tokens that arrived after the interrupt was acknowledged (should be none).
        package var lateTokens: [String] = []
        package var interrupted = false
        package var acknowledged = false
        package var firstToken: Duration?
        package var completed: Duration?
        /// Whether the caller said the prompt again: nothing came back and the socket had been reconnected.
        package var repeated = false
        /// The reply as spoken.
        package var text: String { tokens.joined() }
        /// The reply's words (each token split on whitespace), however the relay framed its tokens.
        package var words: [String] { tokens.flatMap(RelayCaller.words) }
    }

    /// The outcome of a call.
    package struct Transcript: Sendable {
        package var callSid: String
        package var turns: [Turn] = []
        /// Frames other than text (`play`, `end`, …).
        package var otherFrames: [JSONValue] = []
        /// How the relay closed the socket, when it did.
        package var closeCode: Int?
        package var closeReason: String?
        /// How many times the socket was opened again after an unexpected drop (`applicationReconnect`).
        package var reconnects = 0
        /// Caller events not sent because more than 500 waited for a reconnect.
        package var droppedEvents = 0
    }

    /// voice-relay's base URL (`http://127.0.0.1:8081`), where requests go.
    package let relayURL: String
    /// The public base URL Twilio would call (`https://<TWILIO_VOICE_PUBLIC_DOMAIN>`), which the voice
    /// webhook's signature covers; by default `relayURL` over https (locally the domain is host:port).
    package let publicBaseURL: String
    let signer: TwilioSignature
    let logger: Logger
    /// Longest wait for one reply.
    package var replyTimeout: Duration = .seconds(10)
    /// Whether a dropped socket is reconnected, as ConversationRelay does with `applicationReconnect="true"`.
    package var applicationReconnect = false
    /// Where a reconnect may land (a load balancer's backends), tried in turn starting after the one
    /// the call was on; empty: `relayURL` only.
    package var reconnectURLs: [String] = []
    /// How long a dropped call keeps trying to reconnect before it fails (not documented by Twilio; assumed).
    package var reconnectWindow: Duration = .seconds(30)

    package init(relayURL: String, authToken: String, publicBaseURL: String? = nil, logger: Logger = Logger(label: "relay-caller")) {
        self.relayURL = relayURL
        self.publicBaseURL = publicBaseURL ?? relayURL.replacingOccurrences(of: "http://", with: "https://")
        self.signer = TwilioSignature(authToken: authToken)
        self.logger = logger
    }

    /// `POST /twiml` as Twilio would (signed for the public URL); returns the ConversationRelay `url`
    /// — with its per-call token, to be dialled exactly as given — and the TwiML. `query` is added to
    /// the webhook URL (a number's voice URL may carry one; the signature covers it).
    package func fetchTwiML(
        callSid: String, from: String, to: String, direction: String = "inbound", query: [(String, String)] = []
    ) async throws -> (url: String, twiml: String) {
        let fields = [
            ("AccountSid", "ACsimulator"), ("CallSid", callSid), ("From", from), ("To", to), ("Direction", direction), ("CallStatus", "ringing"),
        ]
        let target = "/twiml" + (query.isEmpty ? "" : "?" + FormCoding.encode(query))
        var request = HTTPClientRequest(url: "\(relayURL)\(target)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "X-Twilio-Signature", value: signer.compute(url: "\(publicBaseURL)\(target)", params: fields))
        request.body = .bytes(ByteBuffer(string: FormCoding.encode(fields)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let twiml = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status == .ok, let url = Self.attribute("url", in: twiml) else {
            throw CallerError("voice webhook answered \(response.status.code): \(twiml.prefix(200))")
        }
        return (url, twiml)
    }

    /// Opens the socket (signed for `publicURL`, the `wss://` URL from the TwiML, query and all, and
    /// dialled at the same path and query on `relayURL`), sends `setup`, runs the script and hangs up.
    ///
    /// With ``applicationReconnect`` (the TwiML's `applicationReconnect="true"`), a socket that drops
    /// unexpectedly is opened again at the same URL — through ``reconnectURLs``, the load balancer a
    /// reconnect may cross — for up to ``reconnectWindow``; the caller's events meanwhile are buffered
    /// (up to 500) and sent, after a new `setup`, on the new socket. See twilio-sim's README.
    package func call(
        publicURL: String, callSid: String, from: String, to: String, direction: String = "inbound", script: [Step],
        signature: String? = nil, sendSetup: Bool = true, customParameters: [String: String] = [:]
    ) async throws -> Transcript {
        let path = publicURL.firstIndex(of: "/").map { _ in URLPath.path(of: publicURL) } ?? "/ws"
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        if let signature = signature ?? Optional(signer.compute(url: publicURL)), !signature.isEmpty {
            configuration.additionalHeaders[HTTPField.Name("X-Twilio-Signature")!] = signature
        }
        let setup: JSONValue? =
            sendSetup
            ? [
                "type": "setup", "sessionId": .string("VX" + callSid.dropFirst(2)), "callSid": .string(callSid), "from": .string(from),
                "to": .string(to), "direction": .string(direction), "callType": "PSTN", "callStatus": "IN-PROGRESS",
                "accountSid": "ACsimulator", "customParameters": JSONValue(customParameters),
            ] : nil
        let session = TranscriptBox(callSid: callSid)
        let queue = FrameQueue()
        let link = CallLink()
        let replyTimeout = replyTimeout
        let connection = Connection(
            caller: self, path: path, configuration: configuration, setup: setup, queue: queue, link: link, transcript: session)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await connection.run() }
            // The first socket is up (or could not be opened: then `run` throws and ends the group).
            guard await link.waitConnected() else {
                try await group.waitForAll()
                return
            }
            func send(_ frame: JSONValue) async {
                await link.send(frame)
            }
            /// The next text frame, or nil when the call ended or `timeout` passed.
            func next(timeout: Duration) async -> JSONValue? {
                await queue.pop(timeout: timeout)
            }
            for step in script {
                // The relay hung up, or the caller's task was cancelled: the rest of the script is not played.
                if queue.isClosed || Task.isCancelled { break }
                switch step {
                case .raw(let frame):
                    await send(frame)
                case .pause(let duration):
                    // Frames that arrive meanwhile (`end`, `play`, …) are kept.
                    let until = ContinuousClock.now + duration
                    while ContinuousClock.now < until, let frame = await next(timeout: until - ContinuousClock.now) {
                        session.other(frame)
                    }
                case .waitForTokens(let count, let timeout):
                    let until = ContinuousClock.now + timeout
                    var seen = 0
                    while seen < count, ContinuousClock.now < until, let frame = await next(timeout: until - ContinuousClock.now) {
                        if frame["type"]?.string == "text" { seen += max(1, Self.words(frame["token"]?.string ?? "").count) }
                        session.other(frame)
                    }
                case .waitForLast(let timeout):
                    let until = ContinuousClock.now + timeout
                    while ContinuousClock.now < until, let frame = await next(timeout: until - ContinuousClock.now) {
                        session.other(frame)
                        if frame["type"]?.string == "text", frame["last"]?.bool == true { break }
                    }
                case .action(let action):
                    await action()
                case .dtmf(let digit):
                    await send(["type": "dtmf", "digit": .string(digit)])
                case .say, .sayWithAction:
                    let (text, actionAfter, action): (String, Int, (@Sendable () async -> Void)?) = {
                        if case .sayWithAction(let text, let after, let action) = step { return (text, after, action) }
                        if case .say(let text) = step { return (text, 0, nil) }
                        return ("", 0, nil)
                    }()
                    var turn = Turn(prompt: text)
                    let started = ContinuousClock.now
                    let prompt: JSONValue = ["type": "prompt", "voicePrompt": .string(text), "lang": "en-US", "last": true]
                    let reconnectsAtPrompt = await link.reconnects
                    await send(prompt)
                    var acted = action == nil
                    while true {
                        guard let frame = await next(timeout: replyTimeout) else {
                            // Nothing came back and the socket was opened again meanwhile: the relay that
                            // died may never have read the prompt, so the caller says it again, once.
                            if turn.tokens.isEmpty, !turn.repeated, !queue.isClosed, await link.reconnects > reconnectsAtPrompt {
                                turn.repeated = true
                                await send(prompt)
                                continue
                            }
                            break
                        }
                        guard frame["type"]?.string == "text" else {
                            session.other(frame)
                            continue
                        }
                        let token = frame["token"]?.string ?? ""
                        if !token.isEmpty {
                            if turn.firstToken == nil { turn.firstToken = ContinuousClock.now - started }
                            turn.tokens.append(token)
                        }
                        if !acted, turn.words.count >= actionAfter, let action {
                            acted = true
                            await action()
                        }
                        if frame["last"]?.bool == true {
                            turn.completed = ContinuousClock.now - started
                            break
                        }
                    }
                    session.append(turn)
                case .sayAndInterrupt(let text, let afterTokens, let settle):
                    var turn = Turn(prompt: text)
                    let started = ContinuousClock.now
                    await send(["type": "prompt", "voicePrompt": .string(text), "lang": "en-US", "last": true])
                    var ended = false
                    while turn.words.count < afterTokens, let frame = await next(timeout: replyTimeout) {
                        guard frame["type"]?.string == "text" else { continue }
                        if let token = frame["token"]?.string, !token.isEmpty {
                            if turn.firstToken == nil { turn.firstToken = ContinuousClock.now - started }
                            turn.tokens.append(token)
                        }
                        if frame["last"]?.bool == true {
                            ended = true
                            break
                        }
                    }
                    if ended {
                        // The reply ended before the caller spoke over it: there is nothing to interrupt.
                        turn.completed = ContinuousClock.now - started
                        session.append(turn)
                        continue
                    }
                    await send([
                        "type": "interrupt", "utteranceUntilInterrupt": .string(turn.text), "durationUntilInterruptMs": .string("420"),
                    ])
                    turn.interrupted = true
                    // Tokens already in flight may arrive before the acknowledgement (an empty `last: true`);
                    // after it, none may. A `last: true` with a token is the reply's own end: it finished
                    // before the relay read the interrupt, and nothing acknowledges it.
                    while let frame = await next(timeout: replyTimeout) {
                        guard frame["type"]?.string == "text" else { continue }
                        let token = frame["token"]?.string ?? ""
                        if !token.isEmpty { turn.inFlightTokens.append(token) }
                        if frame["last"]?.bool == true {
                            turn.acknowledged = token.isEmpty
                            break
                        }
                    }
                    while let frame = await next(timeout: settle) {
                        if frame["type"]?.string == "text", let token = frame["token"]?.string, !token.isEmpty { turn.lateTokens.append(token) }
                    }
                    session.append(turn)
                }
            }
            // Give a close the relay already started a moment to arrive, then hang up (the socket is
            // closed normally).
            _ = await queue.waitClosed(timeout: .milliseconds(100))
            await link.hangUp()
            try await group.waitForAll()
        }
        var transcript = session.transcript
        transcript.reconnects = await link.reconnects
        transcript.droppedEvents = await link.dropped
        return transcript
    }

    /// Text as words, split on whitespace.
    package static func words(_ text: String) -> [String] {
        text.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// An open-ended call (the dev phone): sends `setup`, then each frame of `commands` as it comes,
    /// and hands every frame the relay sends to `onFrame`, until `commands` finishes (hang up) or the
    /// relay closes. Returns the close code when the relay closed. With ``applicationReconnect`` a
    /// dropped socket is reopened as in ``call(publicURL:callSid:from:to:direction:script:signature:sendSetup:customParameters:)``,
    /// and `onReconnect` is told each time (with the count so far).
    package func converse(
        publicURL: String, callSid: String, from: String, to: String, direction: String = "inbound",
        commands: AsyncStream<JSONValue>, onReconnect: (@Sendable (Int) -> Void)? = nil, onFrame: @escaping @Sendable (JSONValue) -> Void
    ) async throws -> Int? {
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        configuration.additionalHeaders[HTTPField.Name("X-Twilio-Signature")!] = signer.compute(url: publicURL)
        let setup: JSONValue = [
            "type": "setup", "sessionId": .string("VX" + callSid.dropFirst(2)), "callSid": .string(callSid), "from": .string(from),
            "to": .string(to), "direction": .string(direction), "callType": "PSTN", "callStatus": "IN-PROGRESS",
            "accountSid": "ACsimulator", "customParameters": .object([:]),
        ]
        let queue = FrameQueue()
        let link = CallLink()
        let transcript = TranscriptBox(callSid: callSid)
        var connection = Connection(
            caller: self, path: URLPath.path(of: publicURL), configuration: configuration, setup: setup, queue: queue, link: link,
            transcript: transcript)
        connection.onReconnect = onReconnect
        try await withThrowingTaskGroup(of: Void.self) { [connection] group in
            group.addTask { try await connection.run() }
            guard await link.waitConnected() else {
                try await group.waitForAll()
                return
            }
            group.addTask {
                while !queue.isClosed || !queue.isEmpty, !Task.isCancelled {
                    if let frame = await queue.pop(timeout: .seconds(60)) { onFrame(frame) }
                }
            }
            group.addTask {
                for await command in commands { await link.send(command) }
                await link.hangUp()
            }
            // Whichever ends first (relay closed, or the caller hung up) ends the call.
            while try await group.next() != nil {
                if queue.isClosed { break }
            }
            await link.hangUp()
            group.cancelAll()
        }
        return transcript.transcript.closeCode
    }

    static func code(of error: WebSocketErrorCode) -> UInt16 {
        switch error {
        case .normalClosure: return 1000
        case .goingAway: return 1001
        case .protocolError: return 1002
        case .unacceptableData: return 1003
        case .dataInconsistentWithMessage: return 1007
        case .policyViolation: return 1008
        case .messageTooLarge: return 1009
        case .missingExtension: return 1010
        case .unexpectedServerError: return 1011
        case .unknown(let code): return code
        }
    }

    /// An attribute's value from the first element that has it, unescaped.
    package static func attribute(_ name: String, in xml: String) -> String? {
        guard let start = xml.range(of: " \(name)=\"") else { return nil }
        let rest = xml[start.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end]).replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// The path of a URL (`wss://host/ws?x` → `/ws?x`).
enum URLPath {
    static func path(of url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        return rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
    }
}

/// A call that did not go as Twilio's would.
package struct CallerError: Error, CustomStringConvertible {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}
