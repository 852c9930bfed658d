//! The BGP LoadBalancer announcer.

#![warn(missing_docs, unreachable_pub)]

pub mod advertise;
pub mod message;
pub mod session;
