//! One backup audit from end to end, as plain data: the request an operator (or the hourly
//! schedule) sends, its split into one request per policy (the state machine's Map items), what
//! each policy's audit returns, and the report that aggregates them (JSON, Markdown, metrics).

use serde::{Deserialize, Serialize};

use super::catalog::{DataTypeStatus, Layout};
use super::policy::{BackupPolicy, DataType, Finding, Severity, default_policies};
use super::wal::DEFAULT_SEGMENT_SIZE;
use crate::CoreError;
use crate::tier::Tier;
pub use crate::time::epoch_text;

/// Which backups get their content verified (listing checks run on all of them anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyScope {
    /// The newest backup of each data type (the one a restore would use).
    #[default]
    Newest,
    /// Every backup inside the retention window (slow on big catalogs).
    All,
    /// None: listing checks only.
    None,
}

/// What the backup-audit state machine (or `hapilot audit`) is asked; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupAuditRequest {
    /// Policies to audit (default: the HA document's table).
    #[serde(default)]
    pub policies: Option<Vec<BackupPolicy>>,
    /// Bucket layout (default: `postgres/gateway-db/`, `vault/`, `redis/`).
    #[serde(default)]
    pub layout: Option<Layout>,
    /// Backup bucket in this region (default: `HAPILOT_BACKUP_BUCKET`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// The DR region's copy (default: `HAPILOT_DR_BACKUP_BUCKET`).
    #[serde(default)]
    pub dr_bucket: Option<String>,
    /// Region of the DR bucket (default: `HAPILOT_DR_REGION`, else this region).
    #[serde(default)]
    pub dr_region: Option<String>,
    /// Which backups get content verification.
    #[serde(default)]
    pub verify: Option<VerifyScope>,
    /// The audit's clock, epoch seconds (default: the time of planning). Tests and replays of a
    /// past audit set it.
    #[serde(default)]
    pub now: Option<i64>,
    /// Tier whose RPO the achievable RPO is compared with (default: `HAPILOT_TIER`, else Critical).
    #[serde(default)]
    pub tier: Option<Tier>,
    /// WAL segment size in bytes (default 16 MiB).
    #[serde(default)]
    pub wal_segment_size: Option<u64>,
}

/// Where the backups are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTarget {
    /// Backup bucket.
    pub bucket: String,
    /// DR copy bucket, if the deployment has one.
    pub dr_bucket: Option<String>,
    /// DR bucket's region.
    pub dr_region: Option<String>,
    /// Layout inside both.
    pub layout: Layout,
}

/// One Map item: audit one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyAuditRequest {
    /// The policy.
    pub policy: BackupPolicy,
    /// Where.
    pub target: BackupTarget,
    /// Content verification scope.
    pub verify: VerifyScope,
    /// The audit's clock, epoch seconds.
    pub now: i64,
    /// The tier's RPO, seconds.
    pub rpo_target_secs: i64,
    /// WAL segment size override; `None`: what the newest base backup's `backup.info` says
    /// (`xlog_segment_size`), else 16 MiB.
    #[serde(default)]
    pub wal_segment_size: Option<u64>,
}

impl PolicyAuditRequest {
    /// The WAL segment size to use: the override, else what `infos` (the catalog's
    /// `backup.info` files, newest first wins) record, else PostgreSQL's default.
    pub fn segment_size<'a>(
        &self,
        infos: impl IntoIterator<Item = &'a super::info::BackupInfo>,
    ) -> u64 {
        self.wal_segment_size
            .or_else(|| {
                infos
                    .into_iter()
                    .filter_map(|i| Some((i.end_epoch().ok()?, i.xlog_segment_size?)))
                    .max()
                    .map(|(_, size)| size)
            })
            .unwrap_or(DEFAULT_SEGMENT_SIZE)
    }
}

/// The planned audit: the state machine maps over `items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPlan {
    /// Clock of the whole audit.
    pub now: i64,
    /// Tier.
    pub tier: Tier,
    /// One per policy.
    pub items: Vec<PolicyAuditRequest>,
}

/// Defaults the deployment supplies (from its `HAPILOT_*` settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditDefaults {
    /// `HAPILOT_BACKUP_BUCKET`.
    pub bucket: Option<String>,
    /// `HAPILOT_DR_BACKUP_BUCKET`.
    pub dr_bucket: Option<String>,
    /// `HAPILOT_DR_REGION`.
    pub dr_region: Option<String>,
    /// `HAPILOT_TIER`.
    pub tier: Option<Tier>,
}

/// Validates a request and splits it into one item per policy. Nothing is read yet, so a bad
/// request fails here with the field named.
pub fn plan_audit(
    request: BackupAuditRequest,
    defaults: &AuditDefaults,
    clock_now: i64,
) -> Result<AuditPlan, CoreError> {
    let policies = request.policies.unwrap_or_else(default_policies);
    if policies.is_empty() {
        return Err(CoreError::invalid("policies", "is empty: nothing to audit"));
    }
    for (i, p) in policies.iter().enumerate() {
        let on_change = p.data_type.backed_up_on_change();
        if (p.frequency_secs <= 0 && !(on_change && p.frequency_secs == 0))
            || p.retention_secs < 0
            || (p.retention_secs == 0 && !on_change)
            || p.grace_secs < 0
        {
            return Err(CoreError::invalid(
                format!("policies[{i}]"),
                "frequency_secs and retention_secs must be positive, grace_secs not negative (configuration: frequency_secs 0 is \"on change\", retention_secs 0 \"unlimited\")",
            ));
        }
        if policies[..i].iter().any(|q| q.data_type == p.data_type) {
            return Err(CoreError::invalid(
                format!("policies[{i}]"),
                format!("{:?} is listed twice", p.data_type),
            ));
        }
    }
    let bucket = request
        .bucket
        .or_else(|| defaults.bucket.clone())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            CoreError::invalid(
                "bucket",
                "is not given and HAPILOT_BACKUP_BUCKET is not set: say which bucket holds the backups",
            )
        })?;
    let dr_bucket = request.dr_bucket.or_else(|| defaults.dr_bucket.clone());
    if dr_bucket.is_none() && policies.iter().any(|p| p.cross_region) {
        return Err(CoreError::invalid(
            "dr_bucket",
            "is not given and HAPILOT_DR_BACKUP_BUCKET is not set, but a policy requires cross-region copies",
        ));
    }
    if let Some(size) = request.wal_segment_size
        && (!size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&size))
    {
        return Err(CoreError::invalid(
            "wal_segment_size",
            "must be a power of two between 1 MiB and 1 GiB",
        ));
    }
    let tier = request.tier.or(defaults.tier).unwrap_or(Tier::Critical);
    let now = request.now.unwrap_or(clock_now);
    let target = BackupTarget {
        bucket,
        dr_bucket,
        dr_region: request.dr_region.or_else(|| defaults.dr_region.clone()),
        layout: request.layout.unwrap_or_default(),
    };
    let verify = request.verify.unwrap_or_default();
    Ok(AuditPlan {
        now,
        tier,
        items: policies
            .into_iter()
            .map(|policy| PolicyAuditRequest {
                policy,
                target: target.clone(),
                verify,
                now,
                rpo_target_secs: tier.rpo_secs() as i64,
                wal_segment_size: request.wal_segment_size,
            })
            .collect(),
    })
}

/// What reading one backup through concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Read through: it would restore.
    Verified,
    /// It would not restore, or could not be read.
    Failed,
    /// Stored in a form the audit cannot read (an unsupported compression): neither proven
    /// good nor proven bad.
    NotVerified,
}

/// One content verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "VerificationRecord", from = "VerificationRecord")]
pub struct Verification {
    /// The object (for a base backup, its data tar).
    pub key: String,
    /// What reading it concluded.
    pub outcome: Outcome,
    /// What was checked or what is wrong.
    pub detail: String,
    /// Whether this is the newest backup of its type (the one a restore would start from).
    pub newest: bool,
    /// The file inside it that differs from its manifest, when that is what is wrong.
    pub member: Option<String>,
}

impl Verification {
    /// `key` read through: `detail` says what was checked.
    pub fn verified(key: &str, detail: String) -> Self {
        Self {
            key: key.to_string(),
            outcome: Outcome::Verified,
            detail,
            newest: false,
            member: None,
        }
    }

    /// `key` would not restore: `detail` says why.
    pub fn failed(key: &str, detail: String) -> Self {
        Self {
            outcome: Outcome::Failed,
            ..Self::verified(key, detail)
        }
    }

    /// `key` is in a form the audit cannot read: `detail` says which.
    pub fn not_verified(key: &str, detail: String) -> Self {
        Self {
            outcome: Outcome::NotVerified,
            ..Self::verified(key, detail)
        }
    }

    /// Whether it would restore (only a verified backup counts).
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Verified
    }
}

/// A verification as the report carries it (`statemachines/schemas/backup-audit.report.json`):
/// `ok` for the readers that predate `outcome`, which a record without one is read from.
#[derive(Serialize, Deserialize)]
struct VerificationRecord {
    key: String,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    detail: String,
    newest: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<String>,
}

impl From<Verification> for VerificationRecord {
    fn from(v: Verification) -> Self {
        Self {
            ok: v.ok(),
            outcome: Some(v.outcome),
            key: v.key,
            detail: v.detail,
            newest: v.newest,
            member: v.member,
        }
    }
}

impl From<VerificationRecord> for Verification {
    fn from(r: VerificationRecord) -> Self {
        Self {
            outcome: r.outcome.unwrap_or(match r.ok {
                true => Outcome::Verified,
                false => Outcome::Failed,
            }),
            key: r.key,
            detail: r.detail,
            newest: r.newest,
            member: r.member,
        }
    }
}

/// A finding for every backup whose content failed verification (critical, by its data
/// type's kind) or could not be verified (a warning).
pub fn content_findings(data_type: DataType, verified: &[Verification]) -> Vec<Finding> {
    verified
        .iter()
        .filter_map(|v| match v.outcome {
            Outcome::Verified => None,
            Outcome::Failed => Some(verification_finding(data_type, v)),
            Outcome::NotVerified => {
                Some(super::verdicts::not_verified(data_type, &v.key, &v.detail))
            }
        })
        .collect()
}

/// What auditing one policy found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyAudit {
    /// The data type audited.
    pub data_type: DataType,
    /// The server (barman-cloud `serverName`) or instance folder audited, when the policy's
    /// prefix holds more than one or names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Objects listed (primary bucket, this data type's prefix).
    pub listed: u64,
    /// Listing-level status.
    pub status: DataTypeStatus,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Content verifications done.
    pub verified: Vec<Verification>,
}

/// One policy's result as `audit-backup-policy` returns it: one audit, or one per server
/// when its prefix holds several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuditedPolicy {
    /// One server (or instance).
    One(Box<PolicyAudit>),
    /// One audit per server or instance.
    Many(Vec<PolicyAudit>),
}

impl AuditedPolicy {
    /// The audits, one per server.
    pub fn into_vec(self) -> Vec<PolicyAudit> {
        match self {
            AuditedPolicy::One(p) => vec![*p],
            AuditedPolicy::Many(ps) => ps,
        }
    }
}

/// What a policy's prefix holds, one level down: objects directly in it (`direct`), and
/// sub-folders by name (without the trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixLevel {
    /// Objects sit directly under the prefix.
    pub direct: bool,
    /// Sub-folder names.
    pub folders: Vec<String>,
}

/// The servers (PostgreSQL: barman-cloud's `<destination>/<server>/base|wals`) or instances
/// (Vault, Redis: one folder each) a policy's prefix holds: `None` for the prefix itself. A
/// PostgreSQL prefix that holds `base/` or `wals/` is one server; otherwise each sub-folder
/// is one. A Vault or Redis prefix with backups directly in it and no sub-folders is one
/// instance; otherwise each sub-folder is one.
pub fn servers_in(data_type: DataType, level: &PrefixLevel) -> Vec<Option<String>> {
    let folders = || level.folders.iter().cloned().map(Some).collect::<Vec<_>>();
    match data_type {
        DataType::PostgresFull | DataType::PostgresWal => {
            if level.folders.iter().any(|f| f == "base" || f == "wals") || level.folders.is_empty()
            {
                vec![None]
            } else {
                folders()
            }
        }
        DataType::Vault | DataType::Redis | DataType::Configuration | DataType::SecretsMetadata => {
            if level.folders.is_empty() {
                vec![None]
            } else {
                folders()
            }
        }
    }
}

/// A critical finding for a verification that failed: a base backup whose file differs from
/// its manifest is `manifest_checksum_mismatch` naming that member; anything else as
/// [`integrity_finding`].
pub fn verification_finding(data_type: DataType, v: &Verification) -> Finding {
    let mut f = integrity_finding(data_type, &v.key, &v.detail);
    if let Some(member) = &v.member {
        f.kind = "manifest_checksum_mismatch".into();
        f.member = Some(member.clone());
    }
    f
}

/// A critical finding for content that would not restore.
pub fn integrity_finding(data_type: DataType, key: &str, problem: &str) -> Finding {
    Finding {
        kind: match data_type {
            DataType::PostgresFull => "backup_unrestorable",
            DataType::PostgresWal => "wal_segment_corrupt",
            DataType::Vault => "vault_snapshot_corrupt",
            DataType::Redis => "rdb_corrupt",
            DataType::Configuration => "config_bundle_corrupt",
            DataType::SecretsMetadata => "secrets_metadata_corrupt",
        }
        .into(),
        key: Some(key.to_string()),
        severity: Severity::Critical,
        check: "integrity".into(),
        data_type,
        message: format!("{key} would not restore: {problem}"),
        fix: "do not rely on this backup: take a new one now, then find what damaged it (storage, upload, a partial write)".into(),
server: None,
member: None,
}
}

/// A timeline other than the first that has archived segments but no `<tli>.history`: a
/// restore cannot follow the promotion onto it (PostgreSQL reads the history to switch).
pub fn timeline_history_findings(
    wals_prefix: &str,
    segment_timelines: &std::collections::BTreeSet<u32>,
    history_timelines: &std::collections::BTreeSet<u32>,
) -> Vec<Finding> {
    segment_timelines
        .iter()
        .filter(|t| **t > 1 && !history_timelines.contains(t))
        .map(|t| Finding {
            kind: "timeline_history_missing".into(),
            key: Some(format!("{wals_prefix}{t:08X}.history")),
            severity: Severity::Critical,
            check: "wal_chain".into(),
            data_type: DataType::PostgresWal,
            message: format!(
                "timeline {t} has archived WAL but no {t:08X}.history: a restore cannot follow the promotion onto it"
            ),
            fix: format!(
                "copy {t:08X}.history from the promoted server's pg_wal into the archive (barman-cloud-wal-archive it)"
            ),
server: None,
member: None,
})
        .collect()
}

/// The switches a timeline without its `.history` is assumed to have made: it branched from
/// the timeline before it at its first archived segment. Its missing history is already a
/// critical finding ([`timeline_history_findings`]); without this assumption the same defect
/// would be reported twice more (the chain "breaking" at that segment, whose first page carries
/// the parent's timeline).
pub fn switches_without_history(
    segments: &[super::wal::WalSegment],
    history_timelines: &std::collections::BTreeSet<u32>,
    segment_size: u64,
) -> Vec<super::wal::TimelineSwitch> {
    let mut firsts: std::collections::BTreeMap<u32, super::wal::WalSegment> = Default::default();
    for seg in segments {
        let first = firsts.entry(seg.timeline).or_insert(*seg);
        *first = (*first).min(*seg);
    }
    firsts
        .into_iter()
        .filter(|(t, _)| *t > 1 && !history_timelines.contains(t))
        .map(|(t, first)| super::wal::TimelineSwitch {
            parent: t - 1,
            timeline: t,
            switch_lsn: (u64::from(first.log) << 32) + u64::from(first.seg) * segment_size,
        })
        .collect()
}

/// Which of a policy's objects are asked for their encryption and Object Lock (by index): every
/// backup of `data_type`, except WAL, where the newest segment of each directory stands for
/// its directory (a week of WAL is ten thousand HEADs).
pub fn objects_to_head(
    objects: &[super::catalog::StoredObject],
    layout: &Layout,
    data_type: DataType,
) -> Vec<usize> {
    use super::catalog::{Item, classify};
    let mut to_head: Vec<usize> = Vec::new();
    let mut newest_in_dir: std::collections::BTreeMap<String, (super::wal::WalSegment, usize)> =
        Default::default();
    for (i, o) in objects.iter().enumerate() {
        match classify(&o.key, layout) {
            Some((t, Item::Wal(seg))) if t == data_type => {
                let entry = newest_in_dir.entry(seg.directory()).or_insert((seg, i));
                if seg >= entry.0 {
                    *entry = (seg, i);
                }
            }
            Some((t, _)) if t == data_type => to_head.push(i),
            _ => {}
        }
    }
    to_head.extend(newest_in_dir.values().map(|(_, i)| *i));
    to_head
}

/// The PostgreSQL RPO promise: a critical finding when what a restore could reach now is
/// older than the tier allows. Vault and Redis are held to their own policy's frequency by
/// the freshness check instead (an hourly snapshot can never meet a 5-minute RPO, by design).
pub fn rpo_finding(status: &DataTypeStatus, rpo_target_secs: i64) -> Option<Finding> {
    if status.data_type != DataType::PostgresWal {
        return None;
    }
    let message = match status.achievable_rpo_secs {
        Some(rpo) if rpo <= rpo_target_secs => return None,
        Some(rpo) => format!(
            "a restore now would lose the last {rpo} s of writes; the tier allows {rpo_target_secs} s"
        ),
        None => "no verified base backup with a continuous WAL chain: PostgreSQL cannot be restored at all".into(),
    };
    Some(Finding {
        kind: "rpo_over_target".into(),
        key: None,
        severity: Severity::Critical,
        check: "rpo".into(),
        data_type: DataType::PostgresWal,
        message,
        fix: "check WAL archiving (archive_command / barman-cloud-wal-archive) and that the newest base backup verifies".into(),
server: None,
member: None,
})
}

/// The audit's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Clock of the audit, epoch seconds.
    pub now: i64,
    /// Tier compared against.
    pub tier: Tier,
    /// The tier's RPO, seconds.
    pub rpo_target_secs: i64,
    /// Critical findings.
    pub critical: u64,
    /// Warnings.
    pub warnings: u64,
    /// `PASSED` (no critical finding) or `FAILED`.
    pub verdict: String,
    /// One line for notifications and the failed execution's cause.
    pub summary: String,
    /// Per policy.
    pub policies: Vec<PolicyAudit>,
}

impl AuditReport {
    /// Aggregates the policies' results.
    pub fn new(now: i64, tier: Tier, mut policies: Vec<PolicyAudit>) -> Self {
        policies.sort_by(|a, b| (a.data_type, &a.server).cmp(&(b.data_type, &b.server)));
        // The WAL chain is only worth something from a base backup that restores: when the
        // newest one failed content verification, no RPO is achievable from it.
        let broken_servers: Vec<Option<String>> = policies
            .iter()
            .filter(|p| {
                p.data_type == DataType::PostgresFull
                    && p.verified.iter().any(|v| v.newest && !v.ok())
            })
            .map(|p| p.server.clone())
            .collect();
        for wal in policies
            .iter_mut()
            .filter(|p| p.data_type == DataType::PostgresWal && broken_servers.contains(&p.server))
        {
            wal.status.achievable_rpo_secs = None;
            wal.findings.retain(|f| f.check != "rpo");
            wal.findings
                .extend(rpo_finding(&wal.status, tier.rpo_secs() as i64));
        }
        let count = |s: Severity| {
            policies
                .iter()
                .flat_map(|p| &p.findings)
                .filter(|f| f.severity == s)
                .count() as u64
        };
        let (critical, warnings) = (count(Severity::Critical), count(Severity::Warning));
        let verdict = if critical == 0 { "PASSED" } else { "FAILED" };
        let first = policies
            .iter()
            .flat_map(|p| &p.findings)
            .find(|f| f.severity == Severity::Critical);
        let summary = match first {
            None => format!(
                "backup audit {verdict}: {} policies, {warnings} warning(s)",
                policies.len()
            ),
            Some(f) => format!(
                "backup audit {verdict}: {critical} critical, {warnings} warning(s); first: {:?} {}: {}",
                f.data_type, f.check, f.message
            ),
        };
        Self {
            now,
            tier,
            rpo_target_secs: tier.rpo_secs() as i64,
            critical,
            warnings,
            verdict: verdict.into(),
            summary,
            policies,
        }
    }

    /// The metrics to put (namespace `hapilot/Backups`, dimension `DataType`): backup age,
    /// achievable RPO, findings by severity.
    pub fn metrics(&self) -> Vec<(DataType, &'static str, f64, &'static str)> {
        self.metrics_by_server()
            .into_iter()
            .map(|(t, _, name, value, unit)| (t, name, value, unit))
            .collect()
    }

    /// [`AuditReport::metrics`] with the server each value is about (`None`: the policy's
    /// prefix is one server), for a `Server` dimension beside `DataType`.
    pub fn metrics_by_server(
        &self,
    ) -> Vec<(DataType, Option<&str>, &'static str, f64, &'static str)> {
        let mut rows = Vec::new();
        for p in &self.policies {
            let server = p.server.as_deref();
            if let Some(age) = p.status.newest_age_secs {
                rows.push((
                    p.data_type,
                    server,
                    "BackupAgeSeconds",
                    age as f64,
                    "Seconds",
                ));
            }
            if let Some(rpo) = p.status.achievable_rpo_secs {
                rows.push((
                    p.data_type,
                    server,
                    "AchievableRpoSeconds",
                    rpo as f64,
                    "Seconds",
                ));
            }
            for (severity, name) in [
                (Severity::Critical, "CriticalFindings"),
                (Severity::Warning, "WarningFindings"),
            ] {
                let n = p.findings.iter().filter(|f| f.severity == severity).count();
                rows.push((p.data_type, server, name, n as f64, "Count"));
            }
        }
        rows
    }

    /// The report as Markdown, for people.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Backup audit: {}\n\nClock: {} (epoch {}). Tier {} (RPO {} s). {} critical, {} warning(s).\n\n",
            self.verdict,
            epoch_text(self.now),
            self.now,
            self.tier.as_str(),
            self.rpo_target_secs,
            self.critical,
            self.warnings
        );
        md.push_str("| data type | backups | newest age | achievable RPO | findings |\n| --- | ---: | ---: | ---: | --- |\n");
        for p in &self.policies {
            let secs = |v: Option<i64>| v.map_or("-".to_string(), |s| format!("{s} s"));
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                labelled(p.data_type, p.server.as_deref()),
                p.status.backups,
                secs(p.status.newest_age_secs),
                secs(p.status.achievable_rpo_secs),
                if p.findings.is_empty() {
                    "none".to_string()
                } else {
                    p.findings.len().to_string()
                }
            ));
        }
        let windows: Vec<_> = self
            .policies
            .iter()
            .flat_map(|p| {
                p.status
                    .restore_windows
                    .iter()
                    .map(|w| (p.server.as_deref(), w))
            })
            .collect();
        if !windows.is_empty() {
            md.push_str(
                "\n## Point-in-time restore\n\nYou can restore PostgreSQL to any moment in:\n\n",
            );
            for (server, w) in windows {
                md.push_str(&format!(
                    "- {}{} .. {}\n",
                    server.map(|s| format!("{s}: ")).unwrap_or_default(),
                    epoch_text(w.from),
                    epoch_text(w.to)
                ));
            }
        }
        let findings: Vec<_> = self.policies.iter().flat_map(|p| &p.findings).collect();
        if !findings.is_empty() {
            md.push_str("\n## Findings\n\n");
            for f in findings {
                md.push_str(&format!(
                    "- **{}** {} / {} (`{}`): {}  \n  Fix: {}\n",
                    match f.severity {
                        Severity::Critical => "CRITICAL",
                        Severity::Warning => "warning",
                    },
                    labelled(f.data_type, f.server.as_deref()),
                    f.check,
                    f.kind,
                    f.message,
                    f.fix
                ));
            }
        }
        let verified: Vec<_> = self.policies.iter().flat_map(|p| &p.verified).collect();
        if !verified.is_empty() {
            md.push_str("\n## Content verified\n\n");
            for v in verified {
                md.push_str(&format!(
                    "- {} `{}`: {}\n",
                    match v.outcome {
                        Outcome::Verified => "ok",
                        Outcome::Failed => "FAILED",
                        Outcome::NotVerified => "NOT VERIFIED",
                    },
                    v.key,
                    v.detail
                ));
            }
        }
        md
    }
}

/// A data type's name, with the server it is about when there is one.
fn labelled(data_type: DataType, server: Option<&str>) -> String {
    match server {
        Some(s) => format!("{} ({s})", data_type_name(data_type)),
        None => data_type_name(data_type).to_string(),
    }
}

/// The data type's name as an operator reads it.
pub fn data_type_name(data_type: DataType) -> &'static str {
    match data_type {
        DataType::PostgresFull => "PostgreSQL base backups",
        DataType::PostgresWal => "PostgreSQL WAL",
        DataType::Vault => "Vault snapshots",
        DataType::Redis => "Redis RDB",
        DataType::Configuration => "Configuration (Git bundles)",
        DataType::SecretsMetadata => "Secrets metadata (Vault export)",
    }
}

/// The metric dimension value of a data type (`postgres_full`, ...).
pub fn data_type_key(data_type: DataType) -> &'static str {
    match data_type {
        DataType::PostgresFull => "postgres_full",
        DataType::PostgresWal => "postgres_wal",
        DataType::Vault => "vault",
        DataType::Redis => "redis",
        DataType::Configuration => "configuration",
        DataType::SecretsMetadata => "secrets_metadata",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::catalog::StoredObject;
    use crate::backup::wal::WalSegment;

    fn seg(timeline: u32, log: u32, seg: u32) -> WalSegment {
        WalSegment { timeline, log, seg }
    }

    #[test]
    fn a_timeline_without_history_branched_at_its_first_segment_and_one_with_it_is_left_alone() {
        let segments = [
            seg(1, 0, 1),
            seg(1, 0, 2),
            seg(2, 0, 5),
            seg(2, 0, 3),
            seg(3, 1, 7),
        ];
        let histories = std::collections::BTreeSet::from([3]);
        let switches = switches_without_history(&segments, &histories, 16 << 20);
        assert_eq!(switches.len(), 1, "{switches:?}");
        assert_eq!((switches[0].parent, switches[0].timeline), (1, 2));
        assert_eq!(
            switches[0].switch_lsn,
            3 * (16 << 20),
            "its first segment, not the first seen"
        );
    }

    #[test]
    fn every_backup_is_headed_but_wal_only_by_each_directorys_newest_segment() {
        let layout = Layout::default();
        let object = |key: &str| StoredObject {
            key: key.into(),
            size: 1,
            time: 0,
            etag: None,
            sha256: None,
            encrypted: false,
            locked: false,
        };
        let wals = "postgres/gateway-db/wals/";
        let objects = [
            object(&format!(
                "{wals}0000000100000000/000000010000000000000001.gz"
            )),
            object(&format!(
                "{wals}0000000100000000/000000010000000000000003.gz"
            )),
            object(&format!(
                "{wals}0000000100000000/000000010000000000000002.gz"
            )),
            object(&format!(
                "{wals}0000000100000001/000000010000000100000001.gz"
            )),
            object("vault/raft-1.snap"),
        ];
        let mut headed = objects_to_head(&objects, &layout, DataType::PostgresWal);
        headed.sort_unstable();
        assert_eq!(headed, [1, 3]);
        assert_eq!(objects_to_head(&objects, &layout, DataType::Vault), [4]);
    }

    #[test]
    fn servers_are_found_one_level_under_the_prefix() {
        let level = |folders: &[&str]| PrefixLevel {
            direct: false,
            folders: folders.iter().map(|f| f.to_string()).collect(),
        };
        let pg = DataType::PostgresWal;
        assert_eq!(servers_in(pg, &level(&["base", "wals"])), vec![None]);
        assert_eq!(servers_in(pg, &level(&[])), vec![None]);
        assert_eq!(
            servers_in(pg, &level(&["gateway-db", "billing-db"])),
            vec![Some("gateway-db".into()), Some("billing-db".into())]
        );
        assert_eq!(servers_in(DataType::Vault, &level(&[])), vec![None]);
        assert_eq!(
            servers_in(DataType::Redis, &level(&["cache-a", "cache-b"])),
            vec![Some("cache-a".into()), Some("cache-b".into())]
        );
    }
    use crate::backup::catalog::parse_compact_time;
    use proptest::prelude::*;

    fn defaults() -> AuditDefaults {
        AuditDefaults {
            bucket: Some("backups".into()),
            dr_bucket: Some("backups-dr".into()),
            dr_region: Some("us-west-2".into()),
            tier: None,
        }
    }

    #[test]
    fn an_empty_request_audits_the_ha_table() {
        let plan = plan_audit(BackupAuditRequest::default(), &defaults(), 1_000).unwrap();
        assert_eq!(plan.items.len(), 6, "the HA document's six rows");
        assert_eq!(plan.tier, Tier::Critical);
        assert!(plan.items.iter().all(|i| i.now == 1_000
            && i.rpo_target_secs == 300
            && i.target.bucket == "backups"
            && i.verify == VerifyScope::Newest));
    }

    #[test]
    fn bad_requests_name_the_field() {
        let e = plan_audit(BackupAuditRequest::default(), &AuditDefaults::default(), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HAPILOT_BACKUP_BUCKET"), "{e}");
        let mut twice = default_policies();
        twice.push(twice[0].clone());
        let e = plan_audit(
            BackupAuditRequest {
                policies: Some(twice),
                ..Default::default()
            },
            &defaults(),
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("policies[6]") && e.contains("twice"), "{e}");
        let no_dr = AuditDefaults {
            dr_bucket: None,
            ..defaults()
        };
        let e = plan_audit(BackupAuditRequest::default(), &no_dr, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dr_bucket"), "{e}");
        let e = serde_json::from_str::<BackupAuditRequest>(r#"{"bukket": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("bukket"));
    }

    fn status(data_type: DataType, rpo: Option<i64>) -> DataTypeStatus {
        DataTypeStatus {
            data_type,
            backups: 3,
            newest_age_secs: Some(60),
            achievable_rpo_secs: rpo,
            restore_windows: Vec::new(),
        }
    }

    #[test]
    fn rpo_is_held_to_the_tier_for_postgres_only() {
        assert!(rpo_finding(&status(DataType::PostgresWal, Some(300)), 300).is_none());
        assert!(rpo_finding(&status(DataType::PostgresWal, Some(301)), 300).is_some());
        assert!(rpo_finding(&status(DataType::PostgresWal, None), 300).is_some());
        assert!(rpo_finding(&status(DataType::Vault, Some(3_000)), 300).is_none());
    }

    #[test]
    fn a_broken_newest_base_backup_voids_the_wal_rpo() {
        let full = PolicyAudit {
            server: None,
            data_type: DataType::PostgresFull,
            listed: 2,
            status: status(DataType::PostgresFull, None),
            findings: vec![integrity_finding(
                DataType::PostgresFull,
                "b/data.tar",
                "crc",
            )],
            verified: vec![Verification {
                newest: true,
                ..Verification::failed("b/data.tar", "crc".into())
            }],
        };
        let wal = PolicyAudit {
            server: None,
            data_type: DataType::PostgresWal,
            listed: 9,
            status: status(DataType::PostgresWal, Some(60)),
            findings: vec![],
            verified: vec![],
        };
        let report = AuditReport::new(0, Tier::Critical, vec![wal, full]);
        let wal = &report.policies[1];
        assert_eq!(wal.status.achievable_rpo_secs, None);
        assert_eq!(wal.findings[0].check, "rpo");
        assert_eq!(report.critical, 2);
    }

    #[test]
    fn the_report_counts_and_renders() {
        let clean = PolicyAudit {
            server: None,
            data_type: DataType::Vault,
            listed: 5,
            status: status(DataType::Vault, Some(60)),
            findings: vec![],
            verified: vec![Verification {
                newest: true,
                ..Verification::verified("vault/x.snap", "SHA256SUMS match".into())
            }],
        };
        let broken = PolicyAudit {
            server: None,
            data_type: DataType::Redis,
            findings: vec![integrity_finding(
                DataType::Redis,
                "redis/y.rdb",
                "truncated",
            )],
            ..clean.clone()
        };
        let passed = AuditReport::new(0, Tier::Critical, vec![clean.clone()]);
        assert_eq!((passed.verdict.as_str(), passed.critical), ("PASSED", 0));
        let failed = AuditReport::new(0, Tier::High, vec![broken, clean]);
        assert_eq!((failed.verdict.as_str(), failed.critical), ("FAILED", 1));
        assert_eq!(failed.policies[0].data_type, DataType::Vault);
        assert!(failed.summary.contains("redis/y.rdb would not restore"));
        let md = failed.markdown();
        assert!(md.starts_with("# Backup audit: FAILED"), "{md}");
        assert!(md.contains("**CRITICAL** Redis RDB / integrity"), "{md}");
        assert!(md.contains("- ok `vault/x.snap`"), "{md}");
        assert!(
            failed
                .metrics()
                .contains(&(DataType::Redis, "CriticalFindings", 1.0, "Count"))
        );
    }

    proptest! {
        #[test]
        fn epoch_text_round_trips(epoch in 0i64..4_102_444_800) {
            let text = epoch_text(epoch);
            let compact: String = text.chars().filter(|c| *c != '-' && *c != ':').collect();
            prop_assert_eq!(parse_compact_time(&compact), Some(epoch));
        }
    }

    #[test]
    fn a_timeline_with_wal_but_no_history_is_named_by_its_history_key() {
        let set = |v: &[u32]| {
            v.iter()
                .copied()
                .collect::<std::collections::BTreeSet<u32>>()
        };
        let found = timeline_history_findings("postgres/db/wals/", &set(&[1, 2, 3]), &set(&[2]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, "timeline_history_missing");
        assert_eq!(
            found[0].key.as_deref(),
            Some("postgres/db/wals/00000003.history")
        );
        assert!(timeline_history_findings("p/", &set(&[1]), &set(&[])).is_empty());
    }

    #[test]
    fn content_findings_tell_a_backup_that_would_not_restore_from_one_never_read() {
        let verified = [
            Verification::verified("w/1", "complete segment".into()),
            Verification::failed("w/2", "gzip CRC mismatch".into()),
            Verification::not_verified("w/3", "compression \"lz4\" is not verified".into()),
        ];
        let found = content_findings(DataType::PostgresWal, &verified);
        let kinds: Vec<_> = found
            .iter()
            .map(|f| (f.kind.as_str(), f.severity, f.key.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("wal_segment_corrupt", Severity::Critical, Some("w/2")),
                ("not_verified", Severity::Warning, Some("w/3")),
            ]
        );
        // Whatever its words say: only the outcome decides.
        let worded = Verification::failed("w/4", "not verified: looked corrupt".into());
        let found = content_findings(DataType::PostgresWal, &[worded]);
        assert_eq!(found[0].kind, "wal_segment_corrupt");
    }

    #[test]
    fn a_verification_keeps_ok_in_the_report_and_reads_records_without_an_outcome() {
        let v = Verification::not_verified("w/3", "lz4".into());
        let record = serde_json::to_value(&v).unwrap();
        assert_eq!(record["ok"], false);
        assert_eq!(record["outcome"], "not_verified");
        assert!(record.get("member").is_none());
        assert_eq!(serde_json::from_value::<Verification>(record).unwrap(), v);
        let older = serde_json::json!({"key": "k", "ok": true, "detail": "d", "newest": true});
        let read: Verification = serde_json::from_value(older).unwrap();
        assert_eq!(
            (read.outcome, read.ok(), read.newest),
            (Outcome::Verified, true, true)
        );
        let older = serde_json::json!({"key": "k", "ok": false, "detail": "d", "newest": false});
        let read: Verification = serde_json::from_value(older).unwrap();
        assert_eq!(read.outcome, Outcome::Failed);
    }

    #[test]
    fn the_markdown_says_not_verified_apart_from_failed() {
        let policy = |verified| PolicyAudit {
            server: None,
            data_type: DataType::PostgresWal,
            listed: 1,
            status: status(DataType::PostgresWal, Some(60)),
            findings: vec![],
            verified,
        };
        let report = AuditReport::new(
            0,
            Tier::Critical,
            vec![policy(vec![
                Verification::failed("w/2", "CRC".into()),
                Verification::not_verified("w/3", "lz4".into()),
            ])],
        );
        let md = report.markdown();
        assert!(md.contains("- FAILED `w/2`: CRC"), "{md}");
        assert!(md.contains("- NOT VERIFIED `w/3`: lz4"), "{md}");
    }
}
