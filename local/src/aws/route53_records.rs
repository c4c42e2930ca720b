//! Route53's rules for `ChangeResourceRecordSets`, which moto does not enforce: the local front
//! door checks every change batch against them before it reaches moto and refuses as Route53
//! does, so that a product change Route53 would refuse fails here too.
//!
//! Sources (Amazon Route 53 API Reference and Developer Guide, read 2026-12):
//! - API Reference, `ChangeResourceRecordSets`: errors `InvalidChangeBatch` (400, "This
//!   exception contains a list of messages that might contain one or more error messages"),
//!   `InvalidInput` (400), `NoSuchHealthCheck` (404); a `CREATE` of an existing record and a
//!   `DELETE` whose values differ from the record's are refused; changes of one batch are
//!   applied in order, all or nothing.
//! - API Reference, `ResourceRecordSet`: `SetIdentifier` is required for weighted, latency,
//!   geolocation, failover, multivalue answer, CIDR and geoproximity records and names one
//!   record among those of a name and type; `Weight` is for weighted records, `Region` for
//!   latency, `Failover` for failover, `GeoLocation` for geolocation; an alias record
//!   (`AliasTarget`) has neither `TTL` nor `ResourceRecords`; `Weight` is 0 to 255.
//! - Developer Guide, "Choosing a routing policy" and "Values specific for ... records": all
//!   records of one name and type use one routing policy; a CNAME cannot share its name with
//!   another type (RFC 1034 section 3.6.2).
//!
//! Message texts follow what Route53 answers (as quoted in public bug reports), e.g. `Tried to
//! create resource record set [name='a.example.com.', type='A'] but it already exists`.

use std::collections::BTreeSet;

/// The routing policy a record carries, by the field that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// No policy field and no `SetIdentifier`.
    Simple,
    /// `Weight`.
    Weighted,
    /// `Region`.
    Latency,
    /// `Failover`.
    Failover,
    /// `GeoLocation`.
    Geolocation,
    /// `MultiValueAnswer`.
    MultiValue,
    /// `CidrRoutingConfig`.
    Cidr,
    /// `GeoProximityLocation`.
    Geoproximity,
}

impl Policy {
    /// How Route53's messages name it.
    pub fn wording(self) -> &'static str {
        match self {
            Policy::Simple => "simple",
            Policy::Weighted => "weighted",
            Policy::Latency => "latency",
            Policy::Failover => "failover",
            Policy::Geolocation => "geolocation",
            Policy::MultiValue => "multivalue answer",
            Policy::Cidr => "cidr",
            Policy::Geoproximity => "geoproximity",
        }
    }
}

/// One resource record set, as the request or moto's listing gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    /// Fully qualified, lower case, with the trailing dot.
    pub name: String,
    /// `A`, `CNAME`, ...
    pub record_type: String,
    /// `SetIdentifier`.
    pub set_identifier: Option<String>,
    /// `Weight`.
    pub weight: Option<i64>,
    /// `Region` (latency).
    pub region: Option<String>,
    /// `Failover`: `PRIMARY` or `SECONDARY`.
    pub failover: Option<String>,
    /// `GeoLocation`, flattened.
    pub geolocation: Option<String>,
    /// `MultiValueAnswer`.
    pub multivalue: Option<bool>,
    /// `CidrRoutingConfig`, flattened.
    pub cidr: Option<String>,
    /// `GeoProximityLocation`, flattened.
    pub geoproximity: Option<String>,
    /// `TTL`.
    pub ttl: Option<i64>,
    /// `ResourceRecords` values, in order.
    pub values: Vec<String>,
    /// `AliasTarget`: DNS name (normalized), hosted zone, evaluate target health.
    pub alias: Option<(String, String, bool)>,
    /// `HealthCheckId`.
    pub health_check_id: Option<String>,
}

impl RecordSet {
    /// The policies whose fields the record carries (Route53 allows at most one).
    pub fn policy_fields(&self) -> Vec<Policy> {
        [
            (self.weight.is_some(), Policy::Weighted),
            (self.region.is_some(), Policy::Latency),
            (self.failover.is_some(), Policy::Failover),
            (self.geolocation.is_some(), Policy::Geolocation),
            (self.multivalue.is_some(), Policy::MultiValue),
            (self.cidr.is_some(), Policy::Cidr),
            (self.geoproximity.is_some(), Policy::Geoproximity),
        ]
        .into_iter()
        .filter_map(|(set, p)| set.then_some(p))
        .collect()
    }

    /// Its routing policy (the first policy field; [`Policy::Simple`] without one).
    pub fn policy(&self) -> Policy {
        self.policy_fields()
            .first()
            .copied()
            .unwrap_or(Policy::Simple)
    }

    fn key(&self) -> (String, String, Option<String>) {
        (
            self.name.clone(),
            self.record_type.clone(),
            self.set_identifier.clone(),
        )
    }

    fn same_values(&self, other: &RecordSet) -> bool {
        let sorted = |r: &RecordSet| {
            let mut v = r.values.clone();
            v.sort();
            v
        };
        let mut a = self.clone();
        let mut b = other.clone();
        a.values = sorted(self);
        b.values = sorted(other);
        a == b
    }

    /// `[name='...', type='...', set-identifier='...']` as Route53 names a record.
    fn described(&self) -> String {
        match &self.set_identifier {
            Some(id) => format!(
                "[name='{}', type='{}', set-identifier='{id}']",
                self.name, self.record_type
            ),
            None => format!("[name='{}', type='{}']", self.name, self.record_type),
        }
    }
}

/// A change's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `CREATE`: refused when the record exists.
    Create,
    /// `DELETE`: the record must exist with exactly these values.
    Delete,
    /// `UPSERT`: create or replace.
    Upsert,
}

impl Action {
    fn wording(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Delete => "DELETE",
            Action::Upsert => "UPSERT",
        }
    }
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What to do.
    pub action: Action,
    /// To which record.
    pub record: RecordSet,
}

/// Route53's answer to a change batch it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The error code (`InvalidChangeBatch`, `InvalidInput`, `NoSuchHealthCheck`).
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl Refusal {
    fn batch(messages: Vec<String>) -> Self {
        Refusal {
            status: 400,
            code: "InvalidChangeBatch",
            message: format!("[{}]", messages.join(", ")),
        }
    }

    fn input(message: String) -> Self {
        Refusal {
            status: 400,
            code: "InvalidInput",
            message: format!("Invalid request: {message}"),
        }
    }

    /// The error document Route53 answers with.
    pub fn to_xml(&self, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            self.code,
            crate::aws::iam::xml_escape(&self.message)
        )
    }
}

/// A name as Route53 stores it: lower case, fully qualified.
pub fn normalize_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

/// Checks one record's own fields (`InvalidInput`).
fn check_record(change: &Change) -> Result<(), Refusal> {
    let r = &change.record;
    let context = format!(
        "in Change with [Action={}, Name={}, Type={}, SetIdentifier={}]",
        change.action.wording(),
        r.name,
        r.record_type,
        r.set_identifier.as_deref().unwrap_or("null")
    );
    const POLICIES: &str = "[Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, CidrRoutingConfig]";
    let fields = r.policy_fields();
    if fields.len() > 1 {
        return Err(Refusal::input(format!(
            "Expected exactly one of {POLICIES}, but found more than one {context}"
        )));
    }
    match (fields.is_empty(), r.set_identifier.is_some()) {
        (false, false) => {
            return Err(Refusal::input(format!(
                "Missing field 'SetIdentifier' {context}"
            )));
        }
        (true, true) => {
            return Err(Refusal::input(format!(
                "Expected exactly one of {POLICIES}, but found none {context}"
            )));
        }
        _ => {}
    }
    const VALUES: &str =
        "[AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId]";
    let plain = r.ttl.is_some() || !r.values.is_empty();
    match (r.alias.is_some(), plain) {
        (true, true) => {
            return Err(Refusal::input(format!(
                "Expected exactly one of {VALUES}, but found more than one {context}"
            )));
        }
        (false, false) if change.action != Action::Delete => {
            return Err(Refusal::input(format!(
                "Expected exactly one of {VALUES}, but found none {context}"
            )));
        }
        _ => {}
    }
    if r.weight.is_some_and(|w| !(0..=255).contains(&w)) {
        return Err(Refusal::input(format!(
            "Weight must be between 0 and 255 {context}"
        )));
    }
    Ok(())
}

/// Checks a change batch against the zone's records (`current`) and the health checks that
/// exist; `Ok` when Route53 would accept it.
pub fn check_change_batch(
    zone_name: &str,
    current: &[RecordSet],
    changes: &[Change],
    health_checks: &BTreeSet<String>,
) -> Result<(), Refusal> {
    for change in changes {
        check_record(change)?;
        if change.action != Action::Delete
            && let Some(id) = &change.record.health_check_id
            && !health_checks.contains(id)
        {
            return Err(Refusal {
                status: 404,
                code: "NoSuchHealthCheck",
                message: format!("A health check with id {id} does not exist."),
            });
        }
    }
    // Applied in order onto the zone; every message of the batch is reported.
    let mut zone: Vec<RecordSet> = current.to_vec();
    let mut messages = Vec::new();
    for change in changes {
        let r = &change.record;
        let at = zone.iter().position(|z| z.key() == r.key());
        match (change.action, at) {
            (Action::Create, Some(_)) => messages.push(format!(
                "Tried to create resource record set {} but it already exists",
                r.described()
            )),
            (Action::Create | Action::Upsert, None) => zone.push(r.clone()),
            (Action::Upsert, Some(i)) => zone[i] = r.clone(),
            (Action::Delete, None) => messages.push(format!(
                "Tried to delete resource record set {} but it was not found",
                r.described()
            )),
            (Action::Delete, Some(i)) if !zone[i].same_values(r) => messages.push(format!(
                "Tried to delete resource record set {} but the values provided do not match the current values",
                r.described()
            )),
            (Action::Delete, Some(i)) => {
                zone.remove(i);
            }
        }
    }
    // What the batch leaves must be a valid zone, for every name it touched.
    let touched: BTreeSet<&str> = changes.iter().map(|c| c.record.name.as_str()).collect();
    for name in touched {
        let at_name: Vec<&RecordSet> = zone.iter().filter(|z| z.name == name).collect();
        if at_name.iter().any(|z| z.record_type == "CNAME")
            && at_name.iter().any(|z| z.record_type != "CNAME")
        {
            messages.push(format!(
                "RRSet of type CNAME with DNS name {name} is not permitted as it conflicts with other records with the same DNS name in zone {}",
                normalize_name(zone_name)
            ));
        }
        let types: BTreeSet<&str> = at_name.iter().map(|z| z.record_type.as_str()).collect();
        for record_type in types {
            let sets: Vec<&&RecordSet> = at_name
                .iter()
                .filter(|z| z.record_type == record_type)
                .collect();
            let policies: BTreeSet<Policy> = sets.iter().map(|z| z.policy()).collect();
            if policies.len() > 1 || (policies.contains(&Policy::Simple) && sets.len() > 1) {
                // Name the record this batch brought in, against the policy already there.
                let brought = changes
                    .iter()
                    .rev()
                    .find(|c| {
                        c.action != Action::Delete
                            && c.record.name == name
                            && c.record.record_type == record_type
                    })
                    .map(|c| &c.record);
                if let Some(new) = brought {
                    let theirs = new.policy();
                    messages.push(format!(
                        "RRSet with DNS name {name}, type {record_type}, SetIdentifier {} cannot be created because a non {} rrset exists with the same name and type.",
                        new.set_identifier.as_deref().unwrap_or("null"),
                        theirs.wording()
                    ));
                }
            }
            if policies == BTreeSet::from([Policy::Failover]) {
                for role in ["PRIMARY", "SECONDARY"] {
                    if sets
                        .iter()
                        .filter(|z| z.failover.as_deref() == Some(role))
                        .count()
                        > 1
                    {
                        messages.push(format!(
                            "RRSet with DNS name {name}, type {record_type} has more than one {role} failover record."
                        ));
                    }
                }
            }
        }
    }
    if messages.is_empty() {
        Ok(())
    } else {
        Err(Refusal::batch(messages))
    }
}

/// The text of `parent`'s child element `tag`.
fn child_text<'a>(parent: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    parent
        .children()
        .find(|c| c.has_tag_name(tag))
        .and_then(|c| c.text())
        .map(str::trim)
}

fn flattened(parent: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    parent.children().find(|c| c.has_tag_name(tag)).map(|n| {
        n.descendants()
            .filter(|d| d.is_element() && d.text().is_some_and(|t| !t.trim().is_empty()))
            .map(|d| {
                format!(
                    "{}={}",
                    d.tag_name().name(),
                    d.text().unwrap_or_default().trim()
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn record_set(node: roxmltree::Node<'_, '_>) -> Result<RecordSet, String> {
    let number = |tag: &str| -> Result<Option<i64>, String> {
        child_text(node, tag)
            .map(|t| t.parse::<i64>().map_err(|e| format!("{tag} {t:?}: {e}")))
            .transpose()
    };
    let alias = node
        .children()
        .find(|c| c.has_tag_name("AliasTarget"))
        .map(|a| {
            (
                normalize_name(child_text(a, "DNSName").unwrap_or_default()),
                child_text(a, "HostedZoneId")
                    .unwrap_or_default()
                    .to_string(),
                child_text(a, "EvaluateTargetHealth") == Some("true"),
            )
        });
    let values = node
        .children()
        .find(|c| c.has_tag_name("ResourceRecords"))
        .map(|rr| {
            rr.children()
                .filter(|c| c.has_tag_name("ResourceRecord"))
                .filter_map(|c| child_text(c, "Value").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(RecordSet {
        name: normalize_name(child_text(node, "Name").ok_or("a record without Name")?),
        record_type: child_text(node, "Type")
            .ok_or("a record without Type")?
            .to_ascii_uppercase(),
        set_identifier: child_text(node, "SetIdentifier").map(str::to_string),
        weight: number("Weight")?,
        region: child_text(node, "Region").map(str::to_string),
        failover: child_text(node, "Failover").map(str::to_string),
        geolocation: flattened(node, "GeoLocation"),
        multivalue: child_text(node, "MultiValueAnswer").map(|t| t == "true"),
        cidr: flattened(node, "CidrRoutingConfig"),
        geoproximity: flattened(node, "GeoProximityLocation"),
        ttl: number("TTL")?,
        values,
        alias,
        health_check_id: child_text(node, "HealthCheckId")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    })
}

/// The changes of a `ChangeResourceRecordSetsRequest` body.
pub fn parse_change_batch(xml: &str) -> Result<Vec<Change>, Refusal> {
    let malformed = |e: String| Refusal::input(format!("could not read the change batch: {e}"));
    let doc = roxmltree::Document::parse(xml).map_err(|e| malformed(e.to_string()))?;
    doc.descendants()
        .filter(|n| n.has_tag_name("Change"))
        .map(|c| {
            let action = match child_text(c, "Action") {
                Some("CREATE") => Action::Create,
                Some("DELETE") => Action::Delete,
                Some("UPSERT") => Action::Upsert,
                other => return Err(malformed(format!("unknown Action {other:?}"))),
            };
            let node = c
                .children()
                .find(|n| n.has_tag_name("ResourceRecordSet"))
                .ok_or_else(|| malformed("a Change without ResourceRecordSet".into()))?;
            Ok(Change {
                action,
                record: record_set(node).map_err(malformed)?,
            })
        })
        .collect()
}

/// One page of a `ListResourceRecordSetsResponse`: its records and, when truncated, where the
/// next page starts (name, type, identifier).
pub type RecordPage = (Vec<RecordSet>, Option<(String, String, Option<String>)>);

/// Reads one page of a `ListResourceRecordSetsResponse`.
pub fn parse_record_page(xml: &str) -> Result<RecordPage, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let records = root
        .descendants()
        .filter(|n| n.has_tag_name("ResourceRecordSet"))
        .map(record_set)
        .collect::<Result<Vec<_>, _>>()?;
    let next = (child_text(root, "IsTruncated") == Some("true"))
        .then(|| {
            Some((
                child_text(root, "NextRecordName")?.to_string(),
                child_text(root, "NextRecordType")?.to_string(),
                child_text(root, "NextRecordIdentifier").map(str::to_string),
            ))
        })
        .flatten();
    Ok((records, next))
}

/// The hosted zone id of a `POST /2013-04-01/hostedzone/{Id}/rrset` path.
pub fn change_batch_zone(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/2013-04-01/hostedzone/")?;
    let (zone, tail) = rest.split_once('/')?;
    (tail.trim_end_matches('/') == "rrset").then_some(zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(set: &str, region: &str) -> RecordSet {
        RecordSet {
            name: "gateway.example.com.".into(),
            record_type: "CNAME".into(),
            set_identifier: Some(set.into()),
            region: Some(region.into()),
            ttl: Some(60),
            values: vec![format!("gateway.{region}.internal")],
            ..Default::default()
        }
    }

    fn upsert(record: RecordSet) -> Change {
        Change {
            action: Action::Upsert,
            record,
        }
    }

    fn check(current: &[RecordSet], changes: &[Change]) -> Result<(), Refusal> {
        check_change_batch(
            "example.com",
            current,
            changes,
            &BTreeSet::from(["hc-1".to_string()]),
        )
    }

    #[test]
    fn a_weight_on_a_latency_record_is_refused() {
        let zone = [
            latency("primary", "us-east-1"),
            latency("secondary", "us-west-2"),
        ];
        // Both fields on one record: InvalidInput.
        let mut both = zone[0].clone();
        both.weight = Some(0);
        let e = check(&zone, &[upsert(both)]).unwrap_err();
        assert_eq!(e.code, "InvalidInput");
        assert!(e.message.contains("found more than one"), "{}", e.message);
        // The weight replacing the region: policies mixed under one name, InvalidChangeBatch.
        let mut weighted = zone[0].clone();
        weighted.region = None;
        weighted.weight = Some(0);
        let e = check(&zone, &[upsert(weighted)]).unwrap_err();
        assert_eq!(e.code, "InvalidChangeBatch");
        assert!(e.message.contains("non weighted rrset"), "{}", e.message);
        // Moving both at once to weighted is a valid change of policy.
        let moved: Vec<Change> = zone
            .iter()
            .map(|r| {
                let mut w = r.clone();
                w.region = None;
                w.weight = Some(50);
                upsert(w)
            })
            .collect();
        assert_eq!(check(&zone, &moved), Ok(()));
    }

    #[test]
    fn set_identifier_and_policy_come_together() {
        let mut bare = latency("primary", "us-east-1");
        bare.set_identifier = None;
        let e = check(&[], &[upsert(bare)]).unwrap_err();
        assert!(
            e.message.contains("Missing field 'SetIdentifier'"),
            "{}",
            e.message
        );
        let mut simple_with_id = latency("primary", "us-east-1");
        simple_with_id.region = None;
        let e = check(&[], &[upsert(simple_with_id)]).unwrap_err();
        assert!(e.message.contains("found none"), "{}", e.message);
        let mut simple = latency("primary", "us-east-1");
        simple.region = None;
        simple.set_identifier = None;
        assert_eq!(check(&[], &[upsert(simple.clone())]), Ok(()));
        // Two simple records of one name and type: one must go.
        let mut other = simple.clone();
        other.set_identifier = None;
        let e = check(
            &[simple],
            &[Change {
                action: Action::Create,
                record: other,
            }],
        )
        .unwrap_err();
        assert!(e.message.contains("already exists"), "{}", e.message);
    }

    #[test]
    fn an_alias_has_no_ttl_and_a_weight_fits_a_byte() {
        let mut alias = latency("primary", "us-east-1");
        alias.alias = Some(("lb.example.com.".into(), "Z1".into(), true));
        let e = check(&[], &[upsert(alias.clone())]).unwrap_err();
        assert_eq!(e.code, "InvalidInput");
        assert!(e.message.contains("AliasTarget"), "{}", e.message);
        alias.ttl = None;
        alias.values.clear();
        assert_eq!(check(&[], &[upsert(alias)]), Ok(()));
        let mut heavy = latency("primary", "us-east-1");
        heavy.region = None;
        heavy.weight = Some(256);
        assert_eq!(
            check(&[], &[upsert(heavy)]).unwrap_err().code,
            "InvalidInput"
        );
    }

    #[test]
    fn a_delete_must_match_the_record_exactly() {
        let zone = [latency("primary", "us-east-1")];
        let mut different = zone[0].clone();
        different.ttl = Some(300);
        let delete = |r: RecordSet| Change {
            action: Action::Delete,
            record: r,
        };
        let e = check(&zone, &[delete(different)]).unwrap_err();
        assert!(
            e.message.contains("do not match the current values"),
            "{}",
            e.message
        );
        let e = check(&zone, &[delete(latency("secondary", "us-west-2"))]).unwrap_err();
        assert!(e.message.contains("was not found"), "{}", e.message);
        assert_eq!(check(&zone, &[delete(zone[0].clone())]), Ok(()));
        // In one batch, a delete makes room for a record of another policy.
        let mut weighted = zone[0].clone();
        weighted.region = None;
        weighted.weight = Some(100);
        assert_eq!(
            check(
                &zone,
                &[
                    delete(zone[0].clone()),
                    Change {
                        action: Action::Create,
                        record: weighted
                    }
                ]
            ),
            Ok(())
        );
    }

    #[test]
    fn an_unknown_health_check_and_a_cname_beside_other_types_are_refused() {
        let mut checked = latency("primary", "us-east-1");
        checked.health_check_id = Some("hc-missing".into());
        let e = check(&[], &[upsert(checked.clone())]).unwrap_err();
        assert_eq!((e.status, e.code), (404, "NoSuchHealthCheck"));
        checked.health_check_id = Some("hc-1".into());
        assert_eq!(check(&[], &[upsert(checked.clone())]), Ok(()));
        let mut a = checked.clone();
        a.record_type = "A".into();
        a.values = vec!["192.0.2.1".into()];
        let e = check(&[checked], &[upsert(a)]).unwrap_err();
        assert!(
            e.message.contains("conflicts with other records"),
            "{}",
            e.message
        );
    }

    #[test]
    fn one_primary_and_one_secondary_per_failover_name() {
        let failover = |set: &str, role: &str| {
            let mut r = latency(set, "us-east-1");
            r.region = None;
            r.failover = Some(role.into());
            r
        };
        assert_eq!(
            check(
                &[],
                &[
                    upsert(failover("a", "PRIMARY")),
                    upsert(failover("b", "SECONDARY"))
                ]
            ),
            Ok(())
        );
        let e = check(
            &[],
            &[
                upsert(failover("a", "PRIMARY")),
                upsert(failover("b", "PRIMARY")),
            ],
        )
        .unwrap_err();
        assert!(e.message.contains("more than one PRIMARY"), "{}", e.message);
    }

    #[test]
    fn the_wire_formats_are_read() {
        let request = r#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Comment>c</Comment><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>Gateway.Example.com</Name><Type>CNAME</Type><SetIdentifier>primary</SetIdentifier><Region>us-east-1</Region><Weight>10</Weight><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>gateway.us-east-1.internal</Value></ResourceRecord></ResourceRecords><HealthCheckId>hc-1</HealthCheckId></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#;
        let changes = parse_change_batch(request).unwrap();
        assert_eq!(changes.len(), 1);
        let r = &changes[0].record;
        assert_eq!(r.name, "gateway.example.com.");
        assert_eq!(r.policy_fields(), vec![Policy::Weighted, Policy::Latency]);
        assert_eq!(r.health_check_id.as_deref(), Some("hc-1"));
        let page = r#"<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets><ResourceRecordSet><Name>example.com.</Name><Type>SOA</Type><TTL>900</TTL><ResourceRecords><ResourceRecord><Value>ns. admin. 1 7200 900 1209600 86400</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></ResourceRecordSets><IsTruncated>true</IsTruncated><NextRecordName>gateway.example.com.</NextRecordName><NextRecordType>CNAME</NextRecordType><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>"#;
        let (records, next) = parse_record_page(page).unwrap();
        assert_eq!(records[0].policy(), Policy::Simple);
        assert_eq!(
            next,
            Some(("gateway.example.com.".into(), "CNAME".into(), None))
        );
        assert_eq!(
            change_batch_zone("/2013-04-01/hostedzone/Z1/rrset/"),
            Some("Z1")
        );
        assert_eq!(
            change_batch_zone("/2013-04-01/hostedzone/Z1/rrset"),
            Some("Z1")
        );
        assert_eq!(change_batch_zone("/2013-04-01/hostedzone/Z1"), None);
        let xml = Refusal::batch(vec!["a < b".into()]).to_xml("r-1");
        assert!(xml.contains("<Code>InvalidChangeBatch</Code><Message>[a &lt; b]</Message>"));
    }
}
