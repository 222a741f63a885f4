import AgentConnectCore
import Foundation
import Testing
import TwilioKit

/// What a caller of `/v1/calls` (`twiml`) or a per-call TwiML hook chooses can only set attribute
/// values, never write markup into the call's TwiML.
@Suite("TwiML: options cannot inject markup")
struct TwiMLInjectionTests {
    static let injected = #"x="1"/></Connect><Redirect>https://evil.example/take</Redirect><Connect><ConversationRelay y"#

    @Test("an `extra` attribute whose name is markup is left out; ordinary extras stay")
    func extraAttributeName() throws {
        let options = ConversationRelayOptions(extra: [Self.injected: "z", "newAttribute": "on"])
        let settings = ConversationRelaySettings().applying(options)
        let xml = TwiMLBuilder(settings: settings, actionURL: "https://relay.example/cb", websocketURL: "wss://relay.example/ws?token=t").build()
        #expect(!xml.contains("<Redirect>"))
        #expect(!xml.contains("evil.example"))
        #expect(xml.contains(#" newAttribute="on""#))
        #expect(try Self.elements(xml) == ["Response", "Connect", "ConversationRelay"])
    }

    @Test("a `<Language>` extra whose name is markup is left out")
    func languageExtraName() throws {
        let options = ConversationRelayOptions(languages: [LanguageOptions(code: "es-MX", extra: [Self.injected: "z", "speechModel2": "m"])])
        let xml = TwiMLBuilder(settings: ConversationRelaySettings().applying(options), actionURL: nil, websocketURL: "wss://relay.example/ws")
            .build()
        #expect(!xml.contains("<Redirect>"))
        #expect(xml.contains(#"<Language code="es-MX" speechModel2="m"/>"#))
        #expect(try Self.elements(xml) == ["Response", "Connect", "ConversationRelay", "Language"])
    }

    @Test("characters XML does not allow are left out of values (the document stays well-formed)")
    func invalidCharacters() throws {
        let options = ConversationRelayOptions(welcomeGreeting: "Hi\u{1}\u{0B} there\u{FFFE}\ttab")
        let xml = TwiMLBuilder(settings: ConversationRelaySettings().applying(options), actionURL: nil, websocketURL: "wss://relay.example/ws")
            .build()
        #expect(xml.contains(#"welcomeGreeting="Hi there"#))
        #expect(try Self.elements(xml) == ["Response", "Connect", "ConversationRelay"])
        let handoff = HandoffDestination.queue("support\u{0}").twiml(handoffData: "{}", reason: nil, conversationId: nil)
        #expect(handoff.contains("<Enqueue>support</Enqueue>"))
    }

    @Test("attribute names: letters first, then letters, digits, -, _ and .")
    func names() {
        #expect(TwiMLBuilder.isAttributeName("welcomeGreeting"))
        #expect(TwiMLBuilder.isAttributeName("x-y_z.1"))
        #expect(!TwiMLBuilder.isAttributeName(""))
        #expect(!TwiMLBuilder.isAttributeName("1abc"))
        #expect(!TwiMLBuilder.isAttributeName("a b"))
        #expect(!TwiMLBuilder.isAttributeName(#"a="b""#))
        #expect(!TwiMLBuilder.isAttributeName("a>"))
        #expect(!TwiMLBuilder.isAttributeName("é"))
    }

    /// The element names of a document, in order: every `<` opens or closes one, so markup written
    /// through an option shows up here.
    static func elements(_ xml: String) throws -> [String] {
        var names: [String] = []
        var rest = Substring(xml)
        while let open = rest.firstIndex(of: "<") {
            rest = rest[rest.index(after: open)...]
            guard let first = rest.first else { break }
            if first == "?" || first == "/" { continue }
            names.append(String(rest.prefix { $0.isLetter || $0.isNumber }))
        }
        return names
    }
}
