import AgentConnectCore
import Foundation

/// The transcript being built inside the socket closure.
final class TranscriptBox: @unchecked Sendable {
    private var value: RelayCaller.Transcript
    private let lock = NSLock()

    init(callSid: String) {
        value = RelayCaller.Transcript(callSid: callSid)
    }

    func append(_ turn: RelayCaller.Turn) { lock.withLock { value.turns.append(turn) } }
    func other(_ frame: JSONValue) { lock.withLock { value.otherFrames.append(frame) } }
    func update(_ change: (inout RelayCaller.Transcript) -> Void) { lock.withLock { change(&value) } }
    var transcript: RelayCaller.Transcript { lock.withLock { value } }
}
