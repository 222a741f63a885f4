import AgentConnectCore
import Foundation
import Testing

/// The bus's JSON writer and reader against Foundation's: the wire format must not change (other
/// services, stored entries and tests read it).
@Suite("Compact JSON: byte-identical to JSONEncoder, reads what JSONDecoder reads")
struct CompactJSONTests {
    static func foundationEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Every control character, quotes, backslashes, slashes, DEL, multi-byte UTF-8 and line separators.
    static let awkwardText: String = {
        var text = ""
        for code in 0..<0x20 { text.unicodeScalars.append(Unicode.Scalar(UInt8(code))) }
        return text + "\u{7f}/\"\\é€😀\u{2028}\u{2029} </script> +1 (555) 010-0000"
    }()

    static let numbers: [Double] = [
        0, -0.0, 1, -1, 7, 42, 0.1, -2.5, 1.5e-7, 1e-6, 123456789012.5, 999_999_999_999_999, 1e15, 3e15, 1e16, 1e20, 1e23,
        9007199254740993, 1e-300, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 1_700_000_000_123.25,
    ]

    /// A random JSON value (seeded, so a failure reproduces).
    static func randomValue(_ random: inout SplitMix64, depth: Int = 0) -> JSONValue {
        let pick = Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &random)
        switch pick {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2:
            if Bool.random(using: &random) { return .number(numbers[Int.random(in: 0..<numbers.count, using: &random)]) }
            return .number(
                Double(Int.random(in: -1_000_000...1_000_000, using: &random)) / Double([1, 10, 1000][Int.random(in: 0..<3, using: &random)]))
        case 3: return .string(randomText(&random))
        case 4: return .array((0..<Int.random(in: 0..<5, using: &random)).map { _ in randomValue(&random, depth: depth + 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<6, using: &random) { members[randomText(&random)] = randomValue(&random, depth: depth + 1) }
            return .object(members)
        }
    }

    static func randomText(_ random: inout SplitMix64) -> String {
        let scalars = Array(awkwardText.unicodeScalars) + Array("abcXYZ_09".unicodeScalars)
        return String(
            String.UnicodeScalarView(
                (0..<Int.random(in: 0..<12, using: &random)).map { _ in scalars[Int.random(in: 0..<scalars.count, using: &random)] }))
    }

    @Test("values are written byte for byte as JSONEncoder writes them, and read back as JSONDecoder reads them")
    func matchesFoundation() throws {
        var random = SplitMix64(seed: 18)
        let encoder = Self.foundationEncoder()
        var values: [JSONValue] = [.string(Self.awkwardText), .array(Self.numbers.map(JSONValue.number)), [:], [], ["": ""]]
        for _ in 0..<400 { values.append(Self.randomValue(&random)) }
        for value in values {
            let ours = try CompactJSON.encode(value)
            let foundation = Array(try encoder.encode(value))
            #expect(ours == foundation, "\(String(decoding: foundation, as: UTF8.self))")
            let read = try JSONValue.parse(foundation)
            #expect(read == (try JSONDecoder().decode(JSONValue.self, from: Data(foundation))))
            #expect(value.compactJSON == String(decoding: foundation, as: UTF8.self))
        }
    }

    @Test("strings are scanned a word at a time: a byte to escape or outside ASCII at any position is written and read as Foundation does")
    func specialBytesAtEveryPosition() throws {
        let encoder = Self.foundationEncoder()
        for special in ["\"", "\\", "\n", "\u{01}", "\u{1f}", " ", "\u{7f}", "é", "😀", "/"] {
            for length in [7, 8, 9, 15, 16, 17, 24] {
                for position in 0...length {
                    var text = String(repeating: "a", count: length)
                    text.insert(contentsOf: special, at: text.index(text.startIndex, offsetBy: position))
                    let value = JSONValue.string(text)
                    let foundation = Array(try encoder.encode(value))
                    #expect(try CompactJSON.encode(value) == foundation, "\(special.unicodeScalars.map(\.value)) at \(position) of \(length)")
                    #expect(try JSONValue.parse(foundation) == value)
                }
            }
        }
        // Two bytes to escape in one word or across words, and strings made of nothing else.
        for first in 0..<17 {
            for second in first..<17 {
                var text = String(repeating: "a", count: 16)
                text.insert("\n", at: text.index(text.startIndex, offsetBy: second))
                text.insert("\"", at: text.index(text.startIndex, offsetBy: first))
                #expect(try CompactJSON.encode(.string(text)) == Array(try encoder.encode(JSONValue.string(text))), "at \(first) and \(second)")
            }
        }
        for count in 1...9 {
            let text = String(repeating: "\"\\\n\u{01}\t", count: count)
            let foundation = Array(try encoder.encode(JSONValue.string(text)))
            #expect(try CompactJSON.encode(.string(text)) == foundation)
            #expect(try JSONValue.parse(foundation) == .string(text))
        }
        // A string cut by a control character is refused wherever it sits, word-aligned or not.
        for position in 0..<20 {
            var bytes = Array("\"".utf8) + Array(repeating: UInt8(ascii: "b"), count: 20) + Array("\"".utf8)
            bytes[1 + position] = 0x0A
            #expect(throws: CompactJSONError.self) { try JSONValue.parse(bytes) }
        }
    }

    @Test("an event's envelope is written as JSONEncoder writes it and decodes to the same event")
    func envelope() throws {
        var random = SplitMix64(seed: 7)
        for channel in ChannelKind.allCases {
            let event = BusEvent(
                type: EventType.messageReceived, conversationId: "conv/\(channel)\"x", channel: channel,
                payload: ["text": .string(Self.awkwardText), "t": .number(1_700_000_000_123.25), "nested": Self.randomValue(&random)])
            let ours = try event.encoded()
            #expect(ours == Array(try Self.foundationEncoder().encode(event)))
            #expect(try BusEvent.decode(ours) == event)
            #expect(try BusEvent.decode(ours) == (try JSONDecoder().decode(BusEvent.self, from: Data(ours))))
        }
    }

    @Test("JSON written by others (whitespace, escapes, any member order, extra members) reads as JSONDecoder reads it")
    func foreignJSON() throws {
        let texts = [
            #" { "b" : [ 1 , 2.50 , -0 , 1E3, 2e-2 ] ,"a":"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\" , "c" : { } , "d":[ ], "e": null, "f": true } "#,
            #"{"channel":"sms","conversationId":"c","id":"i","occurredAt":"2026-11-21T12:00:00.123Z","payload":{"x":[1,{"y":"z"}]},"traceparent":"t","type":"message.received","version":1,"extra":{"ignored":true}}"#,
            "[]", "\"just text\"", "12345678901234567890", "-9.5e+300", "[1,]", "{\"a\":1 , }",
        ]
        for text in texts {
            let bytes = Array(text.utf8)
            #expect(try JSONValue.parse(bytes) == (try JSONDecoder().decode(JSONValue.self, from: Data(bytes))), "\(text)")
        }
        let event = try BusEvent.decode(Array(texts[1].utf8))
        #expect(event == (try JSONDecoder().decode(BusEvent.self, from: Data(texts[1].utf8))))
        #expect(event.payload["x"]?.array?.count == 2)
    }

    @Test("an envelope member given twice counts with its last value, as the JSON value reader keeps it")
    func repeatedMembers() throws {
        let text =
            #"{"id":5,"channel":"sms","conversationId":"c","id":"i","occurredAt":"o","payload":{"a":1,"a":{"b":2,"b":3}},"traceparent":"t","type":"x","version":"1","version":1}"#
        let event = try BusEvent.decode(Array(text.utf8))
        #expect(event.id == "i" && event.version == 1)
        #expect(event.payload == ["a": ["b": 3]])
        #expect(event.payload == (try JSONValue.parse(Array(text.utf8)))["payload"])
        for notAnObject in ["[]", "\"event\"", "1", "null"] {
            #expect(throws: CompactJSONError.self, "\(notAnObject)") { try BusEvent.decode(Array(notAnObject.utf8)) }
        }
    }

    @Test("event ids are lower-case UUIDs, as UUID's uuidString lower-cased writes them")
    func eventIDs() throws {
        var seen = Set<String>()
        for _ in 0..<200 {
            let id = BusEvent.newID()
            let uuid = try #require(UUID(uuidString: id))
            #expect(uuid.uuidString.lowercased() == id)
            seen.insert(id)
        }
        #expect(seen.count == 200)
    }

    @Test("malformed JSON and incomplete envelopes are refused, as JSONDecoder refuses them")
    func refusals() throws {
        let malformed = [
            "", "{", "[,]", "{,}", "[1,,]", "{\"a\" 1}", "01", "1.", "-", "tru", "nul", "\"unterminated", "\"tab\there\"", "\"\\x\"",
            "\"\\ud800\"", "\"\\udc00\"", "[1] 2", "{\"a\":1}}", "1e400", "NaN",
        ]
        for text in malformed {
            #expect(throws: (any Error).self, "\(text)") { try JSONValue.parse(Array(text.utf8)) }
            #expect(throws: (any Error).self, "\(text)") { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }
        }
        #expect(throws: (any Error).self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
        #expect(throws: (any Error).self) { try JSONValue.parse(Array(repeating: UInt8(ascii: "["), count: 10_000)) }
        let valid = #"{"channel":"sms","conversationId":"c","id":"i","occurredAt":"o","payload":null,"traceparent":"t","type":"x","version":1}"#
        #expect(try BusEvent.decode(Array(valid.utf8)).payload == .null)
        for broken in [
            valid.replacingOccurrences(of: #""channel":"sms""#, with: #""channel":"fax""#),
            valid.replacingOccurrences(of: #","version":1"#, with: ""),
            valid.replacingOccurrences(of: #""version":1"#, with: #""version":"1""#),
            valid.replacingOccurrences(of: #""payload":null,"#, with: ""),
            valid.replacingOccurrences(of: #""id":"i""#, with: #""id":5"#),
        ] {
            #expect(throws: (any Error).self, "\(broken)") { try BusEvent.decode(Array(broken.utf8)) }
            #expect(throws: (any Error).self, "\(broken)") { try JSONDecoder().decode(BusEvent.self, from: Data(broken.utf8)) }
        }
        #expect(throws: (any Error).self) { try CompactJSON.encode(.number(.nan)) }
        #expect(throws: (any Error).self) { try CompactJSON.encode(.number(.infinity)) }
    }

    @Test("timestamps are written as the ISO 8601 format style writes them and parse to the same instant")
    func timestamps() throws {
        var random = SplitMix64(seed: 3)
        let style = Date.ISO8601FormatStyle().year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
            .timeSeparator(.colon).timeZone(separator: .omitted)
        var dates = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 951_782_400.999_9), Date(timeIntervalSince1970: -86_400.5), Date()]
        for _ in 0..<500 {
            dates.append(Date(timeIntervalSince1970: Double(Int64.random(in: -2_000_000_000_000...4_000_000_000_000, using: &random)) / 1000))
        }
        for date in dates {
            let text = Timestamp.iso8601(date)
            #expect(text == date.formatted(style), "\(date.timeIntervalSince1970)")
            let parsed = try #require(Timestamp.parse(text))
            let foundation = try Date(text, strategy: style)
            #expect(abs(parsed.timeIntervalSince1970 - foundation.timeIntervalSince1970) < 1e-6, "\(text)")
        }
        #expect(Timestamp.parse("2026-02-30T00:00:00.000Z") == (try? Date("2026-02-30T00:00:00.000Z", strategy: style)))
        #expect(Timestamp.parse("2026-11-21T12:00:00Z") != nil)
        #expect(Timestamp.parse("garbage") == nil)
    }

    @Test("traceparent headers parse on their bytes; random ones are 55 lower-case hex characters")
    func traceparents() throws {
        let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let parsed = try #require(Traceparent(header))
        #expect(parsed.description == header)
        #expect(parsed.traceID == "0af7651916cd43dd8448eb211c80319c" && parsed.spanID == "b7ad6b7169203331" && parsed.flags == "01")
        #expect(Traceparent(traceID: "é😀", spanID: "", flags: "x").description == "00-é😀--x")
        for broken in [
            "", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", header + "-", "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            #expect(Traceparent(broken) == nil, "\(broken)")
        }
        let hex = Set("0123456789abcdef")
        for _ in 0..<100 {
            let random = Traceparent.random()
            #expect(
                random.traceID.count == 32 && random.spanID.count == 16 && random.traceID.allSatisfy(hex.contains)
                    && random.spanID.allSatisfy(hex.contains))
            #expect(Traceparent(random.description) == random)
        }
    }

    @Test("new trace and span ids never repeat, from many threads at once, and their bits are balanced")
    func traceIdentifiersAreUnique() async {
        let made = await withTaskGroup(of: [Traceparent].self) { group in
            for _ in 0..<8 { group.addTask { (0..<2_000).map { _ in Traceparent.random() } } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(made.map(\.traceID)).count == made.count)
        #expect(Set(made.map(\.spanID)).count == made.count)
        // SplitMix64 as published (seed 0): a counter without the mixing would pass the checks above.
        #expect(
            [1, 2, 3].map { IdentifierGenerator.mix($0 &* IdentifierGenerator.step) } == [
                0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F,
            ])
        let child = made[0].child()
        #expect(child.traceID == made[0].traceID && child.spanID != made[0].spanID)
        // A counter or a constant would leave digits unused or skewed: every hex digit appears in each
        // position of the span id at about its share (1,000 of 16,000; a binomial's spread is about 31).
        for position in 0..<16 {
            var counts: [Character: Int] = [:]
            for parent in made { counts[Array(parent.spanID)[position], default: 0] += 1 }
            #expect(counts.count == 16 && counts.values.allSatisfy { (800...1_200).contains($0) }, "position \(position): \(counts)")
        }
    }

    @Test("withTimeout returns the body's result or error, times out a body that ignores cancellation, and passes cancellation on")
    func timeouts() async throws {
        #expect(try await withTimeout(.seconds(5), "quick") { 42 } == 42)
        await #expect(throws: CancellationError.self) { try await withTimeout(.seconds(5), "failing") { throw CancellationError() } }
        let clock = ContinuousClock()
        let started = clock.now
        await #expect(throws: TimeoutError.self) {
            try await withTimeout(.milliseconds(100), "stuck") {
                // Ignores cancellation, as a query on a dead connection would, without holding a thread
                // (a loop of cancelled sleeps spins: it held one of the pool's two threads for its length).
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 30) { done.resume() }
                }
                return 1
            }
        }
        // Long before the body would end (30 s), with room for a loaded machine.
        #expect(clock.now - started < .seconds(20))
        let sawCancel = AsyncStream<Bool>.makeStream()
        let caller = Task {
            try await withTimeout(.seconds(30), "cancelled") {
                do { try await Task.sleep(for: .seconds(30)) } catch { sawCancel.continuation.yield(true) }
                return 0
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        caller.cancel()
        var iterator = sawCancel.stream.makeAsyncIterator()
        #expect(await iterator.next() == true)
        _ = try? await caller.value
    }
}
