#!/usr/bin/env python3
"""An XMPP client for host/halo/tests/federation_xmpp.rs, driven over stdin/stdout.

Run as `python3 -u client.py`. Commands arrive as JSON lines on stdin:

  {"cmd": "connect", "jid": "bob@localhost/test", "password": "...", "host": "127.0.0.1", "port": 5222}
  {"cmd": "subscribe", "to": "alice@halo.localhost"}
  {"cmd": "presence", "show": "away", "status": "lunch"}   (show: null, "away", "xa", "dnd", "chat")
  {"cmd": "message", "to": "alice@halo.localhost", "body": "hi"}
      (optional: "type" (default "chat"), "id", "repeat": n to repeat the body n times)
  {"cmd": "burst", "to": "alice@halo.localhost", "count": 1000, "prefix": "m"}
      (count messages "m0", "m1", ... with ids "m0", "m1", ..., sent at once)
  {"cmd": "disco", "to": "halo.localhost"}              (disco#info)
  {"cmd": "disconnect"}

Multi-user chat (XEP-0045, with slixmpp's disco and MUC plugins):

  {"cmd": "disco_items", "jid": "halo.localhost"}        -> {"event": "disco_items", "items": [[jid, name], ..]}
  {"cmd": "disco_info", "jid": "#r5@halo.localhost"}     -> {"event": "disco_info", "identities": [[category, type, name]], "features": [..]}
                                                            (or {"event": "disco_error", "condition": ...})
  {"cmd": "join", "room": "#r5@halo.localhost", "nick": "bobby", "history": 20}
  {"cmd": "leave", "room": "#r5@halo.localhost", "nick": "bobby"}
  {"cmd": "groupchat", "room": "#r5@halo.localhost", "body": "hi all"}
  {"cmd": "invite", "room": "#r5@halo.localhost", "to": "carol@halo.localhost", "reason": "join us"}  (mediated)

Events go out as JSON lines on stdout:

  {"event": "ready"}                                   (started, reading commands)
  {"event": "session_start"}                           (logged in, roster fetched, presence sent)
  {"event": "disconnected"}
  {"event": "failed", "why": "..."}                    (login or connection failure)
  {"event": "presence", "from": ..., "type": ..., "show": ..., "status": ...}
  {"event": "subscribe", "from": ...}                  (then accepted, and subscribed back)
  {"event": "message", "from": ..., "type": ..., "body": ..., "id": ..., "subject": ..., "delayed": bool,
   "conference": {"jid", "reason"} (XEP-0249), "mediated": {"from", "reason"} (XEP-0045 §7.8),
   "error": condition}
  presence events also carry "codes" (MUC status codes) and "error" (a condition).
  {"event": "message_error", "from": ..., "id": ..., "condition": ..., "error_type": ..., "text": ...}
  {"event": "disco", "to": ..., "identities": [[category, type], ...], "features": [...]}
  {"event": "disco_error", "to": ..., "condition": ...}
  {"event": "error", "why": "..."}                     (a bad command)

Subscription requests are accepted, and answered with a subscription request back unless the
roster already has one. The process exits when stdin closes.
"""

import asyncio
import json
import sys
import threading
import xml.etree.ElementTree as ET

import slixmpp
import slixmpp.exceptions
import slixmpp.xmlstream.handler
import slixmpp.xmlstream.matcher


MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
CONFERENCE = "jabber:x:conference"
STANZAS_NS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def condition(stanza):
    """The stanza error's condition element's name, read from the XML (slixmpp knows only RFC
    3920's conditions, not RFC 6120's policy-violation); None without an error element."""
    err = stanza.xml.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith(STANZAS_NS) and child.tag != STANZAS_NS + "text":
            return child.tag[len(STANZAS_NS):]
    return None


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        # Prosody on loopback offers no TLS: allow SASL over plain TCP.
        mechanisms = {"unencrypted_plain": True, "unencrypted_scram": True}
        super().__init__(jid, password, plugin_config={"feature_mechanisms": mechanisms})
        # Subscriptions are handled below, so the test sees them.
        self.auto_authorize = None
        self.auto_subscribe = False
        # Plain TCP on loopback: no STARTTLS is offered, and none is required.
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("disconnected", lambda _e: emit(event="disconnected"))
        self.add_event_handler("connection_failed", lambda e: emit(event="failed", why=str(e)))
        self.add_event_handler("failed_auth", lambda _e: emit(event="failed", why="authentication"))
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("presence_subscribe", self.on_subscribe)
        # Every message stanza, also those without a body (slixmpp's "message" event needs
        # one): subjects, invitations, errors.
        self.register_handler(
            slixmpp.xmlstream.handler.Callback(
                "every message", slixmpp.xmlstream.matcher.MatchXPath("{jabber:client}message"), self.on_message
            )
        )
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0045")
        self.add_event_handler("message_error", self.on_message_error)

    async def on_start(self, _event):
        await self.get_roster()
        self.send_presence()
        emit(event="session_start")

    def on_presence(self, p):
        codes = [s.get("code") for s in p.xml.findall("{%s}x/{%s}status" % (MUC_USER, MUC_USER))]
        emit(
            event="presence",
            **{"from": str(p["from"])},
            type=p["type"],
            show=p["show"] or None,
            status=p["status"] or None,
            codes=codes,
            error=condition(p),
            condition=condition(p) if p["type"] == "error" else None,
        )

    def on_subscribe(self, p):
        who = p["from"].bare
        emit(event="subscribe", **{"from": who})
        self.send_presence(pto=who, ptype="subscribed")
        if self.client_roster[who]["subscription"] not in ("to", "both"):
            self.send_presence(pto=who, ptype="subscribe")

    def on_message(self, m):
        x = m.xml
        conference = x.find("{%s}x" % CONFERENCE)
        mediated = x.find("{%s}x/{%s}invite" % (MUC_USER, MUC_USER))
        subject = x.find("{jabber:client}subject")
        emit(
            event="message",
            **{"from": str(m["from"])},
            type=m["type"],
            body=m["body"] or None,
            id=m["id"] or None,
            subject=None if subject is None else (subject.text or ""),
            delayed=x.find("{urn:xmpp:delay}delay") is not None,
            conference=None if conference is None else {"jid": conference.get("jid"), "reason": conference.get("reason")},
            mediated=None if mediated is None else {
                "from": mediated.get("from"),
                "reason": mediated.findtext("{%s}reason" % MUC_USER),
            },
            error=condition(m),
        )


    def on_message_error(self, m):
        emit(
            event="message_error",
            **{"from": str(m["from"])},
            id=m["id"] or None,
            condition=condition(m),
            error_type=m["error"]["type"] or None,
            text=m["error"]["text"] or None,
        )


class Driver:
    def __init__(self, loop):
        self.loop = loop
        self.client = None

    def handle(self, line):
        try:
            cmd = json.loads(line)
            getattr(self, "cmd_" + cmd["cmd"])(cmd)
        except Exception as e:  # a bad command must not end the client
            emit(event="error", why=f"{type(e).__name__}: {e}")

    def cmd_connect(self, c):
        if self.client is not None:
            self.client.disconnect(wait=0)
        self.client = Client(c["jid"], c["password"])
        self.client.connect(host=c.get("host", "127.0.0.1"), port=int(c.get("port", 5222)))

    def cmd_disconnect(self, _c):
        if self.client is not None:
            self.client.disconnect(wait=0)

    def cmd_subscribe(self, c):
        self.client.send_presence(pto=c["to"], ptype="subscribe")

    def cmd_presence(self, c):
        self.client.send_presence(pshow=c.get("show") or None, pstatus=c.get("status") or None)

    def cmd_message(self, c):
        m = self.client.make_message(mto=c["to"], mbody=c["body"] * int(c.get("repeat", 1)), mtype=c.get("type", "chat"))
        if c.get("id"):
            m["id"] = c["id"]
        m.send()

    def cmd_burst(self, c):
        for i in range(int(c["count"])):
            name = f'{c.get("prefix", "m")}{i}'
            m = self.client.make_message(mto=c["to"], mbody=name, mtype="chat")
            m["id"] = name
            m.send()

    def cmd_disco(self, c):
        async def ask():
            try:
                info = await self.client.plugin["xep_0030"].get_info(jid=c["to"], timeout=20)
                q = info["disco_info"]
                emit(
                    event="disco",
                    to=c["to"],
                    identities=[[i[0], i[1]] for i in q["identities"]],
                    features=sorted(q["features"]),
                )
            except slixmpp.exceptions.IqError as e:
                emit(event="disco_error", to=c["to"], condition=condition(e.iq))
            except Exception as e:
                emit(event="disco_error", to=c["to"], condition=f"{type(e).__name__}: {e}")

        self.loop.create_task(ask())

    def cmd_join(self, c):
        p = self.client.make_presence(pto="%s/%s" % (c["room"], c["nick"]))
        x = ET.SubElement(p.xml, "{%s}x" % MUC)
        if c.get("history") is not None:
            ET.SubElement(x, "{%s}history" % MUC).set("maxstanzas", str(c["history"]))
        p.send()

    def cmd_leave(self, c):
        self.client.make_presence(pto="%s/%s" % (c["room"], c["nick"]), ptype="unavailable").send()

    def cmd_groupchat(self, c):
        self.client.send_message(mto=c["room"], mbody=c["body"], mtype="groupchat")

    def cmd_invite(self, c):
        m = self.client.make_message(mto=c["room"])
        x = ET.SubElement(m.xml, "{%s}x" % MUC_USER)
        invite = ET.SubElement(x, "{%s}invite" % MUC_USER)
        invite.set("to", c["to"])
        if c.get("reason"):
            ET.SubElement(invite, "{%s}reason" % MUC_USER).text = c["reason"]
        m.send()

    def cmd_disco_items(self, c):
        async def run():
            try:
                iq = await self.client.plugin["xep_0030"].get_items(jid=c["jid"], timeout=20)
                items = [[i[0], i[2]] for i in iq["disco_items"]["items"]]
                emit(event="disco_items", items=items)
            except slixmpp.exceptions.IqError as e:
                emit(event="disco_error", condition=e.iq["error"]["condition"])
            except Exception as e:  # a timeout, say: the test sees it
                emit(event="disco_error", condition=f"{type(e).__name__}: {e}")

        asyncio.ensure_future(run())

    def cmd_disco_info(self, c):
        async def run():
            try:
                iq = await self.client.plugin["xep_0030"].get_info(jid=c["jid"], timeout=20)
                info = iq["disco_info"]
                identities = [[i[0], i[1], i[3]] for i in info["identities"]]
                emit(event="disco_info", identities=identities, features=sorted(info["features"]))
            except slixmpp.exceptions.IqError as e:
                emit(event="disco_error", condition=e.iq["error"]["condition"])
            except Exception as e:
                emit(event="disco_error", condition=f"{type(e).__name__}: {e}")

        asyncio.ensure_future(run())


def main():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    driver = Driver(loop)
    done = loop.create_future()

    def read_stdin():
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(driver.handle, line)
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    threading.Thread(target=read_stdin, daemon=True).start()
    emit(event="ready")
    loop.run_until_complete(done)
    if driver.client is not None:
        driver.client.disconnect(wait=0)
        loop.run_until_complete(asyncio.sleep(0.2))
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


if __name__ == "__main__":
    main()
