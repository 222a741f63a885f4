import AgentConnectCore
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1

/// Base URLs and credentials of Twilio's REST APIs (each documented in .env.example); overridable for `twilio-sim`.
package struct TwilioAPIConfiguration: Sendable {
    package var accountSid: String
    package var username: String
    package var password: String
    package var apiBaseURL: String
    package var conversationsBaseURL: String
    package var studioBaseURL: String

    package init(
        accountSid: String, username: String, password: String, apiBaseURL: String = "https://api.twilio.com",
        conversationsBaseURL: String = "https://conversations.twilio.com", studioBaseURL: String = "https://studio.twilio.com"
    ) {
        self.accountSid = accountSid
        self.username = username
        self.password = password
        self.apiBaseURL = apiBaseURL
        self.conversationsBaseURL = conversationsBaseURL
        self.studioBaseURL = studioBaseURL
    }

    /// Reads `TWILIO_ACCOUNT_SID`, `TWILIO_API_KEY`/`TWILIO_API_SECRET` (falling back to the account SID
    /// and `TWILIO_AUTH_TOKEN`) and the base URLs.
    package init(environment: Environment) throws {
        let accountSid = try environment.required("TWILIO_ACCOUNT_SID")
        try DevCredentials.refuseWithRealTwilio(environment)
        let username = environment.string("TWILIO_API_KEY") ?? accountSid
        let password: String
        if environment.string("TWILIO_API_KEY") != nil {
            password = try environment.required("TWILIO_API_SECRET")
        } else {
            guard let token = environment.string("TWILIO_AUTH_TOKEN") else {
                throw ConfigurationError(variable: "TWILIO_API_KEY", reason: "or TWILIO_AUTH_TOKEN is required for REST calls")
            }
            password = token
        }
        self.init(
            accountSid: accountSid, username: username, password: password,
            apiBaseURL: try environment.url("TWILIO_API_BASE_URL", default: "https://api.twilio.com"),
            conversationsBaseURL: try environment.url("TWILIO_CONVERSATIONS_BASE_URL", default: "https://conversations.twilio.com"),
            studioBaseURL: try environment.url("TWILIO_STUDIO_BASE_URL", default: "https://studio.twilio.com"))
    }
}

/// A response from Twilio.
package struct TwilioResponse: Sendable {
    package var status: Int
    package var headers: HTTPHeaders
    package var body: [UInt8]

    /// A response with this status, headers and body.
    package init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body parsed as JSON, when it is (read on its bytes, without Foundation's `JSONDecoder`).
    package var json: JSONValue? { try? CompactJSON.decode(body) }
}

/// Calls Twilio's REST APIs over pooled keep-alive connections (``HTTP1Client``), with Basic auth.
///
/// Non-2xx answers become ``TwilioAPIError`` (with `Retry-After`); every error is counted in
/// `agentconnect_twilio_api_errors_total{status,code}`.
package struct TwilioRESTClient: Sendable {
    package let configuration: TwilioAPIConfiguration
    private let http: HTTP1Client
    private let authorization: String
    private let timeout: TimeAmount

    package init(configuration: TwilioAPIConfiguration, httpClient: HTTP1Client, timeout: TimeAmount = .seconds(15)) {
        self.configuration = configuration
        self.http = httpClient
        self.timeout = timeout
        authorization = "Basic " + Data("\(configuration.username):\(configuration.password)".utf8).base64EncodedString()
    }

    /// Sends a JSON body (or none) and returns the 2xx response.
    package func json(_ method: HTTPMethod, _ url: String, body: JSONValue? = nil, headers extra: [(String, String)] = []) async throws
        -> TwilioResponse
    {
        var headers = HTTPHeaders()
        var payload: ByteBuffer?
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            payload = ByteBuffer(bytes: try CompactJSON.encode(body))
        }
        return try await send(method, url, headers: headers, body: payload, extra: extra)
    }

    /// Sends a form body and returns the 2xx response.
    package func form(_ method: HTTPMethod, _ url: String, fields: [(String, String)], headers extra: [(String, String)] = []) async throws
        -> TwilioResponse
    {
        let headers: HTTPHeaders = ["Content-Type": "application/x-www-form-urlencoded"]
        return try await send(method, url, headers: headers, body: ByteBuffer(bytes: FormCoding.encodeBytes(fields)), extra: extra)
    }

    /// The largest response body read (Twilio's are a few KiB; a page of a list is the largest).
    static let maxResponseBytes = 4 << 20

    /// Failures that happen before the request could have reached Twilio.
    static func isConnectFailure(_ error: any Error) -> Bool {
        (error as? HTTP1ClientError)?.neverSent ?? false
    }

    /// One request, answered whole (collected on the connection's event loop, the caller resumed
    /// once). Cancelling the caller cancels the request.
    private func send(_ method: HTTPMethod, _ url: String, headers: HTTPHeaders, body: ByteBuffer?, extra: [(String, String)]) async throws
        -> TwilioResponse
    {
        var headers = headers
        headers.add(name: "Authorization", value: authorization)
        headers.add(name: "User-Agent", value: "agentconnect-swift/0.1")
        for (name, value) in extra { headers.add(name: name, value: value) }
        let response: HTTP1Client.Response
        do {
            response = try await http.execute(method, url: url, headers: headers, body: body, timeout: timeout)
        } catch let error as HTTP1ClientError where error.kind == .invalidURL {
            Counter(label: "agentconnect_twilio_api_errors_total", dimensions: [("status", "0"), ("code", "bad_url")]).increment()
            var failure = TwilioAPIError(status: 0, message: "bad request URL: \(url)")
            failure.neverSent = true
            throw failure
        } catch {
            Counter(label: "agentconnect_twilio_api_errors_total", dimensions: [("status", "0"), ("code", "transport")]).increment()
            var failure = TwilioAPIError(status: 0, message: "request failed: \(error)")
            failure.neverSent = Self.isConnectFailure(error)
            throw failure
        }
        let result = TwilioResponse(status: Int(response.status.code), headers: response.headers, body: Array(buffer: response.body))
        guard (200..<300).contains(result.status) else {
            let json = result.json
            let code = json?["code"]?.double.map { Int($0) }
            Counter(
                label: "agentconnect_twilio_api_errors_total",
                dimensions: [("status", String(result.status)), ("code", code.map(String.init) ?? "none")]
            ).increment()
            throw TwilioAPIError(
                status: result.status, code: code, message: json?["message"]?.string ?? String(decoding: result.body.prefix(200), as: UTF8.self),
                retryAfterSeconds: response.headers.first(name: "Retry-After").flatMap(Double.init),
                conflictingResourceId: response.headers.first(name: "X-Conflicting-Resource-Id"))
        }
        return result
    }
}
