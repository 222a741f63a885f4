import AgentConnectCore
import Foundation
import Hummingbird
import NIOCore
import ServiceSupport
import TwilioKit

/// A medium attached to a customer's message in the sim: hosted by the sim (Twilio-style media URL,
/// Basic auth required) unless the request gave a URL of its own.
struct SimMedium: Sendable {
    var url: String
    var contentType: String
    var size: Int?

    /// For a classic webhook: `NumMedia`, `MediaUrl{n}`, `MediaContentType{n}`.
    static func formFields(_ media: [SimMedium]) -> [(String, String)] {
        [("NumMedia", String(media.count))]
            + media.enumerated().flatMap { index, medium in [("MediaUrl\(index)", medium.url), ("MediaContentType\(index)", medium.contentType)] }
    }

    /// For an orchestrator communication's `content.media`.
    static func json(_ media: [SimMedium]) -> JSONValue {
        .array(media.map { ["url": .string($0.url), "contentType": .string($0.contentType), "size": $0.size.map { .number(Double($0)) } ?? .null] })
    }

    /// A small picture (16×16 PNG, checkered) for messages that ask for a sample.
    static let samplePNG: [UInt8] = Array(
        Data(
            base64Encoded:
                "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAJUlEQVR4nGO4o2EDRxpRd+AIlzjDINRAjCJk8cGoYRAG60iMBwAPH08Qj69TFwAAAABJRU5ErkJggg=="
        ) ?? Data())
}

/// The sim's messaging rules and media: customer media, the media URLs Twilio serves, recipients
/// that cannot be reached.
struct SimMessaging: Sendable {
    let state: SimState
    let configuration: SimConfiguration

    /// Where the sim serves what it hosts (its own base URL, as Twilio's media URLs are on api.twilio.com).
    var baseURL: String { "http://\(configuration.host == "0.0.0.0" ? "127.0.0.1" : configuration.host):\(configuration.port)" }

    /// The `media` of a customer message: `[{contentType?, data? (base64), url?}]`, or `"sample"` items
    /// (the sim's sample picture). Hosted media get a Twilio-style URL on the sim.
    func customerMedia(_ value: JSONValue?) throws -> [SimMedium] {
        let items = value?.array ?? []
        guard items.count <= MessageRules.maxMediaPerMessage else { throw SimError(400, "at most 10 media per message") }
        return try items.map { item in
            if let url = item["url"]?.string {
                return SimMedium(url: url, contentType: item["contentType"]?.string ?? "application/octet-stream", size: nil)
            }
            let bytes: [UInt8]
            if let data = item["data"]?.string {
                guard let decoded = Data(base64Encoded: data) else { throw SimError(400, "media data must be base64") }
                bytes = Array(decoded)
            } else {
                bytes = SimMedium.samplePNG
            }
            let contentType = item["contentType"]?.string ?? "image/png"
            let sid = state.storeMedium(contentType: contentType, bytes: bytes)
            let url = "\(baseURL)/2010-04-01/Accounts/\(configuration.accountSid)/Messages/MM\(sid.dropFirst(2))/Media/\(sid)"
            return SimMedium(url: url, contentType: contentType, size: bytes.count)
        }
    }

    func add(to router: Router<BasicRequestContext>) {
        // Twilio enforces HTTP Basic auth on media URLs (account SID and auth token here; the sim knows no API keys).
        router.get("/2010-04-01/Accounts/:account/Messages/:message/Media/:media") { request, context -> Response in
            let header = request.headers[.authorization] ?? ""
            let decoded =
                header.hasPrefix("Basic ")
                ? Data(base64Encoded: String(header.dropFirst("Basic ".count))).map { String(decoding: $0, as: UTF8.self) } : nil
            guard decoded == "\(configuration.accountSid):\(configuration.authToken)" else {
                return JSONResponse.raw(.unauthorized, #"{"code":20003,"message":"Authenticate","status":401}"#)
            }
            guard let sid = context.parameters.get("media"), let medium = state.medium(sid) else {
                return JSONResponse.raw(.notFound, #"{"code":20404,"message":"The requested resource was not found","status":404}"#)
            }
            return Response(
                status: .ok, headers: [.contentType: medium.contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: medium.bytes)))
        }
        // The dev phone's view of hosted media (the sim listens on loopback only; Twilio's own URLs need auth).
        router.get("/sim/media/:media") { _, context -> Response in
            guard let sid = context.parameters.get("media"), let medium = state.medium(sid) else {
                return JSONResponse.error(.notFound, "no such medium")
            }
            return Response(
                status: .ok, headers: [.contentType: medium.contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: medium.bytes)))
        }
        // Makes sends to an address fail after Twilio accepted them: `{address, status?, errorCode?}`
        // (default undelivered, 30006 "landline or unreachable carrier"); DELETE with `?address=` clears it.
        router.post("/sim/recipients") { request, _ -> Response in
            let input = try await DevPhoneRoutes.json(request)
            guard let address = input["address"]?.string else { return JSONResponse.error(.badRequest, "address is required") }
            let status = input["status"]?.string ?? "undelivered"
            guard ["undelivered", "failed"].contains(status) else { return JSONResponse.error(.badRequest, "status must be undelivered or failed") }
            state.setUnreachable(address, (status, Int(input["errorCode"]?.double ?? 30006)))
            return JSONResponse.raw(.ok, #"{"status":"ok"}"#)
        }
        router.delete("/sim/recipients") { request, _ -> Response in
            let query = Dictionary(FormCoding.decode(request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
            if let address = query["address"] { state.setUnreachable(address, nil) }
            return JSONResponse.raw(.ok, #"{"status":"ok"}"#)
        }
        // Messages Twilio accepted but did not deliver (outside the window, unreachable recipients).
        router.get("/sim/messages/undelivered") { _, _ -> Response in
            JSONResponse.bytes(.ok, (try? encode(["messages": .array(state.undelivered.map(\.json))])) ?? [])
        }
    }
}
