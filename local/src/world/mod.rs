//! Worlds made of the stack and the systems: the deployment every end-to-end test and the drill
//! build ([`deployment`]), the world `hapilot local up` keeps running ([`local_up`]), and the
//! pace at which they run against AWS's clock ([`pace`]).

pub mod deployment;
pub mod local_up;
pub mod pace;
