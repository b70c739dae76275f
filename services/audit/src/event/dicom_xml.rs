//! DICOM PS3.15 A.5.1 `AuditMessage` XML: the payload of IHE ITI-20 syslog messages (JAHIS 13-009).
//!
//! The XML has no message id field, so [`from_xml`] derives the [`EventId`] from the message bytes: a
//! retransmitted identical message dedups in the log.

use super::{
    ActiveParticipant, AuditEvent, AuditSourceIdentification, Code, EventAction, EventId,
    EventIdentification, EventOutcome, NetworkAccessPoint, ParticipantObject,
};
use crate::error::{AuditError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

fn code_elem<'a>(name: &'a str, c: &Code) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    e.push_attribute(("csd-code", c.code.as_str()));
    e.push_attribute(("codeSystemName", c.system_name.as_str()));
    if !c.display.is_empty() {
        e.push_attribute(("originalText", c.display.as_str()));
    }
    e
}

fn source_type_display(code: u8) -> &'static str {
    match code {
        1 => "End-user display device, diagnostic display",
        2 => "Data acquisition device or instrument",
        3 => "Web server process",
        4 => "Application server process",
        5 => "Database server process",
        6 => "Security server",
        7 => "ISO level 1-3 network component",
        8 => "ISO level 4-6 operating software",
        _ => "External source, other or unknown type",
    }
}

/// Serialize to DICOM audit message XML (UTF-8, with declaration).
pub fn to_xml(ev: &AuditEvent) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail, hence the expects.
    let mut put = |e: Event<'_>| w.write_event(e).expect("write to Vec");
    put(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    put(Event::Start(BytesStart::new("AuditMessage")));

    let mut ei = BytesStart::new("EventIdentification");
    ei.push_attribute(("EventActionCode", ev.event.action.as_str()));
    let dt = ev.event.date_time.to_string();
    ei.push_attribute(("EventDateTime", dt.as_str()));
    let outcome = ev.event.outcome.code().to_string();
    ei.push_attribute(("EventOutcomeIndicator", outcome.as_str()));
    put(Event::Start(ei));
    put(Event::Empty(code_elem("EventID", &ev.event.id)));
    for t in &ev.event.types {
        put(Event::Empty(code_elem("EventTypeCode", t)));
    }
    for p in &ev.event.purpose_of_use {
        put(Event::Empty(code_elem("PurposeOfUse", p)));
    }
    put(Event::End(BytesEnd::new("EventIdentification")));

    for p in &ev.participants {
        let mut ap = BytesStart::new("ActiveParticipant");
        ap.push_attribute(("UserID", p.user_id.as_str()));
        if let Some(a) = &p.alt_user_id {
            ap.push_attribute(("AlternativeUserID", a.as_str()));
        }
        if let Some(n) = &p.user_name {
            ap.push_attribute(("UserName", n.as_str()));
        }
        ap.push_attribute(("UserIsRequestor", if p.requestor { "true" } else { "false" }));
        let nap_type;
        if let Some(nap) = &p.network_access_point {
            nap_type = nap.type_code.to_string();
            ap.push_attribute(("NetworkAccessPointID", nap.id.as_str()));
            ap.push_attribute(("NetworkAccessPointTypeCode", nap_type.as_str()));
        }
        if p.roles.is_empty() {
            put(Event::Empty(ap));
        } else {
            put(Event::Start(ap));
            for r in &p.roles {
                put(Event::Empty(code_elem("RoleIDCode", r)));
            }
            put(Event::End(BytesEnd::new("ActiveParticipant")));
        }
    }

    let mut asi = BytesStart::new("AuditSourceIdentification");
    if let Some(site) = &ev.source.enterprise_site_id {
        asi.push_attribute(("AuditEnterpriseSiteID", site.as_str()));
    }
    asi.push_attribute(("AuditSourceID", ev.source.source_id.as_str()));
    if ev.source.type_codes.is_empty() {
        put(Event::Empty(asi));
    } else {
        put(Event::Start(asi));
        for t in &ev.source.type_codes {
            let c = Code::new(&t.to_string(), "RFC-3881", source_type_display(*t));
            put(Event::Empty(code_elem("AuditSourceTypeCode", &c)));
        }
        put(Event::End(BytesEnd::new("AuditSourceIdentification")));
    }

    for o in &ev.objects {
        let mut po = BytesStart::new("ParticipantObjectIdentification");
        po.push_attribute(("ParticipantObjectID", o.id.as_str()));
        let tc = o.type_code.to_string();
        let role = o.role.to_string();
        po.push_attribute(("ParticipantObjectTypeCode", tc.as_str()));
        po.push_attribute(("ParticipantObjectTypeCodeRole", role.as_str()));
        put(Event::Start(po));
        put(Event::Empty(code_elem("ParticipantObjectIDTypeCode", &o.id_type)));
        if let Some(n) = &o.name {
            put(Event::Start(BytesStart::new("ParticipantObjectName")));
            put(Event::Text(BytesText::new(n)));
            put(Event::End(BytesEnd::new("ParticipantObjectName")));
        }
        if let Some(q) = &o.query {
            put(Event::Start(BytesStart::new("ParticipantObjectQuery")));
            let b = B64.encode(q.as_bytes());
            put(Event::Text(BytesText::new(&b)));
            put(Event::End(BytesEnd::new("ParticipantObjectQuery")));
        }
        for (t, v) in &o.details {
            let mut d = BytesStart::new("ParticipantObjectDetail");
            d.push_attribute(("type", t.as_str()));
            let b = B64.encode(v.as_bytes());
            d.push_attribute(("value", b.as_str()));
            put(Event::Empty(d));
        }
        put(Event::End(BytesEnd::new("ParticipantObjectIdentification")));
    }
    put(Event::End(BytesEnd::new("AuditMessage")));
    let mut s = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    s.push('\n');
    s
}

/// Attributes of one element, unescaped.
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn of(e: &BytesStart<'_>, pos: u64) -> Result<Self> {
        let mut v = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| AuditError::Xml { position: pos, reason: err.to_string() })?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let val = a
                .unescape_value()
                .map_err(|err| AuditError::Xml { position: pos, reason: err.to_string() })?
                .into_owned();
            v.push((key, val));
        }
        Ok(Attrs(v))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn req(&self, elem: &str, k: &str, pos: u64) -> Result<&str> {
        self.get(k)
            .ok_or_else(|| AuditError::Xml { position: pos, reason: format!("<{elem}> lacks attribute {k}") })
    }
    fn code(&self, elem: &str, pos: u64) -> Result<Code> {
        // Older messages (RFC 3881, DICOM before 2008) use `code` instead of `csd-code`.
        let code = self.get("csd-code").or(self.get("code")).ok_or_else(|| AuditError::Xml {
            position: pos,
            reason: format!("<{elem}> lacks attribute csd-code"),
        })?;
        Ok(Code::new(
            code,
            self.get("codeSystemName").unwrap_or("DCM"),
            self.get("originalText").or(self.get("displayName")).unwrap_or(""),
        ))
    }
}

fn num<T: std::str::FromStr>(s: &str, what: &str, pos: u64) -> Result<T> {
    s.parse().map_err(|_| AuditError::Xml { position: pos, reason: format!("{what}={s:?} is not a number") })
}

fn unb64(s: &str, what: &str, pos: u64) -> Result<String> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = B64
        .decode(clean.as_bytes())
        .map_err(|e| AuditError::Xml { position: pos, reason: format!("{what}: bad base64: {e}") })?;
    String::from_utf8(bytes)
        .map_err(|_| AuditError::Xml { position: pos, reason: format!("{what}: not UTF-8") })
}

/// Parse a DICOM audit message. The event id is derived from the bytes (see module docs).
pub fn from_xml(xml: &[u8]) -> Result<AuditEvent> {
    let text = std::str::from_utf8(xml)
        .map_err(|e| AuditError::Xml { position: e.valid_up_to() as u64, reason: "not UTF-8".into() })?;
    let text = text.trim_start_matches('\u{feff}');
    let mut r = Reader::from_str(text);
    r.config_mut().trim_text(true);
    let mut event: Option<EventIdentification> = None;
    let mut participants = Vec::new();
    let mut source: Option<AuditSourceIdentification> = None;
    let mut objects: Vec<ParticipantObject> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut saw_root = false;
    loop {
        let pos = r.buffer_position();
        let ev = r.read_event().map_err(|e| AuditError::Xml { position: pos, reason: e.to_string() })?;
        let (start, empty) = match &ev {
            Event::Start(s) => (Some(s.clone()), false),
            Event::Empty(s) => (Some(s.clone()), true),
            _ => (None, false),
        };
        if let Some(s) = start {
            let name = String::from_utf8_lossy(s.name().as_ref()).into_owned();
            let a = Attrs::of(&s, pos)?;
            let parent = stack.last().map(String::as_str);
            match (parent, name.as_str()) {
                (None, "AuditMessage") => saw_root = true,
                (Some("AuditMessage"), "EventIdentification") => {
                    let dt = a.req(&name, "EventDateTime", pos)?;
                    event = Some(EventIdentification {
                        id: Code::new("", "DCM", ""),
                        action: EventAction::parse(a.get("EventActionCode").unwrap_or("E"))?,
                        date_time: dt.parse().map_err(|e| AuditError::Xml {
                            position: pos,
                            reason: format!("EventDateTime={dt:?}: {e}"),
                        })?,
                        outcome: EventOutcome::try_from(num::<u8>(
                            a.req(&name, "EventOutcomeIndicator", pos)?,
                            "EventOutcomeIndicator",
                            pos,
                        )?)?,
                        types: vec![],
                        purpose_of_use: vec![],
                    });
                }
                (Some("EventIdentification"), child) => {
                    let e = event.as_mut().expect("inside EventIdentification");
                    match child {
                        "EventID" => e.id = a.code(child, pos)?,
                        "EventTypeCode" => e.types.push(a.code(child, pos)?),
                        "PurposeOfUse" => e.purpose_of_use.push(a.code(child, pos)?),
                        _ => {}
                    }
                }
                (Some("AuditMessage"), "ActiveParticipant") => {
                    let nap = match (a.get("NetworkAccessPointID"), a.get("NetworkAccessPointTypeCode")) {
                        (Some(id), t) => Some(NetworkAccessPoint {
                            id: id.into(),
                            type_code: t
                                .map(|t| num(t, "NetworkAccessPointTypeCode", pos))
                                .transpose()?
                                .unwrap_or(2),
                        }),
                        _ => None,
                    };
                    participants.push(ActiveParticipant {
                        user_id: a.req(&name, "UserID", pos)?.into(),
                        alt_user_id: a.get("AlternativeUserID").map(Into::into),
                        user_name: a.get("UserName").map(Into::into),
                        requestor: a.get("UserIsRequestor").map(|v| v == "true" || v == "1").unwrap_or(false),
                        roles: vec![],
                        network_access_point: nap,
                    });
                }
                (Some("ActiveParticipant"), "RoleIDCode") => {
                    participants
                        .last_mut()
                        .expect("inside ActiveParticipant")
                        .roles
                        .push(a.code(&name, pos)?);
                }
                (Some("AuditMessage"), "AuditSourceIdentification") => {
                    source = Some(AuditSourceIdentification {
                        source_id: a.req(&name, "AuditSourceID", pos)?.into(),
                        enterprise_site_id: a.get("AuditEnterpriseSiteID").map(Into::into),
                        type_codes: vec![],
                    });
                }
                (Some("AuditSourceIdentification"), "AuditSourceTypeCode") => {
                    let c = a.code(&name, pos)?;
                    source.as_mut().expect("inside AuditSourceIdentification").type_codes.push(num(
                        &c.code,
                        "AuditSourceTypeCode",
                        pos,
                    )?);
                }
                (Some("AuditMessage"), "ParticipantObjectIdentification") => {
                    objects.push(ParticipantObject {
                        id: a.req(&name, "ParticipantObjectID", pos)?.into(),
                        type_code: a
                            .get("ParticipantObjectTypeCode")
                            .map(|v| num(v, "ParticipantObjectTypeCode", pos))
                            .transpose()?
                            .unwrap_or(4),
                        role: a
                            .get("ParticipantObjectTypeCodeRole")
                            .map(|v| num(v, "ParticipantObjectTypeCodeRole", pos))
                            .transpose()?
                            .unwrap_or(0),
                        id_type: Code::new("", "", ""),
                        name: None,
                        query: None,
                        details: vec![],
                    });
                }
                (Some("ParticipantObjectIdentification"), child) => {
                    let o = objects.last_mut().expect("inside ParticipantObjectIdentification");
                    match child {
                        "ParticipantObjectIDTypeCode" => o.id_type = a.code(child, pos)?,
                        "ParticipantObjectDetail" => {
                            let v = a.get("value").unwrap_or("");
                            o.details.push((
                                a.req(child, "type", pos)?.into(),
                                unb64(v, "ParticipantObjectDetail", pos)?,
                            ));
                        }
                        _ => {}
                    }
                }
                _ if !saw_root => {
                    return Err(AuditError::Xml {
                        position: pos,
                        reason: format!("root element is <{name}>, expected <AuditMessage>"),
                    });
                }
                _ => {}
            }
            if !empty {
                stack.push(name);
            }
            continue;
        }
        match ev {
            Event::Text(t) => {
                let s = t.decode().map_err(|e| AuditError::Xml { position: pos, reason: e.to_string() })?;
                let s = quick_xml::escape::unescape(&s)
                    .map_err(|e| AuditError::Xml { position: pos, reason: e.to_string() })?;
                match stack.last().map(String::as_str) {
                    Some("ParticipantObjectQuery") => {
                        objects.last_mut().expect("query inside object").query =
                            Some(unb64(&s, "ParticipantObjectQuery", pos)?)
                    }
                    Some("ParticipantObjectName") => {
                        objects.last_mut().expect("name inside object").name = Some(s.into_owned())
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(AuditError::Xml { position: 0, reason: "no <AuditMessage> element".into() });
    }
    let event =
        event.ok_or_else(|| AuditError::Xml { position: 0, reason: "no <EventIdentification>".into() })?;
    if event.id.code.is_empty() {
        return Err(AuditError::Xml { position: 0, reason: "<EventIdentification> has no <EventID>".into() });
    }
    let source = source
        .ok_or_else(|| AuditError::Xml { position: 0, reason: "no <AuditSourceIdentification>".into() })?;
    let ev = AuditEvent { id: EventId::from_content(xml), event, participants, source, objects };
    ev.validate()?;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample;

    const EXPECTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<AuditMessage>
  <EventIdentification EventActionCode="R" EventDateTime="2026-11-25T09:30:00Z" EventOutcomeIndicator="0">
    <EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/>
    <PurposeOfUse csd-code="BTG" codeSystemName="ActReason" originalText="break the glass"/>
  </EventIdentification>
  <ActiveParticipant UserID="pw-7f3a9c" UserName="Dr. Sato" UserIsRequestor="true" NetworkAccessPointID="10.20.1.5" NetworkAccessPointTypeCode="2">
    <RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/>
  </ActiveParticipant>
  <ActiveParticipant UserID="kizuna-viewer" UserIsRequestor="false">
    <RoleIDCode csd-code="110150" codeSystemName="DCM" originalText="Application"/>
  </ActiveParticipant>
  <AuditSourceIdentification AuditEnterpriseSiteID="F0401" AuditSourceID="viewer@centre">
    <AuditSourceTypeCode csd-code="4" codeSystemName="RFC-3881" originalText="Application server process"/>
  </AuditSourceIdentification>
  <ParticipantObjectIdentification ParticipantObjectID="CHID-000123" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">
    <ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>
  </ParticipantObjectIdentification>
  <ParticipantObjectIdentification ParticipantObjectID="query" ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="24">
    <ParticipantObjectIDTypeCode csd-code="10" codeSystemName="RFC-3881" originalText="Search Criteria"/>
    <ParticipantObjectQuery>bmFtZT3kvZDol6QmYmlydGg9MTk1MC0wMS0wMg==</ParticipantObjectQuery>
  </ParticipantObjectIdentification>
</AuditMessage>
"#;

    #[test]
    fn patient_record_access_serializes_to_the_expected_dicom_xml() {
        assert_eq!(to_xml(&sample::patient_read()), EXPECTED);
    }

    #[test]
    fn dicom_xml_parses_back_to_the_same_event() {
        let parsed = from_xml(EXPECTED.as_bytes()).unwrap();
        let mut want = sample::patient_read();
        want.id = parsed.id.clone();
        assert_eq!(parsed, want);
        assert_eq!(parsed.objects[1].query.as_deref(), Some("name=佐藤&birth=1950-01-02"));
        assert_eq!(parsed.id, EventId::from_content(EXPECTED.as_bytes()));
    }

    #[test]
    fn xml_without_event_identification_is_rejected() {
        let err = from_xml(
            b"<AuditMessage><ActiveParticipant UserID=\"u\" UserIsRequestor=\"true\"/></AuditMessage>",
        )
        .unwrap_err();
        assert!(err.to_string().contains("EventIdentification"), "{err}");
    }

    #[test]
    fn wrong_root_element_is_rejected_with_position() {
        let err = from_xml(b"<Foo/>").unwrap_err().to_string();
        assert!(err.contains("<Foo>"), "{err}");
    }
}
