/// The streams of relays whose calls this relay took over, read for the rest of those calls' turns
/// in progress (``CallRegistry``): where to read each next, and until when.
///
/// A read of an adopted stream may begin before a call is taken over from it and end after: that
/// call's frames in the read found no session here and were dropped. So each takeover moves the
/// position back to the call's own (for the next read), and a read that ends does not move it past
/// the position of a call taken over while it ran; the turn gate drops what is read twice.
struct AdoptedStreams {
    private struct Adoption {
        var position: String
        var until: ContinuousClock.Instant
        /// The earliest position of a call taken over since the current read began.
        var rewind: String?
    }

    private var streams: [String: Adoption] = [:]

    /// A call was taken over from `stream`: it is read after `position` (or earlier, for other calls)
    /// until `until`.
    mutating func adopt(_ stream: String, after position: String, until: ContinuousClock.Instant) {
        guard var existing = streams[stream] else {
            streams[stream] = Adoption(position: position, until: until)
            return
        }
        existing.position = Self.earlier(existing.position, position)
        existing.rewind = existing.rewind.map { Self.earlier($0, position) } ?? position
        existing.until = max(existing.until, until)
        streams[stream] = existing
    }

    /// A read begins: the streams still adopted, with the position to read after.
    mutating func beginRead(now: ContinuousClock.Instant) -> [String: String] {
        streams = streams.filter { $0.value.until > now }
        for stream in streams.keys { streams[stream]?.rewind = nil }
        return streams.mapValues(\.position)
    }

    /// The read's entries were admitted: each stream's position moves to the last entry read from it
    /// (`read`), but not past a call taken over since the read began.
    mutating func advance(_ read: [String: String]) {
        for (stream, id) in read {
            guard var existing = streams[stream] else { continue }
            existing.position = existing.rewind.map { Self.earlier($0, id) } ?? id
            streams[stream] = existing
        }
    }

    /// The earlier of two stream entry ids (`<ms>-<n>`).
    static func earlier(_ a: String, _ b: String) -> String {
        func parts(_ id: String) -> (Int, Int) {
            let split = id.split(separator: "-")
            return (Int(split.first ?? "0") ?? 0, Int(split.dropFirst().first ?? "0") ?? 0)
        }
        return parts(a) <= parts(b) ? a : b
    }
}
