import AgentConnectCore
import Testing
import TwilioKit

@testable import MessagingIngress

/// ``WebhookClassifier``: verified webhook bodies in, decisions (typed events, drops, rejections) out.
@Suite("Webhook classifier")
struct WebhookClassifierTests {
    static let agent = "+15550002222"
    static let customer = "+15550001111"

    let classifier = WebhookClassifier(
        senders: Senders(phoneNumbers: [agent, "+15550003333"], whatsappNumbers: ["whatsapp:\(agent)"]), conversationConfigurationId: "CF1",
        accountSid: "AC1")
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    /// The event and dedup key of a `.publish`, or a recorded issue.
    func published(_ decision: WebhookDecision, sourceLocation: SourceLocation = #_sourceLocation) -> (event: BusEvent, key: String)? {
        guard case .publish(let event, let key) = decision else {
            Issue.record("expected a publish, got \(decision)", sourceLocation: sourceLocation)
            return nil
        }
        return (event, key)
    }

    func classic(_ extra: [(String, String)] = [], from: String = customer, to: String = agent, body: String? = "hello") -> WebhookDecision {
        var fields = [("From", from), ("To", to), ("MessageSid", "SM1"), ("AccountSid", "AC1")]
        if let body { fields.append(("Body", body)) }
        return classifier.classifyClassicMessage(fields + extra, traceparent: traceparent)
    }

    /// A `COMMUNICATION_CREATED` event's `data`.
    func communication(
        text: String = "hi", channel: String = "SMS", author: String = customer, recipients: [JSONValue]? = nil, media: [JSONValue] = [],
        id: String? = "comm1"
    ) -> JSONValue {
        var data: [String: JSONValue] = [
            "conversationId": "conv1", "author": ["channel": .string(channel), "address": .string(author), "participantId": "PC1"],
            "content": ["text": .string(text), "media": .array(media)], "channelId": "CH1",
        ]
        if let recipients { data["recipients"] = .array(recipients) }
        if let id { data["id"] = .string(id) }
        return ["eventType": "COMMUNICATION_CREATED", "data": .object(data)]
    }

    @Test("a classic SMS is a classic message.received on the customer's classic conversation, its id derived from the MessageSid")
    func classicMessage() throws {
        let (event, key) = try #require(published(classic([("NumMedia", "1"), ("MediaUrl0", "https://m/0"), ("MediaContentType0", "image/png")])))
        #expect(key == "msg:SM1")
        #expect(event.id == WebhookClassifier.eventId("msg:SM1"))
        #expect(event.conversationId == classicConversationId(channel: .sms, agent: Self.agent, customer: Self.customer))
        #expect(event.channel == .sms && event.traceparent == traceparent)
        let message = try event.decode(MessageReceived.self)
        #expect(
            message
                == MessageReceived(
                    mode: .classic, text: "hello", authorAddress: Self.customer, media: [.init(url: "https://m/0", contentType: "image/png")],
                    agentAddress: Self.agent, messageSid: "SM1"))
    }

    @Test("classic: the agent's own message, another account, an unknown recipient and an empty body are dropped; a missing field is rejected")
    func classicDrops() {
        #expect(classic(from: Self.agent, to: "+15550003333") == .drop(reason: "own_message", isError: false))
        #expect(
            classifier.classifyClassicMessage(
                [("From", Self.customer), ("To", Self.agent), ("MessageSid", "SM1"), ("AccountSid", "AC2"), ("Body", "x")], traceparent: traceparent)
                == .drop(reason: "wrong_account", isError: true))
        #expect(classic(to: "+15559999999") == .drop(reason: "unknown_recipient", isError: true))
        #expect(classic(body: "  \n") == .drop(reason: "empty_text", isError: false))
        #expect(
            classifier.classifyClassicMessage([("From", Self.customer), ("To", Self.agent)], traceparent: traceparent)
                == .reject("missing MessageSid"))
        #expect(
            classifier.classifyClassicMessage([("To", Self.agent), ("MessageSid", "SM1")], traceparent: traceparent) == .reject("missing From or To"))
    }

    @Test("classic: a WhatsApp message is on the whatsapp channel; STOP carries its opt keyword; media alone is a message")
    func classicChannelsAndKeywords() throws {
        let whatsapp = try #require(published(classic(from: "whatsapp:\(Self.customer)", to: "whatsapp:\(Self.agent)")))
        #expect(whatsapp.event.channel == .whatsapp)
        let stop = try #require(published(classic(body: "Stop!")))
        #expect(try stop.event.decode(MessageReceived.self).optOut == MessageRules.OptKeyword.optOut.rawValue)
        let mediaOnly = try #require(published(classic([("NumMedia", "1"), ("MediaUrl0", "https://m/0")], body: nil)))
        #expect(try mediaOnly.event.decode(MessageReceived.self).media?.map(\.url) == ["https://m/0"])
    }

    @Test("orchestrator COMMUNICATION_CREATED is an orchestrator message.received naming the recipient we own, deduplicated on the communication id")
    func orchestratorMessage() throws {
        let decision = classifier.classifyOrchestratorEvent(
            communication(recipients: [
                ["channel": "SMS", "address": "+15550003333", "participantId": "PA3"], ["channel": "EMAIL", "address": "a@b.c"],
            ]), bodyHash: "h", traceparent: traceparent)
        let (event, key) = try #require(published(decision))
        #expect(key == "comm:comm1" && event.id == WebhookClassifier.eventId("comm:comm1"))
        #expect(event.conversationId == "conv1" && event.channel == .sms && event.type == EventType.messageReceived)
        #expect(
            try event.decode(MessageReceived.self)
                == MessageReceived(
                    mode: .orchestrator, text: "hi", authorAddress: Self.customer, media: [], authorParticipantId: "PC1",
                    agentAddress: "+15550003333",
                    agentParticipantId: "PA3", channelId: "CH1", communicationId: "comm1"))
    }

    @Test("orchestrator: no recipients means the default sender; Chat means the chat agent; no id means the body hash is the key")
    func orchestratorDefaults() throws {
        let noRecipients = try #require(
            published(classifier.classifyOrchestratorEvent(communication(id: nil), bodyHash: "abc", traceparent: traceparent)))
        #expect(noRecipients.key == "body:abc")
        #expect(try noRecipients.event.decode(MessageReceived.self).agentAddress == Self.agent)
        let chat = try #require(
            published(classifier.classifyOrchestratorEvent(communication(channel: "CHAT"), bodyHash: "h", traceparent: traceparent)))
        #expect(chat.event.channel == .chat)
        #expect(try chat.event.decode(MessageReceived.self).agentAddress == "ai-assistant")
    }

    @Test("orchestrator: own messages, unknown recipients, empty texts and voice are not published; a missing field is rejected")
    func orchestratorDrops() {
        func classify(_ body: JSONValue) -> WebhookDecision { classifier.classifyOrchestratorEvent(body, bodyHash: "h", traceparent: traceparent) }
        #expect(classify(communication(author: Self.agent)) == .drop(reason: "own_message", isError: false))
        #expect(
            classify(communication(recipients: [["channel": "SMS", "address": "+15559999999"]])) == .drop(reason: "unknown_recipient", isError: true))
        #expect(classify(communication(text: " ")) == .drop(reason: "empty_text", isError: false))
        #expect(classify(communication(channel: "VOICE")) == .ignore("communication on channel VOICE"))
        #expect(
            classify(["eventType": "COMMUNICATION_CREATED", "data": ["author": ["channel": "SMS"]]])
                == .reject("COMMUNICATION_CREATED without conversationId"))
        #expect(classify(["data": [:]]) == .reject("missing eventType"))
        #expect(classify(["eventType": "SOMETHING_ELSE", "data": [:]]) == .ignore("SOMETHING_ELSE"))
        #expect(classify(.array([])) == .reject("webhook payload must be a JSON object"))
    }

    @Test("media: at most 10, sizes carried only as whole non-negative numbers an Int holds")
    func orchestratorMedia() {
        let items: [JSONValue] = (0..<12).map { ["url": .string("https://m/\($0)"), "contentType": "image/png", "size": 10] }
        #expect(WebhookClassifier.orchestratorMedia(["media": .array(items)]).count == 10)
        let sizes: [JSONValue] = [.number(1e300), .number(-4), .number(5.5), .string("2048"), .number(2048), .null]
        #expect(sizes.map { WebhookClassifier.mediaSize($0) } == [nil, nil, nil, 2048, 2048, nil])
        #expect(
            WebhookClassifier.orchestratorMedia(["media": [["mediaUrl": "https://m/x", "content_type": "audio/ogg"], ["url": ""]]])
                == [.init(url: "https://m/x", contentType: "audio/ogg")])
    }

    @Test("CONVERSATION_UPDATED: CLOSED ends the conversation (channel unknown), INACTIVE is conversation.inactive, other configurations are ignored")
    func conversationUpdated() throws {
        func updated(_ status: String, configuration: String = "CF1") -> WebhookDecision {
            classifier.classifyOrchestratorEvent(
                [
                    "eventType": "CONVERSATION_UPDATED",
                    "data": [
                        "id": "conv1", "configurationId": .string(configuration), "status": .string(status), "updatedAt": "t1",
                        "metadata": ["k": "v"],
                    ],
                ], bodyHash: "h", traceparent: traceparent)
        }
        let closed = try #require(published(updated("CLOSED")))
        #expect(closed.key == "conv:conv1:CLOSED:t1" && closed.event.id == WebhookClassifier.eventId(closed.key))
        #expect(closed.event.channel == .sms)
        #expect(
            try closed.event.decode(ConversationEnded.self)
                == ConversationEnded(
                    reason: .orchestrator, status: "CLOSED", channelKnown: false, metadata: ["k": "v"]))
        let inactive = try #require(published(updated("INACTIVE")))
        #expect(try inactive.event.decode(ConversationInactive.self) == ConversationInactive(metadata: ["k": "v"]))
        #expect(updated("ACTIVE") == .ignore("status ACTIVE"))
        #expect(updated("CLOSED", configuration: "CF2") == .ignore("configurationId does not match"))
    }

    @Test("PARTICIPANT_ADDED is conversation.started on the participant's channel, deduplicated on the participant")
    func participantAdded() throws {
        let decision = classifier.classifyOrchestratorEvent(
            [
                "eventType": "PARTICIPANT_ADDED",
                "data": [
                    "conversationId": "conv1", "id": "PC1", "type": "CUSTOMER", "addresses": [["channel": "WHATSAPP", "address": "whatsapp:+1"]],
                ],
            ], bodyHash: "h", traceparent: traceparent)
        let (event, key) = try #require(published(decision))
        #expect(key == "participant:PC1" && event.channel == .whatsapp)
        #expect(
            try event.decode(ConversationStarted.self)
                == ConversationStarted(participantId: "PC1", participantType: "CUSTOMER", address: "whatsapp:+1"))
    }

    @Test("a status callback is message.status on the classic conversation; error code 0 is no error; an unknown sender is dropped")
    func messageStatus() throws {
        let fields = [("MessageSid", "SM9"), ("MessageStatus", "Delivered"), ("ErrorCode", "0"), ("From", Self.agent), ("To", Self.customer)]
        let (event, key) = try #require(published(classifier.classifyMessageStatus(fields, traceparent: traceparent)))
        #expect(key == "status:SM9:delivered")
        #expect(event.conversationId == classicConversationId(channel: .sms, agent: Self.agent, customer: Self.customer))
        #expect(
            try event.decode(MessageStatus.self)
                == MessageStatus(
                    messageSid: "SM9", status: "delivered", agentAddress: Self.agent, customerAddress: Self.customer))
        let failed = try #require(
            published(
                classifier.classifyMessageStatus(
                    [("SmsSid", "SM9"), ("SmsStatus", "failed"), ("ErrorCode", "30003"), ("From", Self.agent), ("To", Self.customer)],
                    traceparent: traceparent)))
        #expect(try failed.event.decode(MessageStatus.self).errorCode == "30003")
        #expect(
            classifier.classifyMessageStatus(
                [("MessageSid", "SM9"), ("MessageStatus", "sent"), ("From", "+19999"), ("To", Self.customer)], traceparent: traceparent)
                == .drop(reason: "unknown_sender", isError: true))
        #expect(
            classifier.classifyMessageStatus([("MessageSid", "SM9"), ("From", Self.agent), ("To", Self.customer)], traceparent: traceparent)
                == .reject("missing MessageStatus"))
    }

    @Test("an intelligence result is carried whole, deduplicated on its result ids whatever their order, else on the body")
    func intelligenceResult() throws {
        func key(_ ids: [String]) throws -> String {
            let body: JSONValue = [
                "conversationId": "conv1", "operatorResults": .array(ids.map { ["id": .string($0)] }), "intelligenceConfiguration": ["id": "IC1"],
            ]
            let (event, dedupKey) = try #require(
                published(classifier.classifyIntelligenceResult(body, conversationId: "conv1", bodyHash: "bh", traceparent: traceparent)))
            #expect(try event.decode(IntelligenceResult.self).body == body)
            return dedupKey
        }
        #expect(try key(["r1", "r2"]) == key(["r2", "r1"]))
        #expect(try key(["r1"]) != key(["r2"]))
        #expect(try key([]) == "ci:body:bh")
    }

    @Test("event ids are UUID-shaped and a function of the dedup key alone")
    func eventIds() {
        let id = WebhookClassifier.eventId("msg:SM1")
        #expect(id == WebhookClassifier.eventId("msg:SM1") && id != WebhookClassifier.eventId("msg:SM2"))
        #expect(id.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])
    }
}
