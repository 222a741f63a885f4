import AgentConnectCore
import NIOHTTP1
import Testing
import TwilioKit

/// The REST bodies outbound sends and reads, written and parsed without Foundation.
@Suite("Twilio REST bodies: form encoding and JSON responses")
struct TwilioRESTBodiesTests {
    @Test("a form body is percent-encoded byte for byte as Twilio reads it, in order")
    func formBody() {
        let fields = [("To", "+1 555-0100"), ("From", "whatsapp:+15550000001"), ("Body", "é & = ~._ 100%"), ("MediaUrl", "")]
        let expected = "To=%2B1%20555-0100&From=whatsapp%3A%2B15550000001&Body=%C3%A9%20%26%20%3D%20~._%20100%25&MediaUrl="
        #expect(String(decoding: FormCoding.encodeBytes(fields), as: UTF8.self) == expected)
        #expect(FormCoding.encode(fields) == expected)
        #expect(FormCoding.percentEncode("a/b c") == "a%2Fb%20c")
        #expect(FormCoding.encodeBytes([]).isEmpty)
        #expect(FormCoding.decode(expected).map { [$0.0, $0.1] } == fields.map { [$0.0, $0.1] })
    }

    @Test("a response body is read as JSON with whitespace, escapes and non-ASCII text; one that is not JSON is nil")
    func responseJSON() {
        let text =
            "{\n  \"sid\": \"SM\\u0031\",\n  \"body\": \"caf\u{e9} \\ud83d\\ude00\",\n  \"price\": -0.0075, \"num_media\": \"0\", \"error_code\": null\n}"
        let response = TwilioResponse(status: 201, headers: HTTPHeaders(), body: Array(text.utf8))
        #expect(response.json?["sid"]?.string == "SM1")
        #expect(response.json?["body"]?.string == "caf\u{e9} \u{1F600}")
        #expect(response.json?["price"]?.double == -0.0075)
        #expect(TwilioResponse(status: 502, headers: HTTPHeaders(), body: Array("<html>Bad gateway</html>".utf8)).json == nil)
        #expect(TwilioResponse(status: 204, headers: HTTPHeaders(), body: []).json == nil)
    }
}
