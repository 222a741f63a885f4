import AgentConnectCore
import Foundation
import Testing

@Suite("The dev phone page in a real headless Chromium")
struct DevPhoneTests {
    @Test("send an SMS and read the echo; call, see the reply stream in token by token, interrupt it; screenshot saved")
    func devPhone() async throws {
        var options = TestStack.Options(relays: 1)
        options.extra = ["ECHO_TOKEN_DELAY_MS": "200"]
        try await withStack(options) { stack in
            let browser = try await Chromium.launch()
            defer { browser.close() }
            let screenshot = try await browser.withPage { page in
                _ = try await page.send("Page.navigate", ["url": .string("http://127.0.0.1:\(stack.simPort)/")])
                #expect(try await page.waitFor("document.body && document.body.dataset.live === '1'"))

                // Messaging: type, send, read the agent's answer and its hop timings.
                try await page.evaluate(##"$("from").value = "+15557712345"; $("text").value = "hello from the browser"; $("send").click();"##)
                let answered = try await page.waitFor(
                    ##"[...document.querySelectorAll("#thread .agent .text")].some(e => e.textContent === "You said: hello from the browser")"##)
                #expect(answered)
                let hops = try await page.evaluate(##"document.querySelector("#thread .agent .hops")?.textContent || ''"##).string ?? ""
                #expect(hops.contains("total"))

                // Voice: call, say a sentence, watch it stream, interrupt it.
                try await page.evaluate(##"$("call").click()"##)
                #expect(try await page.waitFor(##"!$("prompt").disabled"##))
                // The page's own record of every state the reply went through (polling from here could
                // miss some under load).
                try await page.evaluate(
                    ##"""
                    window.__partials = [];
                    new MutationObserver(() => {
                      const t = document.querySelector("#callLog .reply .text")?.textContent;
                      if (t && window.__partials[window.__partials.length - 1] !== t) window.__partials.push(t);
                    }).observe($("callLog"), { subtree: true, childList: true, characterData: true });
                    """##)
                try await page.evaluate(##"$("prompt").value = "please tell me a long story about the sea and ships"; $("say").click();"##)
                #expect(try await page.waitFor(##"(document.querySelector("#callLog .reply .text")?.textContent || '').split(" ").length >= 4"##))
                let partials = try await page.evaluate("window.__partials.length").double ?? 0
                #expect(partials >= 2, "the reply showed \(Int(partials)) states")
                try await page.evaluate(##"$("interrupt").click()"##)
                #expect(try await page.waitFor(##"document.querySelector("#callLog .reply.interrupted") !== null"##))
                // The worker is done with the turn (cut short, or, were the interrupt lost, streamed to its end):
                // no token is produced after this.
                #expect(await stack.settled())
                let spoken = try await page.evaluate(##"document.querySelector("#callLog .reply .text").textContent"##).string ?? ""
                #expect(spoken != "You said: please tell me a long story about the sea and ships")
                #expect(try await page.evaluate(##"document.querySelectorAll("#callLog .reply").length"##).double == 1)

                try await page.evaluate(##"document.querySelector("#keypad button").click()"##)
                #expect(try await page.waitFor(##"$("callLog").textContent.includes("pressed 1")"##))
                let shot = try await page.send("Page.captureScreenshot", ["format": "png"])
                try await page.evaluate(##"$("hangup").click()"##)
                #expect(try await page.waitFor(##"$("callLog").textContent.includes("call ended")"##))
                return shot["data"]?.string ?? ""
            }
            let png = try #require(Data(base64Encoded: screenshot))
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
            let output = TestEnvironment.root + "/.run/test-output"
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try png.write(to: URL(fileURLWithPath: output + "/dev-phone.png"))
        }
    }
}
