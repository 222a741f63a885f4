import AgentConnect

/// Messaging as customers use it: pictures in and out, long answers, delivery status and failures.
///
/// - A message with media: each medium is fetched (with Twilio's credentials, size-capped) and
///   described in the reply, even when the customer sent no text.
/// - "send me a picture": the reply carries `MEDIA_AGENT_PICTURE_URL`.
/// - "long answer": a reply of about 4,000 characters, which arrives as several messages, in order.
/// - Every delivery status is logged; a failed delivery reaches `onError` with Twilio's error code.
@main
struct MediaAgent {
    static func main() async throws {
        let tac = try TAC(configuration: .fromEnvironment())
        let channels: [MessagingChannel] = [SMSChannel(tac), WhatsAppChannel(tac), RCSChannel(tac), ChatChannel(tac)]
        let picture = tac.configuration.environment.string("MEDIA_AGENT_PICTURE_URL", default: "https://demo.twilio.com/owl.png")

        tac.onMessageReady { message, session, _ in
            if !session.media.isEmpty {
                var described: [String] = []
                for medium in session.media {
                    let bytes = try await tac.fetchMedia(medium, maxBytes: 5 << 20)
                    described.append("\(medium.contentType ?? "a file") of \(bytes.count) bytes")
                }
                let caption = message.isEmpty ? "" : " (\(message))"
                return
                    "Thanks for the \(described.count == 1 ? "picture" : "\(described.count) files"): \(described.joined(separator: ", "))\(caption)"
            }
            switch message.lowercased().trimmingCharacters(in: .whitespaces) {
            case "send me a picture":
                try await channels.first { $0.channel == session.channel }?.sendResponse(
                    conversationId: session.conversationId, response: "Here is our owl.", media: [picture])
                return nil
            case "long answer":
                return longAnswer()
            default:
                return "You said: \(message)"
            }
        }

        tac.onDeliveryStatus { session, update in
            tac.logger.notice(
                "delivery status",
                metadata: ["conversation.id": "\(session.conversationId)", "status": "\(update.status)", "reply.id": "\(update.replyId ?? "-")"])
        }

        tac.onError { error, context in
            tac.logger.notice(
                "onError",
                metadata: [
                    "error.code": "\(context["error.code"] ?? "-")", "conversation.id": "\(context["conversation.id"] ?? "-")",
                    "error": "\(error)",
                ])
        }

        try await tac.run()
    }

    /// About 4,000 characters: 70 numbered sentences.
    static func longAnswer() -> String {
        (1...70).map { "Sentence \($0) of the long answer explains one more detail." }.joined(separator: " ")
    }
}
