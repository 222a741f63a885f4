/// Where the frame reader reads each voice stream next: this relay's own (`tac:voice:<instance>`,
/// always) and those of relays whose calls it took over (for the rest of their turns in progress,
/// until some time after the last takeover from each) (``CallRegistry``).
///
/// A read may begin before a call is taken over and end after it: that call's frames in the read
/// either found no session here or came ahead of frames the read skipped. So a takeover moves the
/// stream's position back to the call's own (for the next read); a read that ends does not move it
/// past a call taken over while it ran; and the call's frames in that read are not admitted
/// (``CallSession/fromResumedStream(_:read:)``): they are read again, in order, and the turn gate drops
/// what the caller already heard. The own stream is no different: a relay restarted with the same
/// instance id (as a Kubernetes pod is) takes its calls back from it the same way.
struct VoiceReadPositions {
    private struct Position {
        var id: String
        /// Until when the stream is read (nil: the own stream, always).
        var until: ContinuousClock.Instant?
        /// The earliest position of a call taken over since the current read began.
        var rewind: String?
    }

    /// This relay's own stream.
    let own: String
    private var streams: [String: Position] = [:]
    /// The own stream's newest entry when this process began reading it (nil: not yet): what lies
    /// at or before it was sent, or not, by a previous process with this instance id.
    private(set) var ownStart: String?
    /// Reads begun so far; the number of the latest is what a takeover is stamped with.
    private(set) var reads = 0

    init(own: String) {
        self.own = own
    }

    /// The reader starts on its own stream after `id` (its newest entry then).
    mutating func start(after id: String) {
        ownStart = id
        // A takeover from the own stream before this (its calls came back first) keeps its position.
        let position = streams[own].map { Self.earlier($0.id, id) } ?? id
        streams[own] = Position(id: position, until: nil)
    }

    /// A call was taken over from `stream`: it is read after `position` (or earlier, for other calls)
    /// until `until` (the own stream, always). Returns the number of the latest read begun (whose
    /// entries of this call must not be admitted).
    mutating func adopt(_ stream: String, after position: String, until: ContinuousClock.Instant) -> Int {
        if var existing = streams[stream] {
            existing.id = Self.earlier(existing.id, position)
            existing.rewind = existing.rewind.map { Self.earlier($0, position) } ?? position
            existing.until = existing.until.map { max($0, until) }
            streams[stream] = existing
        } else {
            streams[stream] = Position(id: position, until: stream == own ? nil : until)
        }
        return reads
    }

    /// One read of the voice streams.
    struct Read {
        /// Each stream read, with the position to read after.
        var positions: [String: String]
        /// The read's number (``CallSession/fromResumedStream(_:read:)``).
        var number: Int
        var own: String
        var ownStart: String?

        /// Whether a call's frame read from `stream` at `id` is checked against what the previous holder
        /// sent it (``VoiceTurnGate``): one from another relay's stream, or from the own stream from
        /// before this process read it, for a call taken back from it (`resumed`); nil when it is of no
        /// use — the previous process's frames for any other call.
        func isAdopted(stream: String, id: String, resumed: Bool) -> Bool? {
            guard stream == own else { return true }
            guard let ownStart, VoiceReadPositions.isAtOrBefore(id, ownStart) else { return false }
            return resumed ? true : nil
        }
    }

    /// A read begins: each stream still read, with the position to read after.
    mutating func beginRead(now: ContinuousClock.Instant) -> Read {
        reads += 1
        streams = streams.filter { $0.value.until.map { $0 > now } ?? true }
        for stream in streams.keys { streams[stream]?.rewind = nil }
        return Read(positions: streams.mapValues(\.id), number: reads, own: own, ownStart: ownStart)
    }

    /// The read's entries were admitted: each stream's position moves to the last entry read from it
    /// (`read`), but not past a call taken over since the read began.
    mutating func advance(_ read: [String: String]) {
        for (stream, id) in read {
            guard var existing = streams[stream] else { continue }
            existing.id = existing.rewind.map { Self.earlier($0, id) } ?? id
            streams[stream] = existing
        }
    }

    /// The earlier of two stream entry ids (`<ms>-<n>`).
    static func earlier(_ a: String, _ b: String) -> String {
        isAtOrBefore(a, b) ? a : b
    }

    /// Whether stream entry id `a` is at or before `b`.
    static func isAtOrBefore(_ a: String, _ b: String) -> Bool {
        func parts(_ id: String) -> (Int, Int) {
            let split = id.split(separator: "-")
            return (Int(split.first ?? "0") ?? 0, Int(split.dropFirst().first ?? "0") ?? 0)
        }
        return parts(a) <= parts(b)
    }
}
