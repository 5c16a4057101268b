//! Streams other servers open to us: STARTTLS as the server, dialback checked through our own
//! stream to the claimed domain, then their stanzas; and what their users look like here when
//! their streams are gone.

use std::collections::BTreeSet;

use halo_sdk::{AcceptedLink, Action, Level, LinkId, Presence, PresenceInfo, Rejection, TlsRole};
use xmpp_proto::framer::Framer;
use xmpp_proto::jid;
use xmpp_proto::stanza::Stanza;
use xmpp_proto::xml::attr;

use crate::map::{self, Inbound};
use crate::{Call, In, InPhase, MAX_TRACKED_USERS, OutPhase, STREAMS_NS, TLS_NS};
use crate::{inner_text, is_dialback, is_tls};

impl Call<'_> {
    // ----- inbound streams -----

    pub(crate) fn accepted(&mut self, a: AcceptedLink) {
        self.st.counter += 1;
        let id = self.s.key("stream", &a.peer, &self.st.counter.to_string())[..24].to_owned();
        self.log(Level::Debug, &format!("server-to-server connection from {}", a.peer));
        self.st.ins.insert(
            a.id,
            In {
                phase: InPhase::Header,
                framer: Framer::new(self.s.max_stanza),
                tls: false,
                stream_id: id,
                verified: BTreeSet::new(),
            },
        );
    }

    pub(crate) fn in_unit(&mut self, link: LinkId, header: bool, st: &Stanza, raw: &[u8]) {
        let Some(i) = self.st.ins.get_mut(&link) else { return };
        if header {
            if st.name != "stream:stream" {
                return self.fail(
                    link,
                    "invalid-namespace",
                    format!("the stream starts with <{}>", jid::shorten(&st.name)),
                );
            }
            if i.phase != InPhase::Header {
                return;
            }
            let to = st.attr("to").map(str::to_ascii_lowercase).unwrap_or_default();
            let from = st.attr("from").unwrap_or_default().to_owned();
            // A new stream id after TLS (RFC 6120 §5.4.3.3).
            self.st.counter += 1;
            let id = self.s.key("stream", &from, &self.st.counter.to_string())[..24].to_owned();
            let tls = i.tls;
            i.stream_id = id.clone();
            i.phase = InPhase::Open;
            let mut reply = self.header(&from, Some(&id));
            if to != self.s.domain {
                reply.push_str(&format!(
                    "<stream:error><host-unknown xmlns='{STREAMS_NS}'/></stream:error></stream:stream>"
                ));
                self.send(link, reply);
                return self.fail(
                    link,
                    "host-unknown",
                    format!("a stream for {}, not {}", jid::shorten(&to), self.s.domain),
                );
            }
            let features = if tls {
                "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
                    .to_owned()
            } else if self.s.require_tls {
                format!("<stream:features><starttls xmlns='{TLS_NS}'><required/></starttls></stream:features>")
            } else {
                format!(
                    "<stream:features><starttls xmlns='{TLS_NS}'/><dialback xmlns='urn:xmpp:features:dialback'>\
                     <errors/></dialback></stream:features>"
                )
            };
            reply.push_str(&features);
            return self.send(link, reply);
        }
        let tls = i.tls;
        if is_tls(st, "starttls") {
            if tls {
                return self.fail(link, "policy-violation", "STARTTLS twice".into());
            }
            i.phase = InPhase::Tls;
            self.send(link, format!("<proceed xmlns='{TLS_NS}'/>"));
            self.out.push(Action::StartTls(link, TlsRole::Server));
            return;
        }
        if self.s.require_tls && !tls {
            return self.fail(link, "policy-violation", "TLS (STARTTLS) is required before anything else".into());
        }
        if is_dialback(st, "verify") && st.attr("type").is_none() {
            // The remote server checks a key we gave it.
            let (Some(from), Some(id)) = (st.attr("from"), st.attr("id")) else { return };
            let key = inner_text(raw);
            let ok = key == self.s.key(&from.to_ascii_lowercase(), &self.s.domain, id);
            let answer = format!(
                "<db:verify from='{}' to='{}' id='{}' type='{}'/>",
                attr(&self.s.domain),
                attr(from),
                attr(id),
                if ok { "valid" } else { "invalid" }
            );
            return self.send(link, answer);
        }
        if is_dialback(st, "result") && st.attr("type").is_none() {
            let Some(from) = st.attr("from").and_then(|f| jid::domainpart(f).ok()) else {
                return self.fail(link, "improper-addressing", "a dialback request without a valid from".into());
            };
            if from == self.s.domain {
                return self.fail(link, "invalid-from", format!("a stream claiming to be {from} (this server)"));
            }
            let key = inner_text(raw);
            let id = i.stream_id.clone();
            self.st.checks.insert((from.clone(), id), (link, key));
            if let Some(out) = self.ensure_out(&from) {
                self.send_checks(out);
            }
            return;
        }
        let verified = i.verified.clone();
        match st.name.as_str() {
            "message" | "presence" => {
                let domain = st.attr("from").and_then(jid::domain_of);
                if !domain.as_ref().is_some_and(|d| verified.contains(d)) {
                    let reason = format!("<{}> from an unverified domain", st.name);
                    return self.out.push(Action::Reject(Rejection { domain, reason }));
                }
                match map::inbound(st, &self.s.domain) {
                    Inbound::Message(m) => self.out.push(Action::DeliverMessage(m)),
                    Inbound::Subscribe(s) => self.out.push(Action::DeliverSubscribe(s)),
                    Inbound::Presence { info, from, to, resource, note } => {
                        let info = self.aggregate(&from, &resource, info, note);
                        if self.st.recipients.contains_key(&from) || self.st.recipients.len() < MAX_TRACKED_USERS {
                            self.st.recipients.entry(from.clone()).or_default().insert(to.clone());
                        }
                        self.out.push(Action::DeliverPresence(Presence { from, to, info }));
                    }
                    Inbound::Nothing => {}
                    Inbound::Refused(reason) => self.out.push(Action::Reject(Rejection { domain, reason })),
                }
            }
            "iq" => self.iq(link, st, &verified),
            "stream:error" => {
                if let Some(i) = self.st.ins.get_mut(&link) {
                    i.phase = InPhase::Dead;
                }
                self.send(link, "</stream:stream>".into());
            }
            other => self.log(Level::Debug, &format!("ignored <{}>", jid::shorten(other))),
        }
    }

    fn iq(&mut self, link: LinkId, st: &Stanza, verified: &BTreeSet<String>) {
        if !matches!(st.attr("type"), Some("get" | "set")) {
            return;
        }
        let (Some(from), Some(to)) = (st.attr("from"), st.attr("to")) else { return };
        if !jid::domain_of(from).is_some_and(|d| verified.contains(&d)) || jid::parse(to).is_err() {
            return;
        }
        // Answered on our own stream to that domain when it is up; dropped otherwise.
        let Some(domain) = jid::domain_of(from) else { return };
        let Some(out) = self.st.by_domain.get(&domain).copied() else { return };
        let _ = link;
        let id = attr(st.attr("id").unwrap_or_default());
        let (f, t) = (attr(from), attr(to));
        let ping = st.child("ping").is_some_and(|c| c.xmlns.as_deref() == Some("urn:xmpp:ping"));
        let xml = if ping && st.attr("type") == Some("get") {
            format!("<iq type='result' from='{t}' to='{f}' id='{id}'/>")
        } else {
            format!(
                "<iq type='error' from='{t}' to='{f}' id='{id}'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            )
        };
        if self.st.outs.get(&out).is_some_and(|o| o.phase == OutPhase::Ready) {
            self.send(out, xml);
        }
    }

    /// The presence to show for `from` after its `resource` said `info` (`None`: it left).
    fn aggregate(
        &mut self,
        from: &str,
        resource: &str,
        info: Option<PresenceInfo>,
        note: Option<String>,
    ) -> PresenceInfo {
        xmpp_proto::map::aggregate(&mut self.st.resources, from, resource, info, note)
    }
}
