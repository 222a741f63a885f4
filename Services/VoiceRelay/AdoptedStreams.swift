/// The streams of relays whose calls this relay took over, read for the rest of those calls' turns
/// in progress (``CallRegistry``): where to read each next, and until when.
///
/// A read may begin before a call is taken over and end after it: that call's frames in the read
/// either found no session here or came ahead of frames the read skipped. So a takeover moves the
/// stream's position back to the call's own (for the next read); a read that ends does not move it
/// past a call taken over while it ran; and the call's frames in that read are not admitted
/// (``CallSession/fromResumedStream(_:read:)``): they are read again, in order, and the turn gate drops
/// what the caller already heard. A call taken over by the same relay instance (restarted with the
/// same id, as a Kubernetes pod is) is read again from its own stream the same way (``ownRewind``).
struct AdoptedStreams {
    private struct Adoption {
        var position: String
        var until: ContinuousClock.Instant
        /// The earliest position of a call taken over since the current read began.
        var rewind: String?
    }

    /// This relay's own stream (`tac:voice:<instance>`), which its frame reader reads anyway.
    let own: String
    private var streams: [String: Adoption] = [:]
    /// The earliest position of a call taken over from this relay's own stream since a read last began.
    private var ownRewind: String?
    /// Reads begun so far; the number of the latest is what a takeover is stamped with.
    private(set) var reads = 0

    init(own: String) {
        self.own = own
    }

    /// A call was taken over from `stream`: it is read after `position` (or earlier, for other calls)
    /// until `until`. Returns the number of the latest read begun (whose entries of this call must not
    /// be admitted).
    mutating func adopt(_ stream: String, after position: String, until: ContinuousClock.Instant) -> Int {
        if stream == own {
            ownRewind = ownRewind.map { Self.earlier($0, position) } ?? position
        } else if var existing = streams[stream] {
            existing.position = Self.earlier(existing.position, position)
            existing.rewind = existing.rewind.map { Self.earlier($0, position) } ?? position
            existing.until = max(existing.until, until)
            streams[stream] = existing
        } else {
            streams[stream] = Adoption(position: position, until: until)
        }
        return reads
    }

    /// A read begins: the adopted streams still read, with the position to read after; where the own
    /// stream must be read again from (nil: where it was); and the read's number.
    mutating func beginRead(now: ContinuousClock.Instant) -> (positions: [String: String], ownRewind: String?, number: Int) {
        reads += 1
        streams = streams.filter { $0.value.until > now }
        for stream in streams.keys { streams[stream]?.rewind = nil }
        defer { ownRewind = nil }
        return (streams.mapValues(\.position), ownRewind, reads)
    }

    /// The read's entries were admitted: each adopted stream's position moves to the last entry read
    /// from it (`read`), but not past a call taken over since the read began.
    mutating func advance(_ read: [String: String]) {
        for (stream, id) in read {
            guard var existing = streams[stream] else { continue }
            existing.position = existing.rewind.map { Self.earlier($0, id) } ?? id
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
