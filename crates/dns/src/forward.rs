//! Relays a query for a name outside our zones to the `dns.forward` upstreams through
//! hickory-resolver's connection layer, and returns the upstream's response as it came:
//! its response code, flags (RA included) and every section, with the client's message ID.
//! Not hickory's name-server pool or resolver: those turn NXDOMAIN and NODATA into errors
//! and rebuild answers, and cache; a relay must pass the upstream's message through.
//!
//! Upstreams are tried in the configured order; one that fails or does not answer within
//! `UPSTREAM_TIMEOUT` passes the query to the next. The query goes over the client's
//! transport: over UDP it keeps the client's EDNS size, so a truncated upstream answer
//! reaches the client truncated and the client retries over TCP, which is relayed over TCP.
//! hickory sends each UDP query from a fresh random port and takes only an answer from the
//! upstream's address with the query's ID and question. Over TCP, one connection per
//! upstream is opened on first use and kept: queries from every client are pipelined on it,
//! and a connection that failed or timed out is replaced by the next query. Nothing is cached.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::Mutex;

use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message};
use hickory_resolver::ConnectionProvider;
use hickory_resolver::config::{ConnectionConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsExchange, DnsHandle, FirstAnswer};
use hickory_resolver::{PoolContext, TlsConfig};

use crate::verdict::Transport;

/// How long one upstream gets to answer (UDP retransmissions included) before the next.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

type Connection = DnsExchange<TokioRuntimeProvider>;

/// The upstreams of one `dns.forward` list, with their UDP exchanges open and their TCP
/// connections once used; built again only when the list changes.
pub(crate) struct Forwarders {
    upstreams: Vec<SocketAddr>,
    udp: Vec<Connection>,
    tcp: Vec<Mutex<Option<Connection>>>,
    provider: TokioRuntimeProvider,
    context: PoolContext,
}

impl std::fmt::Debug for Forwarders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarders")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl Forwarders {
    /// Opens a UDP exchange to each upstream (on the runtime, which runs their tasks).
    pub(crate) async fn connect(upstreams: &[SocketAddr]) -> Result<Self, NetError> {
        let mut options = ResolverOpts::default();
        options.timeout = UPSTREAM_TIMEOUT;
        let context = PoolContext::new(options, TlsConfig::new()?);
        let provider = TokioRuntimeProvider::new();
        let mut udp = Vec::with_capacity(upstreams.len());
        for upstream in upstreams {
            let config = connection(ConnectionConfig::udp(), *upstream);
            udp.push(
                provider
                    .new_connection(upstream.ip(), &config, &context)?
                    .await?,
            );
        }
        Ok(Forwarders {
            upstreams: upstreams.to_vec(),
            udp,
            tcp: upstreams.iter().map(|_| Mutex::new(None)).collect(),
            provider,
            context,
        })
    }

    /// The `dns.forward` list these were built from.
    pub(crate) fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The first upstream response to `query`, with the query's ID, or `None` if the query
    /// does not parse or no upstream answered.
    pub(crate) async fn relay(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let message = Message::from_vec(query).ok()?;
        let request = DnsRequest::new(message, DnsRequestOptions::default());
        for (index, upstream) in self.upstreams.iter().enumerate() {
            let attempt = async {
                match transport {
                    Transport::Udp => self.udp[index].send(request.clone()).first_answer().await,
                    Transport::Tcp => {
                        let (connection, reused) = self.tcp_connection(index).await?;
                        match connection.send(request.clone()).first_answer().await {
                            // The upstream may have closed a kept connection while idle:
                            // one more try on a new one.
                            Err(_) if reused => {
                                self.forget_tcp(index).await;
                                let (connection, _) = self.tcp_connection(index).await?;
                                connection.send(request.clone()).first_answer().await
                            }
                            answered => answered,
                        }
                    }
                }
            };
            let result = tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await;
            if transport == Transport::Tcp && !matches!(result, Ok(Ok(_))) {
                self.forget_tcp(index).await;
            }
            match result {
                Ok(Ok(response)) => {
                    let mut reply = response.into_buffer();
                    // TCP exchanges number their queries themselves.
                    if let (Some(id), Some(client_id)) = (reply.get_mut(..2), query.get(..2)) {
                        id.copy_from_slice(client_id);
                    }
                    return Some(reply);
                }
                Ok(Err(error)) => {
                    tracing::debug!(upstream = %upstream, error = %error, "dns: upstream failed");
                }
                Err(_) => tracing::debug!(upstream = %upstream, "dns: upstream timed out"),
            }
        }
        None
    }
}

impl Forwarders {
    /// The kept TCP connection to upstream `index`, opened if there is none; `true` if it
    /// was kept from an earlier query.
    async fn tcp_connection(&self, index: usize) -> Result<(Connection, bool), NetError> {
        let mut kept = self.tcp[index].lock().await;
        if let Some(connection) = &*kept {
            return Ok((connection.clone(), true));
        }
        let upstream = self.upstreams[index];
        let config = connection(ConnectionConfig::tcp(), upstream);
        let connection = self
            .provider
            .new_connection(upstream.ip(), &config, &self.context)?
            .await?;
        *kept = Some(connection.clone());
        Ok((connection, false))
    }

    async fn forget_tcp(&self, index: usize) {
        *self.tcp[index].lock().await = None;
    }
}

fn connection(mut config: ConnectionConfig, upstream: SocketAddr) -> ConnectionConfig {
    config.port = upstream.port();
    config
}
