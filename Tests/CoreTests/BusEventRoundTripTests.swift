import AgentConnectCore
import Foundation
import Testing

@Suite("Bus events survive the wire")
struct BusEventRoundTripTests {
    @Test("every event written is read back equal: random texts, tokens, numbers, nesting and times, 20,000 times")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        let words = ["You ", "said: ", "caller ", "number ", "0", "é", "\"", "\\", "/", "\n", "😀", "", " ", "\u{0}", "1e5", "-0"]
        var failures: [String] = []
        for index in 0..<20_000 {
            let token = (0..<Int.random(in: 0...4, using: &generator)).map { _ in words.randomElement(using: &generator) ?? "" }.joined()
            let date = Date(timeIntervalSinceNow: Double.random(in: -1e6...1e6, using: &generator))
            let payload: JSONValue = [
                "turnId": .string("\(UUID().uuidString.lowercased()):r1"), "seq": .number(Double(index % 300)),
                "frame": ["type": "text", "token": .string(token), "last": .bool(index % 7 == 0)],
                "n": .number(Double.random(in: -1e9...1e9, using: &generator)), "gen": .string(BusEvent.newID()),
            ]
            let event = BusEvent(type: EventType.voiceFrame, conversationId: "CA\(index)", channel: .voice, occurredAt: date, payload: payload)
            do {
                let back = try BusEvent.decode(try event.encoded())
                if back.payload != event.payload || back.id != event.id || back.occurredAt != event.occurredAt
                    || back.traceparent != event.traceparent
                {
                    failures.append("\(index): differs")
                }
            } catch {
                failures.append("\(index): \(error) for \(String(decoding: (try? event.encoded()) ?? [], as: UTF8.self))")
            }
            if failures.count > 5 { break }
        }
        #expect(failures.isEmpty, "\(failures)")
    }
}
