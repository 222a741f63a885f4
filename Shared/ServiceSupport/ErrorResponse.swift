import HTTPTypes
import Hummingbird
import NIOCore

/// Short JSON answers for HTTP edges: `{"error":"<reason>"}` with the right status, never internals.
package enum JSONResponse {
    /// An error answer.
    package static func error(_ status: HTTPResponse.Status, _ reason: String) -> Response {
        let escaped = reason.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: #"{"error":"\#(escaped)"}"#)))
    }

    /// A JSON body from raw text.
    package static func raw(_ status: HTTPResponse.Status, _ json: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    /// A JSON body from bytes.
    package static func bytes(_ status: HTTPResponse.Status, _ json: [UInt8]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}
