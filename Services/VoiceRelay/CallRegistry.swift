import AgentConnectCore
import EventBus
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceSupport

/// The calls this relay holds, and their registration in Redis (`tac:call:<conversation id>` →
/// this instance, with expiry) so a worker on any machine knows where to send the reply frames.
///
/// With `applicationReconnect` on (`CONVERSATION_RELAY_APPLICATION_RECONNECT=true`), a call also
/// outlives the relay holding it: its state is kept in `tac:callstate:<conversation id>` (the socket
/// token, the prompt in progress and the stream its frames go to, the last frame the caller was sent),
/// and `tac:relay:resume:<token>` lets the socket URL, consumed on the first upgrade, open the call's
/// socket again. A reconnect that lands on any relay takes the call over (``register(_:token:)``)
/// once the previous holder handed it over or stopped beating, and reads the previous holder's frame
/// stream for the turn in progress (``readPositions(_:)``).
final class CallRegistry: Sendable {
    static let registrationSeconds = 4 * 3600

    /// The value a call's registration holds while the sweep of its dead relay ends it.
    static func tombstone(_ owner: String) -> String { "!ended:\(owner)" }

    let instance: String
    /// Whether calls are answered with `applicationReconnect="true"` (and so may be taken over).
    let reconnect: Bool
    /// A relay whose last heartbeat is older than this is taken to have lost its sockets.
    let staleAfter: Duration
    /// `VOICE_RELAY_LIVENESS_TTL_MS`: how long a heartbeat key lives.
    let livenessTTLMilliseconds: Int
    /// How long a reconnect waits for the previous holder to be handed over or gone.
    let takeoverWait: Duration = .seconds(6)
    /// How long the previous holder's stream is read for the turn in progress.
    let adoptionTime: Duration = .seconds(120)
    private let redis: RedisClient
    private let logger: Logger
    private let calls = NIOLockedValueBox<[String: CallSession]>([:])
    private let accepting = NIOLockedValueBox(true)
    private let positions: NIOLockedValueBox<VoiceReadPositions>
    private let handedOverAny = NIOLockedValueBox(false)
    /// Batches of frames being admitted and written right now (``sendingBatch(_:)``).
    private let batchesInFlight = NIOLockedValueBox(0)

    init(
        instance: String, redis: RedisClient, reconnect: Bool = false, livenessTTLMilliseconds: Int = 15_000,
        logger: Logger = Logger(label: "voice-relay")
    ) {
        self.instance = instance
        self.redis = redis
        self.reconnect = reconnect
        self.livenessTTLMilliseconds = livenessTTLMilliseconds
        self.staleAfter = .milliseconds(min(2_500, livenessTTLMilliseconds / 2))
        self.positions = NIOLockedValueBox(VoiceReadPositions(own: Streams.voice(instance: instance)))
        self.logger = logger
    }

    /// Whether new calls are taken (false while draining).
    var isAccepting: Bool { accepting.withLockedValue { $0 } }

    /// Stops taking new calls.
    func stopAccepting() {
        accepting.withLockedValue { $0 = false }
    }

    /// Whether this relay handed a call over (its heartbeat is then left to expire, not deleted, so
    /// its peers give the reconnects time before they sweep).
    var handedOverCalls: Bool { handedOverAny.withLockedValue { $0 } }

    var count: Int { calls.withLockedValue { $0.count } }

    func session(_ conversationId: String) -> CallSession? {
        calls.withLockedValue { $0[conversationId] }
    }

    // MARK: registering and taking over

    /// The grant of a socket token already used by a live call that may reconnect (nil otherwise):
    /// the call's CallSid and, when it is not the CallSid, its conversation id.
    func resumeGrant(_ token: String) async throws -> RelayCallTokens.Grant? {
        guard reconnect, RelayCallTokens.isWellFormed(token) else { return nil }
        guard let bytes = try await redis.command("GET", .string(RedisKeys.relayResume(token))).string,
            let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.utf8)), let callSid = json["callSid"]?.string
        else { return nil }
        return RelayCallTokens.Grant(callSid: callSid, conversationId: json["conversationId"]?.string)
    }

    /// Registers a call in Redis with `SET NX` and then locally; false (nothing changed) when the
    /// conversation already has a live call registered, here or on another relay. A socket opened with
    /// the token of a live call (a reconnect) takes that call over instead (``takeOver(_:)``).
    func register(_ session: CallSession, token: String? = nil) async throws -> Bool {
        if reconnect, let token, RelayCallTokens.isWellFormed(token),
            try await redis.command("EXISTS", .string(RedisKeys.relayResume(token))).integer == 1
        {
            return try await takeOver(session)
        }
        let replies = try await redis.send([
            [
                "SET", .string(RedisKeys.call(session.conversationId)), .string(instance), "NX", "EX", .string(String(Self.registrationSeconds)),
            ]
        ])
        if let error = replies.first(where: \.isError) { throw BusError(.server, "could not register the call: \(error)") }
        guard replies.first == .status("OK") else { return false }
        calls.withLockedValue { $0[session.conversationId] = session }
        Gauge(label: "agentconnect_live_calls").record(count)
        var commands: [[RedisArgument]] = [
            ["SADD", .string(RedisKeys.relayCalls(instance)), .string(session.conversationId)],
            // Peers find this relay's call list through the set (also before its first heartbeat).
            ["SADD", .string(RedisKeys.relayInstances), .string(instance)],
        ]
        if reconnect, let token {
            let state = RedisKeys.callState(session.conversationId)
            var grant: [String: JSONValue] = ["callSid": .string(session.callSid)]
            if session.conversationId != session.callSid { grant["conversationId"] = .string(session.conversationId) }
            let grantJSON = String(decoding: try JSONEncoder().encode(JSONValue.object(grant)), as: UTF8.self)
            commands += [
                ["HSET", .string(state), "callSid", .string(session.callSid), "token", .string(token), "owner", .string(instance)],
                ["EXPIRE", .string(state), .string(String(Self.registrationSeconds))],
                ["SET", .string(RedisKeys.relayResume(token)), .string(grantJSON), "EX", .string(String(Self.registrationSeconds))],
            ]
        }
        let listed = try await redis.send(commands)
        if let error = listed.first(where: \.isError) {
            await unregister(session)
            throw BusError(.server, "could not list the call: \(error)")
        }
        return true
    }

    /// A reconnect: takes the call over from the relay that held it, once that relay handed it over
    /// (a drain), stopped beating, or its heartbeat is older than ``staleAfter`` (`kill -9`, a lost
    /// node); a holder still beating past ``takeoverWait`` keeps the call (a replayed upgrade for a
    /// call whose socket is up is refused), and so does this relay while a socket here carries it.
    /// False when the call has ended meanwhile.
    private func takeOver(_ session: CallSession) async throws -> Bool {
        let id = session.conversationId
        let callKey = RedisKeys.call(id)
        let deadline = ContinuousClock.now + takeoverWait
        while true {
            let replies = try await redis.send([["GET", .string(callKey)], ["HGETALL", .string(RedisKeys.callState(id))]])
            guard let holder = replies.first?.string, !holder.hasPrefix("!") else { return false }
            let state = Self.fields(replies.last)
            // This relay: free unless a socket here still carries the call (a replayed upgrade, not Twilio,
            // opens a second socket for a live call); after a restart with the same instance id it is free.
            var free = state["handedOver"] == holder || (holder == instance && (self.session(id).map(\.isHandedOver) ?? true))
            if !free, holder != instance {
                let remaining = try await redis.command("PTTL", .string(RedisKeys.relayAlive(holder))).integer ?? -2
                free = remaining < 0 || Int(remaining) < livenessTTLMilliseconds - Int(staleAfter.milliseconds)
            }
            if free {
                let taken = try await redis.command(
                    "EVAL", .string(Self.takeoverScript), "3", .string(callKey), .string(RedisKeys.relayCalls(instance)),
                    .string(RedisKeys.callState(id)),
                    .string(holder), .string(instance), .string(id), .string(String(Self.registrationSeconds)))
                if taken.integer == 1 {
                    adopt(session, state: state, from: holder)
                    return true
                }
            }
            guard ContinuousClock.now < deadline else {
                Counter(label: "agentconnect_voice_frames_total", dimensions: [("kind", "rejected_takeover")]).increment()
                return false
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Holds a call just taken over: its turn state seeded from `state`, the previous holder's stream
    /// read for the turn in progress.
    private func adopt(_ session: CallSession, state: [String: String], from holder: String) {
        let id = session.conversationId
        // Seeded before the frame reader can find the session, so no frame meets an empty turn state.
        session.resume(
            prompt: state["prompt"], turnId: state["turn"], sequence: state["seq"].flatMap { Int($0) }, generation: state["gen"],
            lastSent: state["last"] == "1", position: state["pos"])
        // The rest of the prompt's replies are on the previous holder's stream (a reply that ended there
        // may be followed by another of the same prompt).
        let stream = state["prompt"].flatMap { $0 == "-" ? nil : state["stream"] }
        if let stream { session.beginAdoption(from: stream) }
        let previous = calls.withLockedValue { calls -> CallSession? in
            defer { calls[id] = session }
            return calls[id]
        }
        // A reconnect to this same relay after a restart: the old socket is gone; its end must not end the call.
        previous?.handOver()
        if let stream {
            let position = state["pos"] ?? state["promptAt"].flatMap { Int($0) }.map { "\(max(0, $0 - 2_000))-0" } ?? "0-0"
            // Stamped under the same lock as the rewind, so no read falls between them.
            positions.withLockedValue { positions in
                session.adopted(read: positions.adopt(stream, after: position, until: .now + adoptionTime))
            }
        }
        Gauge(label: "agentconnect_live_calls").record(count)
        Counter(label: "agentconnect_voice_calls_taken_over_total").increment()
        logger.info("call taken over", metadata: ["conversation.id": "\(id)", "relay.previous": "\(holder)"])
    }

    /// Moves a call's registration from `ARGV[1]` (still its holder) to `ARGV[2]`, listing it there
    /// (and `ARGV[2]` among the relays peers sweep).
    static let takeoverScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
        if ARGV[1] ~= ARGV[2] then redis.call('SREM', '\(RedisKeys.relayCallsPrefix)' .. ARGV[1], ARGV[3]) end
        redis.call('SADD', KEYS[2], ARGV[3])
        redis.call('SADD', '\(RedisKeys.relayInstances)', ARGV[2])
        redis.call('HSET', KEYS[3], 'owner', ARGV[2])
        redis.call('HDEL', KEYS[3], 'handedOver')
        redis.call('EXPIRE', KEYS[3], ARGV[4])
        return 1
        """

    // MARK: what the caller was sent

    /// Records the prompt now in progress and the stream its frames will come on (before it is published).
    func promptSent(_ session: CallSession, eventId: String) async {
        guard reconnect else { return }
        let key = RedisKeys.callState(session.conversationId)
        let now = Int(Date().timeIntervalSince1970 * 1000)
        _ = try? await redis.send([
            ["HDEL", .string(key), "pos", "turn", "seq", "gen", "last"],
            [
                "HSET", .string(key), "prompt", .string(eventId), "stream", .string(Streams.voice(instance: instance)), "promptAt",
                .string(String(now)),
            ],
        ])
    }

    /// Records that no turn is in progress any more (an interrupt).
    func interrupted(_ session: CallSession) async {
        guard reconnect else { return }
        _ = try? await redis.send([["HSET", .string(RedisKeys.callState(session.conversationId)), "prompt", "-"]])
    }

    /// One frame about to be written to a caller, for ``recordSent(_:)``.
    struct SentFrame {
        var conversationId: String
        var turnId: String
        var sequence: Int
        var generation: String?
        var entryId: String
        /// Whether the frame ends its turn (`last: true`).
        var isLast = false
    }

    /// Records, per call, the last frame about to be sent (one round trip per batch, before the writes:
    /// a relay that dies after this and before its write leaves that frame unsent).
    func recordSent(_ frames: [SentFrame]) async {
        guard reconnect, !frames.isEmpty else { return }
        var last: [String: SentFrame] = [:]
        for frame in frames { last[frame.conversationId] = frame }
        let commands: [[RedisArgument]] = last.values.map { frame in
            var command: [RedisArgument] = [
                "HSET", .string(RedisKeys.callState(frame.conversationId)), "turn", .string(frame.turnId), "seq", .string(String(frame.sequence)),
                "pos",
                .string(frame.entryId), "last", frame.isLast ? "1" : "0",
            ]
            if let generation = frame.generation { command += ["gen", .string(generation)] }
            return command
        }
        _ = try? await redis.send(commands)
    }

    /// Runs `body` (admitting a batch of frames, recording and writing it) as one unit a hand-over waits for.
    func sendingBatch<Result>(_ body: () async -> Result) async -> Result {
        batchesInFlight.withLockedValue { $0 += 1 }
        defer { batchesInFlight.withLockedValue { $0 -= 1 } }
        return await body()
    }

    // MARK: where the voice streams are read

    /// The frame reader's positions on the voice streams — its own, and those of relays whose calls
    /// were taken over here, each read for ``adoptionTime`` after the last takeover from it — under
    /// their lock (``VoiceReadPositions``).
    func readPositions<Result>(_ body: (inout VoiceReadPositions) -> Result) -> Result {
        positions.withLockedValue { body(&$0) }
    }

    // MARK: ending and handing over

    /// Closes every call's socket so ConversationRelay reconnects it to another relay (a drain for a
    /// rollout, with `applicationReconnect`); the calls stay registered here until one takes them over.
    func handOverAll() async {
        let sessions = calls.withLockedValue { Array($0.values) }
        guard !sessions.isEmpty else { return }
        handedOverAny.withLockedValue { $0 = true }
        for session in sessions { session.handOver() }
        // A batch admitted before the flag goes out in full before the sockets close: what was recorded
        // as sent reaches the caller (its Redis write can take a while under load: an fsync per write).
        // Later batches skip these calls.
        let settled = ContinuousClock.now + .seconds(15)
        while batchesInFlight.withLockedValue({ $0 }) > 0, ContinuousClock.now < settled {
            try? await Task.sleep(for: .milliseconds(5))
        }
        _ = try? await redis.send(sessions.map { ["HSET", .string(RedisKeys.callState($0.conversationId)), "handedOver", .string(instance)] })
        for session in sessions {
            try? await session.writer.close(.unknown(1012), reason: "relay restarting")
        }
        Counter(label: "agentconnect_voice_calls_handed_over_total").increment(by: sessions.count)
        logger.info("handed calls over", metadata: ["calls": "\(sessions.count)"])
    }

    /// Removes a call's socket. The call ends — the Redis key is deleted only if it still names this
    /// instance — unless the call was handed over (another relay takes it, or the sweep ends it).
    func unregister(_ session: CallSession) async {
        calls.withLockedValue { calls in
            if calls[session.conversationId] === session { calls[session.conversationId] = nil }
        }
        Gauge(label: "agentconnect_live_calls").record(count)
        guard !session.isHandedOver else { return }
        _ = try? await redis.send(Self.releaseCommands(conversationId: session.conversationId, owner: instance))
    }

    /// Drops a call's registration — the `tac:call:<id>` key, its state and its resume token only while
    /// the key still names `owner` — and its entry in the owner's call list (a hang-up here, or the
    /// sweep of a dead relay's calls, whose `owner` is then the tombstone ``tombstone(_:)``).
    static func releaseCommands(conversationId: String, owner: String, list: String? = nil) -> [[RedisArgument]] {
        [
            [
                "EVAL", .string(releaseScript),
                "2", .string(RedisKeys.call(conversationId)), .string(RedisKeys.callState(conversationId)), .string(owner),
            ],
            ["SREM", .string(RedisKeys.relayCalls(list ?? owner)), .string(conversationId)],
        ]
    }

    /// Deletes a call's registration, state and resume token while `ARGV[1]` still holds it.
    static let releaseScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        local token = redis.call('HGET', KEYS[2], 'token')
        if token then redis.call('DEL', '\(RedisKeys.relayResumePrefix)' .. token) end
        redis.call('DEL', KEYS[2])
        return redis.call('DEL', KEYS[1])
        """

    /// A Redis hash reply as a dictionary.
    static func fields(_ reply: RedisValue?) -> [String: String] {
        let items = reply?.array?.compactMap(\.string) ?? []
        var fields: [String: String] = [:]
        var index = 0
        while index + 1 < items.count {
            fields[items[index]] = items[index + 1]
            index += 2
        }
        return fields
    }
}
