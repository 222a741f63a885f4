import AgentConnectCore
import Foundation
import Logging
import Testing

@testable import ServiceSupport

/// ``JSONLogHandler``: one JSON object per line, as `LOG_FORMAT=json` promises.
@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test("a line is one sorted JSON object with the timestamp, level, service, message and metadata, escaped")
    func line() throws {
        var handler = JSONLogHandler(label: "outbound", level: .info)
        handler.metadata = ["instance": "out-1", "call.sid": "overridden"]
        let event = LogEvent(
            level: .warning, message: "reply \"failed\"\nretrying", metadata: ["call.sid": "CA1", "path": "/a/b"], source: nil, file: #file,
            function: #function, line: #line)
        let bytes = handler.line(event, at: Date(timeIntervalSince1970: 0))
        #expect(bytes.last == 0x0a)
        #expect(bytes.dropLast().allSatisfy { $0 != 0x0a })
        let text = String(decoding: bytes.dropLast(), as: UTF8.self)
        #expect(
            text
                == #"{"call.sid":"CA1","instance":"out-1","level":"warning","msg":"reply \"failed\"\nretrying","path":"/a/b","service":"outbound","ts":"1970-01-01T00:00:00.000Z"}"#
        )
        let parsed = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: String]
        #expect(parsed?["msg"] == "reply \"failed\"\nretrying")
    }
}
