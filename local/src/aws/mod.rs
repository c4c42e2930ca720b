//! AWS on one machine: moto (the control planes it emulates, executing our state machines),
//! the front door that serves Lambda Invoke with the real handlers, and the parts of AWS moto
//! lacks, each with its refusal rules in a `*_rules` module citing AWS's documentation:
//! Route53's record rules and data plane, CloudWatch's alarm evaluation, ARC's cluster API,
//! IAM's policy simulator, the SSO portal, Fault Injection Service, and the templates deployed
//! as CloudFormation would deploy them.

pub mod alarm_rules;
pub mod arc;
pub mod arc_rules;
pub mod data_plane;
pub mod definitions;
pub mod faults;
pub mod front_door;
pub mod iam;
pub mod moto;
pub mod route53_records;
pub mod route53_rules;
pub mod sso_portal;
pub mod stack;
pub mod template;
