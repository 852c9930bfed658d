//! The I/O around [`answer`](crate::answer::answer): UDP worker threads and a TCP acceptor
//! per listen address ([`Listener`]), all answering through one [`Responder`], which holds
//! the zone in force.

mod listener;
mod responder;
mod tcp;
mod udp;

pub(crate) use listener::Listener;
pub(crate) use responder::Responder;
