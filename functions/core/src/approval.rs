//! Who may answer a run that waits for a human. The caller's identity is the one AWS
//! established for the request (a function URL with `AWS_IAM` auth puts it in the request
//! context), never one the client wrote; it must be among the deployment's approvers.

/// Whether `caller` (an IAM user, role or assumed-role session ARN, as IAM authentication
/// reports it) is one of `approvers`. An approver is an ARN: a user matches itself; a role
/// matches itself and every session of it (`arn:aws:sts::<account>:assumed-role/<name>/<session>`,
/// the ARN a person signed in through IAM Identity Center or `sts:AssumeRole` has); an ARN
/// ending in `*` matches every caller ARN it begins.
pub fn may_approve(caller: &str, approvers: &[String]) -> bool {
    approvers.iter().any(|approver| {
        let approver = approver.trim();
        if let Some(prefix) = approver.strip_suffix('*') {
            return !prefix.is_empty() && caller.starts_with(prefix);
        }
        approver == caller || role_session_of(approver).is_some_and(|s| caller.starts_with(&s))
    })
}

/// The session ARN prefix of a role ARN: `arn:aws:iam::111:role/path/Name` gives
/// `arn:aws:sts::111:assumed-role/Name/` (sessions drop the role's path).
fn role_session_of(role_arn: &str) -> Option<String> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let [arn, partition, "iam", "", account, resource] = parts.as_slice() else {
        return None;
    };
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (!name.is_empty()).then(|| format!("{arn}:{partition}:sts::{account}:assumed-role/{name}/"))
}

/// The approvers as the deployment lists them (`HAPILOT_APPROVERS`: ARNs separated by commas,
/// as CloudFormation joins a `CommaDelimitedList`); empty entries dropped.
pub fn parse_approvers(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(arns: &[&str]) -> Vec<String> {
        arns.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn users_match_themselves_and_roles_match_their_sessions() {
        let approvers = list(&[
            "arn:aws:iam::111122223333:user/oncall",
            "arn:aws:iam::111122223333:role/teams/SRE-OnCall",
        ]);
        for (caller, may) in [
            ("arn:aws:iam::111122223333:user/oncall", true),
            ("arn:aws:iam::111122223333:user/oncall-intern", false),
            (
                "arn:aws:sts::111122223333:assumed-role/SRE-OnCall/alice@example.com",
                true,
            ),
            ("arn:aws:iam::111122223333:role/teams/SRE-OnCall", true),
            (
                "arn:aws:sts::111122223333:assumed-role/SRE-OnCall-ReadOnly/bob",
                false,
            ),
            (
                "arn:aws:sts::999988887777:assumed-role/SRE-OnCall/mallory",
                false,
            ),
            ("", false),
        ] {
            assert_eq!(may_approve(caller, &approvers), may, "{caller}");
        }
    }

    #[test]
    fn a_star_matches_what_it_begins_and_nobody_is_an_approver_by_default() {
        let approvers = list(&["arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_*"]);
        assert!(may_approve(
            "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/carol",
            &approvers
        ));
        assert!(!may_approve("arn:aws:iam::111122223333:user/x", &approvers));
        assert!(!may_approve("arn:aws:iam::111122223333:user/x", &[]));
        assert!(!may_approve("anything", &list(&["*"])));
        assert_eq!(
            parse_approvers(" arn:a , ,arn:b"),
            vec!["arn:a".to_string(), "arn:b".to_string()]
        );
    }
}
