import AgentConnect
import AgentConnectCore
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationEssentialsCompat
import NIOHTTP1
import TwilioKit

/// Calls the outbound service's API (`OUTBOUND_URL`, bearer `OUTBOUND_API_TOKEN`).
struct OutboundClient: Sendable {
    let configuration: TACConfiguration

    func post(_ path: String, _ body: JSONValue, idempotencyKey: String? = nil) async throws -> JSONValue {
        guard let token = configuration.outboundAPIToken else {
            throw TACError("OUTBOUND_API_TOKEN is not set: the outbound API needs it")
        }
        var request = HTTPClientRequest(url: configuration.outboundURL + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        if let idempotencyKey { request.headers.add(name: "Idempotency-Key", value: idempotencyKey) }
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let answer = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: try await response.body.collect(upTo: 1 << 20)))
        guard (200..<300).contains(response.status.code) else {
            throw TACError("outbound API answered \(response.status.code): \(answer["error"]?.string ?? "")")
        }
        return answer
    }
}

/// Fetches the media of customers' messages (``TAC/fetchMedia(_:maxBytes:timeout:)``).
struct MediaFetcher: Sendable {
    let environment: Environment

    func fetch(_ media: MessageMedia, maxBytes: Int, timeout: Duration) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: media.url)
        request.method = .GET
        if let credentials = try credentials(for: media.url) {
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(credentials.0):\(credentials.1)".utf8).base64EncodedString())
        }
        let prepared = request
        let seconds = Int64(timeout.components.seconds) + 1
        return try await withTimeout(timeout, "fetching a medium") {
            let response = try await HTTPClient.shared.execute(prepared, timeout: .seconds(seconds))
            guard (200..<300).contains(response.status.code) else {
                throw TACError("fetching a medium answered \(response.status.code)")
            }
            if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBytes {
                throw TACError("the medium is \(length) bytes, more than the \(maxBytes) allowed")
            }
            var bytes: [UInt8] = []
            for try await chunk in response.body {
                guard bytes.count + chunk.readableBytes <= maxBytes else {
                    throw TACError("the medium is more than the \(maxBytes) bytes allowed")
                }
                bytes += chunk.readableBytesView
            }
            return bytes
        }
    }

    /// The REST credentials for a media URL on `TWILIO_API_BASE_URL`'s scheme and host, or on Twilio's
    /// hosts over https; else nil (never over plain http to a host we did not configure). A redirect
    /// to another origin (Twilio's media redirect to storage) drops them: AsyncHTTPClient removes
    /// `Authorization` across origins.
    private func credentials(for url: String) throws -> (String, String)? {
        guard let components = URLComponents(string: url), let host = components.host?.lowercased() else {
            throw TACError("not a media URL: \(url)")
        }
        let twilio = try TwilioAPIConfiguration(environment: environment)
        let api = URLComponents(string: twilio.apiBaseURL)
        let onConfiguredAPI = host == api?.host?.lowercased() && components.scheme?.lowercased() == api?.scheme?.lowercased()
        let onTwilio = components.scheme?.lowercased() == "https" && (host == "twilio.com" || host.hasSuffix(".twilio.com"))
        guard onConfiguredAPI || onTwilio else { return nil }
        return (twilio.username, twilio.password)
    }
}
