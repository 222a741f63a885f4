import AgentConnectCore

/// The dev phone: one self-contained page (no build step, nothing from a CDN).
enum DevPhonePage {
    static func html(configuration: SimConfiguration) -> String {
        let agents = ChannelKind.allCases.compactMap { channel in
            configuration.senders.defaultSender(for: channel).map { "\(channel.rawValue): \($0)" }
        }.joined(separator: " · ")
        return page.replacingOccurrences(of: "{{AGENTS}}", with: escape(agents))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static let page = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>AgentConnect dev phone</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
          body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
          header { background: #1d2330; color: #fff; padding: 10px 16px; display: flex; gap: 16px; align-items: baseline; }
          header h1 { font-size: 16px; margin: 0; }
          header small { opacity: .7; }
          main { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; padding: 16px; }
          section { background: #fff; border-radius: 8px; padding: 12px; box-shadow: 0 1px 2px #0002; min-height: 420px; display: flex; flex-direction: column; }
          h2 { font-size: 15px; margin: 0 0 8px; }
          .row { display: flex; gap: 6px; margin-bottom: 8px; flex-wrap: wrap; }
          input, select, button { font: inherit; padding: 5px 8px; border: 1px solid #c5c9d2; border-radius: 5px; }
          input[type=text] { flex: 1; min-width: 120px; }
          button { background: #2f6feb; color: #fff; border-color: #2f6feb; cursor: pointer; }
          button.secondary { background: #fff; color: #1d2330; border-color: #c5c9d2; }
          button.danger { background: #d73a49; border-color: #d73a49; }
          button:disabled { opacity: .45; cursor: default; }
          .log { flex: 1; overflow-y: auto; border: 1px solid #e3e5ea; border-radius: 6px; padding: 8px; background: #fafbfc; max-height: 60vh; }
          .msg { margin: 6px 0; max-width: 85%; padding: 6px 9px; border-radius: 10px; white-space: pre-wrap; }
          .customer { background: #2f6feb; color: #fff; margin-left: auto; }
          .agent { background: #e8eaef; }
          .system { color: #6a7181; font-size: 12px; text-align: center; margin: 6px 0; }
          .hops { display: block; font-size: 11px; opacity: .75; margin-top: 3px; }
          details { font-size: 11px; margin-top: 2px; }
          pre { white-space: pre-wrap; word-break: break-all; margin: 4px 0; }
          .keypad { display: grid; grid-template-columns: repeat(3, 40px); gap: 4px; }
          .keypad button { padding: 6px 0; }
          .interrupted { text-decoration: line-through; opacity: .6; }
          #callStatus { font-size: 12px; color: #6a7181; }
          .msg img { display: block; max-width: 180px; max-height: 180px; border-radius: 6px; margin-top: 4px; background: #fff; }
          .status { display: block; font-size: 11px; opacity: .75; margin-top: 2px; }
          .msg.failed { background: #fbe3e6; }
        </style>
        </head>
        <body>
        <header><h1>AgentConnect dev phone</h1><small>agent: {{AGENTS}}</small><small id="live">connecting…</small></header>
        <main>
          <section id="messaging">
            <h2>Messaging</h2>
            <div class="row">
              <select id="channel"><option>sms</option><option>whatsapp</option><option>rcs</option><option>chat</option></select>
              <input id="from" type="text" value="+15551230000" aria-label="customer address">
            </div>
            <div id="thread" class="log"></div>
            <form id="sendForm" class="row" style="margin-top:8px">
              <input id="text" type="text" placeholder="Write to the agent…" autocomplete="off">
              <button id="send" type="submit">Send</button>
              <button id="picture" type="button" class="secondary" title="send the sim's sample picture, with the text as its caption">📎 Picture</button>
            </form>
          </section>
          <section id="voice">
            <h2>Voice <span id="callStatus">no call</span></h2>
            <div class="row">
              <input id="caller" type="text" value="+15559990000" aria-label="caller number">
              <button id="call">Call</button>
              <button id="hangup" class="danger" disabled>Hang up</button>
            </div>
            <div id="callLog" class="log"></div>
            <form id="sayForm" class="row" style="margin-top:8px">
              <input id="prompt" type="text" placeholder="Say something (sent as a prompt)…" autocomplete="off" disabled>
              <button id="say" type="submit" disabled>Say</button>
              <button id="interrupt" type="button" class="secondary" disabled>Interrupt</button>
            </form>
            <div class="keypad" id="keypad"></div>
          </section>
        </main>
        <script>
        "use strict";
        const $ = (id) => document.getElementById(id);
        const state = { lastSent: {}, call: null, reply: null, replyText: "", interrupting: false };

        function raw(label, value) {
          const details = document.createElement("details");
          const summary = document.createElement("summary");
          summary.textContent = label;
          const pre = document.createElement("pre");
          pre.textContent = JSON.stringify(value, null, 2);
          details.append(summary, pre);
          return details;
        }
        function add(log, cls, text, rawValue) {
          const div = document.createElement("div");
          div.className = "msg " + cls;
          const body = document.createElement("span");
          body.className = "text";
          body.textContent = text;
          div.append(body);
          if (rawValue) div.append(raw("raw", rawValue));
          $(log).append(div);
          $(log).scrollTop = $(log).scrollHeight;
          return div;
        }
        function system(log, text) {
          const div = document.createElement("div");
          div.className = "system";
          div.textContent = text;
          $(log).append(div);
          return div;
        }
        function hops(div, text) {
          let span = div.querySelector(".hops");
          if (!span) { span = document.createElement("span"); span.className = "hops"; div.insertBefore(span, div.children[1] || null); }
          span.textContent = text;
        }
        async function post(path, body) {
          const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
          const json = await response.json().catch(() => ({}));
          if (!response.ok) throw new Error(json.error || response.status);
          return json;
        }
        function customerAddress() {
          const channel = $("channel").value;
          let from = $("from").value.trim();
          if (channel === "whatsapp" && !from.startsWith("whatsapp:")) from = "whatsapp:" + from;
          return from;
        }

        // Media the sim hosts need Twilio's Basic auth; the page shows them through the sim's local copy.
        function pictures(div, media) {
          for (const item of media || []) {
            const url = typeof item === "string" ? item : item.url;
            const img = document.createElement("img");
            img.alt = (item && item.contentType) || "media";
            img.src = url.includes("/Media/ME") ? "/sim/media/" + url.split("/Media/")[1] : url;
            div.insertBefore(img, div.children[1] || null);
          }
        }
        function deliveryStatus(event) {
          let div = document.querySelector('[data-id="' + event.id + '"]');
          if (!div) {
            div = add("thread", "agent", event.text || (event.contentSid ? "template " + event.contentSid : ""), event);
            div.dataset.id = event.id;
            pictures(div, event.media);
          }
          showStatus(div, event);
        }
        function showStatus(div, event) {
          let span = div.querySelector(".status");
          if (!span) { span = document.createElement("span"); span.className = "status"; div.insertBefore(span, div.querySelector("details")); }
          span.textContent = (event.errorCode ? "✗ " : "✓ ") + event.status + (event.errorCode ? " (Twilio error " + event.errorCode + ")" : "");
          div.classList.toggle("failed", !!event.errorCode);
        }
        $("picture").addEventListener("click", async () => {
          const text = $("text").value.trim();
          $("text").value = "";
          try {
            await post("/sim/messages", { channel: $("channel").value, from: customerAddress(), text, media: [{ contentType: "image/png" }] });
          } catch (error) {
            system("thread", "send failed: " + error.message);
          }
        });

        $("sendForm").addEventListener("submit", async (event) => {
          event.preventDefault();
          const text = $("text").value.trim();
          if (!text) return;
          $("text").value = "";
          try {
            await post("/sim/messages", { channel: $("channel").value, from: customerAddress(), text });
          } catch (error) {
            system("thread", "send failed: " + error.message);
          }
        });

        function handle(event) {
          switch (event.kind) {
            case "customer.message": {
              const div = add("thread", "customer", event.text, event);
              div.dataset.conversation = event.conversationId;
              pictures(div, event.media);
              state.lastSent[event.conversationId] = { at: event.at, div };
              break;
            }
            case "webhook.answered": {
              const sent = state.lastSent[event.conversationId];
              if (sent) { sent.webhookMs = event.ms; hops(sent.div, "webhook " + event.status + " in " + event.ms + " ms"); sent.div.append(raw("webhook", event.request)); }
              break;
            }
            case "agent.message": {
              const div = add("thread", "agent", event.text || (event.contentSid ? "template " + event.contentSid + " " + JSON.stringify(event.contentVariables || {}) : ""), event);
              div.dataset.conversation = event.conversationId || "";
              div.dataset.id = event.id;
              pictures(div, event.media);
              if (event.status) showStatus(div, event);
              const sent = state.lastSent[event.conversationId];
              if (sent) {
                hops(div, "webhook " + (sent.webhookMs ?? "?") + " ms → agent + delivery " + Math.round(event.at - sent.at - (sent.webhookMs || 0)) + " ms · total " + Math.round(event.at - sent.at) + " ms");
                delete state.lastSent[event.conversationId];
              } else {
                hops(div, "incoming: the agent started this conversation with " + event.to);
              }
              break;
            }
            case "agent.status":
              deliveryStatus(event);
              break;
            case "call.incoming":
              system("callLog", "📞 outbound call from the agent to " + event.to + " (answered by the sim)").append(raw("TwiML", event.twiml));
              break;
            case "call.started":
              if (state.call === event.callSid) system("callLog", "call " + event.callSid + " connected").append(raw("TwiML", event.twiml));
              break;
            case "call.sent":
              if (event.callSid !== state.call) break;
              if (event.frame.type === "prompt") {
                state.interrupting = false;
                add("callLog", "customer", event.frame.voicePrompt, event.frame);
                state.reply = add("callLog", "agent reply", "", null);
                state.replyText = "";
              } else if (event.frame.type === "dtmf") {
                system("callLog", "pressed " + event.frame.digit);
              }
              break;
            case "call.frame": {
              if (event.callSid !== state.call) break;
              const frame = event.frame;
              if (frame.type === "text") {
                if (state.interrupting) {
                  // Tokens already on their way when Interrupt was pressed; the relay's acknowledgement ends them.
                  if (!frame.token && frame.last) state.interrupting = false;
                  break;
                }
                if (!state.reply && !frame.token) break;
                if (!state.reply) { state.reply = add("callLog", "agent reply", "", null); state.replyText = ""; }
                state.replyText += frame.token || "";
                state.reply.querySelector(".text").textContent = state.replyText;
                if (event.firstTokenMs !== undefined) state.reply.dataset.first = event.firstTokenMs;
                if (frame.last) {
                  const first = state.reply.dataset.first;
                  hops(state.reply, "prompt → first token " + (first ?? "?") + " ms · last " + (event.lastTokenMs ?? "?") + " ms");
                  state.reply = null;
                }
              } else {
                system("callLog", "relay sent " + frame.type).append(raw("frame", frame));
              }
              break;
            }
            case "call.reconnected":
              if (event.callSid === state.call) system("callLog", "socket dropped: reconnected (applicationReconnect), the call goes on");
              break;
            case "call.ended":
              if (event.callSid !== state.call) break;
              system("callLog", "call ended" + (event.closeCode ? " (close " + event.closeCode + ")" : ""));
              setCall(null);
              break;
          }
        }

        function setCall(sid) {
          state.call = sid;
          $("callStatus").textContent = sid ? "in call " + sid : "no call";
          for (const id of ["hangup", "prompt", "say", "interrupt"]) $(id).disabled = !sid;
          $("call").disabled = !!sid;
          for (const key of document.querySelectorAll("#keypad button")) key.disabled = !sid;
        }
        $("call").addEventListener("click", async () => {
          $("call").disabled = true;
          try {
            const answer = await post("/sim/phone/calls", { from: $("caller").value.trim() });
            setCall(answer.callSid);
          } catch (error) {
            system("callLog", "call failed: " + error.message);
            $("call").disabled = false;
          }
        });
        $("sayForm").addEventListener("submit", async (event) => {
          event.preventDefault();
          const text = $("prompt").value.trim();
          if (!text || !state.call) return;
          $("prompt").value = "";
          await post("/sim/phone/calls/" + state.call + "/say", { text });
        });
        $("interrupt").addEventListener("click", async () => {
          if (!state.call) return;
          if (state.reply) {
            state.reply.classList.add("interrupted");
            hops(state.reply, "interrupted after: " + state.replyText);
            state.reply = null;
            state.interrupting = true;
          }
          await post("/sim/phone/calls/" + state.call + "/interrupt", { heard: state.replyText });
          system("callLog", "interrupted");
        });
        $("hangup").addEventListener("click", async () => { if (state.call) await post("/sim/phone/calls/" + state.call + "/hangup"); });
        for (const digit of "123456789*0#") {
          const key = document.createElement("button");
          key.type = "button"; key.className = "secondary"; key.textContent = digit; key.disabled = true;
          key.addEventListener("click", () => state.call && post("/sim/phone/calls/" + state.call + "/dtmf", { digit }));
          $("keypad").append(key);
        }

        const events = new EventSource("/sim/events");
        events.onopen = () => { $("live").textContent = "live"; document.body.dataset.live = "1"; };
        events.onerror = () => { $("live").textContent = "reconnecting…"; };
        events.onmessage = (message) => handle(JSON.parse(message.data));
        </script>
        </body>
        </html>
        """#
}
