import AgentConnect
import Foundation
import Testing
import TwilioKit

/// The seeds' voice snippets as an author writes them in Swift (importing only `AgentConnect`): this
/// file must compile. `registerSeedSnippets` is never run against a live stack; the tests check the
/// values the snippets build and the handoff TwiML each destination answers.
enum SeedSnippets {
    static func registerSeedSnippets(tac: TAC) {
        let voiceChannel = VoiceChannel(tac, configuration: .init(memoryMode: .always))
        tac.onMessageReady { message, context, _ in
            // "Send a Voice response": a whole string, or the model's token stream (an AsyncStream).
            if context.channel == .voice {
                let llmResponse = AsyncStream<String> { continuation in
                    continuation.yield("You said: ")
                    continuation.yield(message)
                    continuation.finish()
                }
                try await voiceChannel.sendResponse(conversationId: context.conversationId, response: llmResponse)
                try await voiceChannel.sendResponse(conversationId: context.conversationId, response: "Anything else?")
                return nil
            }
            return "You said: \(message)"
        }
        tac.onInterrupt { context, interrupt in
            _ = (context.conversationId, interrupt.utteranceUntilInterrupt, interrupt.durationUntilInterruptMs)
        }
        tac.onConversationEnded { context in _ = context.conversationId }
        voiceChannel.onInboundCallTwiML { request in
            request.callerCountry == "MX"
                ? VoiceTwiMLOptions(language: "es-MX", languages: [VoiceLanguageOptions(code: "es-MX", voice: "Lupe")]) : nil
        }
    }

    /// "Initiate outbound conversations", Voice: the options as the seed passes them.
    static func outboundCall(publicDomain: String) -> InitiateVoiceConversationOptions {
        InitiateVoiceConversationOptions(
            to: "+16505551234", websocketURL: "wss://\(publicDomain)/ws",
            welcomeGreeting: "Hi! This is an AI assistant calling from Acme Corp.",
            actionURL: "https://\(publicDomain)/conversation-relay-callback")
    }

    static func outboundSMS() -> InitiateMessagingConversationOptions {
        InitiateMessagingConversationOptions(to: "+16505551234", message: "Hi! This is Acme Corp. Your order has shipped.")
    }
}

@Suite("Voice: seed snippets and handoff TwiML")
struct VoiceSeedSnippetsTests {
    @Test("the outbound voice seed's options carry the socket and action URLs; left out they default to the public domain")
    func outboundOptions() {
        let options = SeedSnippets.outboundCall(publicDomain: "agent.example.com")
        #expect(options.websocketURL == "wss://agent.example.com/ws")
        #expect(options.actionURL == "https://agent.example.com/conversation-relay-callback")
        #expect(InitiateVoiceConversationOptions(to: "+1").websocketURL == nil)
        #expect(SeedSnippets.outboundSMS().message.hasPrefix("Hi!"))
    }

    @Test(
        "a handoff to a number <Dial>s it; to SIP it carries the reason; to a workflow the task has the handoff data; to Studio it redirects to the flow"
    )
    func handoffTwiML() throws {
        let data = #"{"conversationId":"conv_1","attributes":{"reason":"billing question"}}"#
        let dial = try #require(try HandoffDestination.parse("+15557654321", accountSid: "AC1", studioFlowSid: nil))
        #expect(
            dial.twiml(handoffData: data, reason: "billing question", conversationId: "conv_1").contains("<Dial><Number>+15557654321</Number></Dial>")
        )
        let sip = try #require(try HandoffDestination.parse("sip:agent@pbx.example.com", accountSid: nil, studioFlowSid: nil))
        #expect(sip.twiml(handoffData: data, reason: "billing question", conversationId: "conv_1").contains("X-Handoff-Reason=billing%20question"))
        let workflow = try #require(try HandoffDestination.parse("workflow:WW123", accountSid: nil, studioFlowSid: nil))
        let task = workflow.twiml(handoffData: data, reason: "billing question", conversationId: "conv_1")
        #expect(task.contains(#"<Enqueue workflowSid="WW123"><Task>"#) && task.contains("&quot;reason&quot;:&quot;billing question&quot;"))
        let studio = try #require(try HandoffDestination.parse(nil, accountSid: "AC1", studioFlowSid: "FW9"))
        #expect(
            studio.twiml(handoffData: data, reason: nil, conversationId: nil).contains(
                "https://webhooks.twilio.com/v1/Accounts/AC1/Flows/FW9?HandoffData="))
        #expect(try HandoffDestination.parse(nil, accountSid: "AC1", studioFlowSid: nil) == nil)
        #expect(throws: (any Error).self) { try HandoffDestination.parse("somewhere", accountSid: nil, studioFlowSid: nil) }
    }

    @Test("CONVERSATION_RELAY_LANGUAGES keeps every key of a language; a call's options replace the environment's per field")
    func settings() throws {
        let settings = try ConversationRelaySettings(
            environment: .init([
                "CONVERSATION_RELAY_LANGUAGES": #"[{"voice":"Lupe","code":"es-MX","hints":"saldo","asrSmartFormat":true}]"#,
                "CONVERSATION_RELAY_VOICE": "A",
            ]))
        #expect(settings.languages.first?.map(\.0) == ["code", "asrSmartFormat", "hints", "voice"])
        let applied = settings.applying(VoiceTwiMLOptions(voice: "B", preemptible: true))
        #expect(applied.attribute("voice") == "B" && applied.attribute("preemptible") == "true" && applied.attribute("welcomeGreeting") != nil)
    }
}
