import AgentConnectCore
import Foundation
import Hummingbird
import Logging
import RelayCaller
import ServiceSupport

/// The sim's phone: places calls into voice-relay as Twilio would (`POST /sim/calls`).
struct VoiceRoutes: Sendable {
    let state: SimState
    let configuration: SimConfiguration
    let logger: Logger

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.post("/sim/calls") { request, _ in try await call(request) }
        router.get("/sim/calls/:sid") { _, context in
            guard let sid = context.parameters.get("sid"), let call = state.call(sid) else { return JSONResponse.error(.notFound, "no such call") }
            return JSONResponse.bytes(.ok, try encode(call))
        }
    }

    /// Answers a call created through the Calls API: reads the inline TwiML, dials the relay's socket
    /// as ConversationRelay would, says `script` and hangs up; the outcome is kept for `GET /sim/calls/{sid}`.
    func answer(sid: String, from: String, to: String, twiml: String, script: [String]) async {
        guard let url = RelayCaller.attribute("url", in: twiml) else {
            state.recordCall(sid, ["callSid": .string(sid), "error": "TwiML without a ConversationRelay url"])
            return
        }
        let greeting = RelayCaller.attribute("welcomeGreeting", in: twiml)
        createCallConversation(twiml: twiml, sid: sid, customer: to, agent: from)
        var caller = RelayCaller(
            relayURL: configuration.voiceURL, authToken: configuration.authToken, publicBaseURL: configuration.voicePublicBaseURL, logger: logger)
        // `applicationReconnect="true"`: a dropped socket is reconnected to the same URL (the voice URL, a load balancer in production).
        caller.applicationReconnect = RelayCaller.attribute("applicationReconnect", in: twiml)?.lowercased() == "true"
        do {
            // On an outbound call the customer is `to`; setup reports the call as Twilio does.
            let transcript = try await caller.call(
                publicURL: url, callSid: sid, from: from, to: to, direction: "outbound", script: script.map { .say($0) })
            await ConnectAction(state: state, configuration: configuration, logger: logger).follow(
                twiml: twiml, transcript: transcript, from: from, to: to, direction: "outbound-api")
            var json = Self.json(transcript).object ?? [:]
            json["welcomeGreeting"] = JSONValue(greeting)
            json["to"] = .string(to)
            state.recordCall(sid, .object(json))
        } catch {
            state.recordCall(sid, ["callSid": .string(sid), "error": .string("\(error)")])
        }
    }

    /// `{from?, to?, say: [..], interruptAfter?: N, dtmf?: "1"}` → the transcript with timings.
    private func call(_ request: Request) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        guard let input = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer)) else {
            return JSONResponse.error(.badRequest, "body must be JSON")
        }
        let prompts = input["say"]?.array?.compactMap(\.string) ?? []
        let transcript = try await placeCall(
            from: input["from"]?.string ?? "+15559990000",
            to: input["to"]?.string ?? configuration.senders.defaultSender(for: .voice) ?? "+15550000001",
            prompts: prompts, interruptAfter: input["interruptAfter"]?.double.map { Int($0) }, dtmf: input["dtmf"]?.string,
            callSid: input["callSid"]?.string, settle: input["settleMs"]?.double.map { .milliseconds(Int64($0)) })
        return JSONResponse.bytes(.ok, try encode(Self.json(transcript)))
    }

    /// Rings voice-relay: the voice webhook, then the ConversationRelay socket with the script.
    func placeCall(
        from: String, to: String, prompts: [String], interruptAfter: Int?, dtmf: String?, callSid: String? = nil, settle: Duration? = nil
    ) async throws
        -> RelayCaller.Transcript
    {
        var caller = RelayCaller(
            relayURL: configuration.voiceURL, authToken: configuration.authToken, publicBaseURL: configuration.voicePublicBaseURL, logger: logger)
        let sid = callSid ?? "CA" + state.nextId("").suffix(32)
        let (url, twiml) = try await caller.fetchTwiML(callSid: sid, from: from, to: to)
        state.recordCall(sid + ".live", ["callSid": .string(sid), "from": .string(from), "to": .string(to)])
        caller.applicationReconnect = RelayCaller.attribute("applicationReconnect", in: twiml)?.lowercased() == "true"
        createCallConversation(twiml: twiml, sid: sid, customer: from, agent: to)
        var script: [RelayCaller.Step] = []
        if let dtmf { script.append(.dtmf(dtmf)) }
        for (index, prompt) in prompts.enumerated() {
            if let interruptAfter, index == 0 {
                script.append(.sayAndInterrupt(prompt, afterTokens: interruptAfter))
            } else {
                script.append(.say(prompt))
            }
        }
        // `settleMs`: after the last reply, frames the app still sends (an `end` after a goodbye) are awaited that long.
        if let settle { script.append(.pause(settle)) }
        let transcript = try await caller.call(publicURL: url, callSid: sid, from: from, to: to, script: script)
        await ConnectAction(state: state, configuration: configuration, logger: logger).follow(
            twiml: twiml, transcript: transcript, from: from, to: to, direction: "inbound")
        return transcript
    }

    /// With `conversationConfiguration` in the TwiML, ConversationRelay creates the orchestrator
    /// conversation for the call, its `channelId` the CallSid; the sim does the same.
    func createCallConversation(twiml: String, sid: String, customer: String, agent: String) {
        guard RelayCaller.attribute("conversationConfiguration", in: twiml) != nil else { return }
        let id = state.nextId("conv_conversation_")
        state.upsert(
            SimState.Conversation(
                id: id, status: "ACTIVE", channelId: sid, metadata: [:],
                participants: [
                    state.makeParticipant(
                        conversationId: id, accountSid: configuration.accountSid, type: "CUSTOMER",
                        addresses: [["channel": "VOICE", "address": .string(customer), "channelId": .string(sid)]]),
                    state.makeParticipant(
                        conversationId: id, accountSid: configuration.accountSid, type: "AI_AGENT",
                        addresses: [["channel": "VOICE", "address": .string(agent), "channelId": .string(sid)]]),
                ], createdAt: Date()))
    }

    static func json(_ transcript: RelayCaller.Transcript) -> JSONValue {
        func ms(_ duration: Duration?) -> JSONValue {
            duration.map { .number($0.inMilliseconds) } ?? .null
        }
        return [
            "callSid": .string(transcript.callSid),
            "turns": .array(
                transcript.turns.map { turn in
                    [
                        "prompt": .string(turn.prompt), "text": .string(turn.text), "tokens": .array(turn.tokens.map { .string($0) }),
                        "firstTokenMs": ms(turn.firstToken), "completedMs": ms(turn.completed), "interrupted": .bool(turn.interrupted),
                        "acknowledged": .bool(turn.acknowledged), "lateTokens": .array(turn.lateTokens.map { .string($0) }),
                        "repeated": .bool(turn.repeated),
                    ]
                }),
            "closeCode": transcript.closeCode.map { .number(Double($0)) } ?? .null,
            "reconnects": .number(Double(transcript.reconnects)),
        ]
    }
}
