//! Reloads that reuse what the last parse made: every `[[services]]` block whose text is
//! unchanged takes its typed [`Service`] from then instead of being parsed again. A fleet
//! push usually changes one service of thousands, and parsing all the others again was most
//! of a reload's CPU (10,000 services: about 100 ms of TOML per node and reload).
//!
//! The document is cut at its table header lines. A block starts at a `[[services]]` line
//! and runs to the next header that is not a sub-table of it (`[services.x]`,
//! `[[services.x]]`); every other line belongs to the head, parsed whole each time. The cut
//! reads lines, not TOML, so it may land inside a multi-line string or array. No TOML
//! construct stays valid when cut in two, so the piece before such a cut fails to parse.
//! Any failure, and a head that holds `services` itself, falls back to parsing the whole
//! text, and the problems reported are that parse's. Either way the result is the
//! [`Config`] a whole parse gives.
//!
//! The services are kept postcard-encoded, one after the other in one buffer: 10,000 take
//! about 1 MB so, against 9 MB as values, and decoding one is a fraction of a microsecond.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use toml::de::DeTable;

use crate::load::{Tree, owned_keys};
use crate::{Config, Problems, Service, parse, parse_split};

/// The services of the last parse, by the SHA-256 of their block's text.
#[derive(Debug, Clone, Default)]
pub struct ServiceBlocks {
    /// Where each block's service sits in `encoded` (start, end).
    at: HashMap<[u8; 32], (usize, usize)>,
    encoded: Vec<u8>,
}

impl ServiceBlocks {
    /// How many blocks are remembered.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn encoded(&self, digest: &[u8; 32]) -> Option<&[u8]> {
        let &(start, end) = self.at.get(digest)?;
        self.encoded.get(start..end)
    }

    /// Remembers a service by its encoding (the first one of a digest counts).
    fn keep(&mut self, digest: [u8; 32], encoded: &[u8]) {
        if !self.at.contains_key(&digest) {
            let start = self.encoded.len();
            self.encoded.extend_from_slice(encoded);
            self.at.insert(digest, (start, self.encoded.len()));
        }
    }
}

/// [`parse`], reusing the services of `previous` whose block text is unchanged; also
/// returns the blocks of this text for the next parse (none when it fell back).
pub fn parse_reusing(
    previous: &ServiceBlocks,
    name: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, ServiceBlocks), Problems> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    if let Some(found) = reuse(previous, text, |head| {
        parse(name, head, env.iter().cloned())
    }) {
        return Ok(found);
    }
    parse(name, text, env).map(|config| (config, ServiceBlocks::default()))
}

/// [`parse_split`], reusing the services of the shared document as [`parse_reusing`] does.
pub fn parse_split_reusing(
    previous: &ServiceBlocks,
    local: (&str, &str),
    shared: (&str, &str),
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, ServiceBlocks), Problems> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let parse_head = |head: &str| parse_split(local, (shared.0, head), env.iter().cloned());
    if let Some(found) = reuse(previous, shared.1, parse_head) {
        return Ok(found);
    }
    parse_split(local, shared, env).map(|config| (config, ServiceBlocks::default()))
}

/// The config of `text`, its head read by `parse_head` (with the environment and, for a
/// shared document, the local file), or `None` where only a whole parse can say what is
/// wrong.
fn reuse(
    previous: &ServiceBlocks,
    text: &str,
    parse_head: impl FnOnce(&str) -> Result<Config, Problems>,
) -> Option<(Config, ServiceBlocks)> {
    let (head, blocks) = cut(text);
    // `services` in the head (a table, an inline array, a dotted key) is for a whole parse.
    let head_table = DeTable::parse(&head).ok()?;
    if head_table
        .get_ref()
        .keys()
        .any(|key| key.get_ref() == "services")
    {
        return None;
    }
    let mut config = parse_head(&head).ok()?;
    // Services from the environment are for a whole parse too.
    if !config.services.is_empty() {
        return None;
    }
    let mut found = ServiceBlocks {
        at: HashMap::with_capacity(blocks.len()),
        encoded: Vec::with_capacity(previous.encoded.len()),
    };
    // Each block's digest and, when the last parse had it, its service's encoding.
    let known: Vec<([u8; 32], Option<&[u8]>)> = blocks
        .iter()
        .map(|block| {
            let digest = Sha256::digest(block.as_bytes()).into();
            (digest, previous.encoded(&digest))
        })
        .collect();
    let new: Vec<&str> = (blocks.iter().zip(&known))
        .filter(|(_, (_, encoded))| encoded.is_none())
        .map(|(block, _)| *block)
        .collect();
    let mut parsed = parse_blocks(&new).into_iter();
    let mut services = Vec::with_capacity(blocks.len());
    for (digest, encoded) in known {
        let service = match encoded {
            Some(bytes) => {
                found.keep(digest, bytes);
                postcard::from_bytes(bytes).ok()?
            }
            None => {
                let service = parsed.next()??;
                found.keep(digest, &postcard::to_allocvec(&service).ok()?);
                service
            }
        };
        services.push(service);
    }
    config.services = services;
    Some((config, found))
}

/// Blocks at least this many to a thread are parsed on several threads (a start, a push).
const BLOCKS_PER_THREAD: usize = 1000;

/// Each block parsed on its own, on up to one thread per core.
fn parse_blocks(blocks: &[&str]) -> Vec<Option<Service>> {
    let parse_all = |part: &[&str]| part.iter().map(|block| parse_block(block)).collect();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(blocks.len() / BLOCKS_PER_THREAD);
    if threads < 2 {
        return parse_all(blocks);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = blocks
            .chunks(blocks.len().div_ceil(threads))
            .map(|part| {
                let worker = std::thread::Builder::new()
                    .name("dockline-parse".into())
                    .spawn_scoped(scope, move || parse_all(part));
                (part, worker)
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(part, worker)| match worker {
                Ok(worker) => worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => parse_all(part),
            })
            .collect()
    })
}

/// One `[[services]]` block parsed on its own.
fn parse_block(block: &str) -> Option<Service> {
    let mut keys = owned_keys(DeTable::parse(block).ok()?.into_inner());
    let (key, value) = keys.next()?;
    if key != "services" || keys.next().is_some() {
        return None;
    }
    let mut items = value.into_items()?;
    if items.len() != 1 {
        return None;
    }
    items.pop()?.into_typed().ok()
}

/// What a line that opens with `[` is to the cut.
#[derive(Debug, PartialEq)]
enum Header {
    /// `[[services]]`: a new block.
    Service,
    /// `[services.x]` or `[[services.x]]`: part of the block it follows.
    InService,
    /// Any other header (or a line of an array that opens with `[`): ends a block.
    Other,
}

fn header(line: &str) -> Option<Header> {
    let line = line.trim_start();
    let (array, rest) = match line.strip_prefix("[[") {
        Some(rest) => (true, rest),
        None => (false, line.strip_prefix('[')?),
    };
    let name = rest.split(']').next().unwrap_or_default().trim();
    let Some(after) = name.strip_prefix("services") else {
        return Some(Header::Other);
    };
    Some(match after.trim_start().chars().next() {
        None if array => Header::Service,
        Some('.') => Header::InService,
        _ => Header::Other,
    })
}

/// The head (every line outside a services block, in order) and the blocks.
fn cut(text: &str) -> (String, Vec<&str>) {
    let mut head = String::new();
    let mut blocks = Vec::new();
    let mut block_start = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        match header(line) {
            Some(Header::Service) => {
                if let Some(start) = block_start.replace(offset) {
                    blocks.push(&text[start..offset]);
                }
            }
            Some(Header::Other) => {
                if let Some(start) = block_start.take() {
                    blocks.push(&text[start..offset]);
                }
            }
            Some(Header::InService) | None => {}
        }
        if block_start.is_none() {
            head.push_str(line);
        }
        offset += line.len();
    }
    if let Some(start) = block_start {
        blocks.push(&text[start..]);
    }
    (head, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"# the shared part
[cluster]
domain = "cluster.local"

[[services]] # the web front
name = "web"
namespace = "shop"
ports = [{ name = "http", port = 80, target_port = 8080 }]
[[services.endpoints]]
ip = "10.64.0.1"
[[services.endpoints]]
ip = "10.64.0.2"

[dns]
ttl = 7

[[services]]
name = "db"
namespace = "shop"
cluster_ip = "None"
ports = [
  { name = "pg", port = 5432 },
]
[[services.endpoints]]
ip = "10.64.0.3"
hostname = "db-0"
"#;

    fn whole(text: &str) -> Result<Config, Problems> {
        parse("test.toml", text, Vec::new())
    }

    fn reused(previous: &ServiceBlocks, text: &str) -> Result<(Config, ServiceBlocks), Problems> {
        parse_reusing(previous, "test.toml", text, Vec::new())
    }

    #[test]
    fn cuts_at_service_headers_and_keeps_sub_tables_with_their_block() {
        let (head, blocks) = cut(DOCUMENT);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with("[[services]] # the web front\n"));
        assert_eq!(blocks[0].matches("[[services.endpoints]]").count(), 2);
        assert!(blocks[1].ends_with("hostname = \"db-0\"\n"));
        assert!(head.contains("[cluster]") && head.contains("[dns]\nttl = 7"));
        assert!(!head.contains("services"));
    }

    #[test]
    fn gives_the_config_a_whole_parse_gives_and_remembers_every_block() {
        let (config, blocks) = reused(&ServiceBlocks::default(), DOCUMENT).unwrap();
        assert_eq!(config, whole(DOCUMENT).unwrap());
        assert_eq!(config.services.len(), 2);
        assert_eq!(blocks.len(), 2);
    }

    #[test]
    fn an_unchanged_block_is_taken_from_the_last_parse_not_parsed_again() {
        let (config, blocks) = reused(&ServiceBlocks::default(), DOCUMENT).unwrap();
        // Mark what the last parse made: a reuse shows the mark, a new parse would not.
        let mut marked = ServiceBlocks::default();
        for (digest, &(start, end)) in &blocks.at {
            let mut service: Service = postcard::from_bytes(&blocks.encoded[start..end]).unwrap();
            assert!(config.services.contains(&service));
            service.namespace = "remembered".into();
            marked.keep(*digest, &postcard::to_allocvec(&service).unwrap());
        }
        let blocks = marked;
        let changed = DOCUMENT.replace("port = 5432", "port = 5433");
        let (config, next) = reused(&blocks, &changed).unwrap();
        assert_eq!(config.services[0].namespace, "remembered");
        assert_eq!(config.services[1].namespace, "shop");
        assert_eq!(config.services[1].ports[0].port, 5433);
        assert_eq!(next.len(), 2);
    }

    #[test]
    fn documents_the_cut_cannot_read_fall_back_to_a_whole_parse() {
        let documents = [
            // A multi-line string with a header line inside.
            "[[services]]\nname = \"a\"\nnamespace = \"n\"\nports = [{ port = 80 }]\n\
             [services.annotations]\nnote = \"\"\"\n[[services]]\n\"\"\"\n",
            // Services as an inline array, and as a table.
            "services = [{ name = \"a\", namespace = \"n\", ports = [{ port = 80 }] }]\n",
            "[services]\nname = \"a\"\n",
            // A sub-table before any block, a quoted name, a nested array.
            "[services.x]\na = 1\n",
            "[[\"services\"]]\nname = \"a\"\nnamespace = \"n\"\nports = [{ port = 80 }]\n",
            "[dns]\nforward = [\n[\"x\"],\n]\n",
            // Syntax and type errors in a block and in the head.
            "[[services]]\nname = \"a\"\nnamespace = \"n\"\nports = [{ port = \"x\" }]\n",
            "[[services]]\nname = \n",
            "[dns]\nttl = \"x\"\n[[services]]\nname = \"a\"\nnamespace = \"n\"\nports = []\n",
            "[node]\nname = \"a\"\n[node]\nname = \"b\"\n",
        ];
        for text in documents {
            let previous = reused(&ServiceBlocks::default(), DOCUMENT).unwrap().1;
            let got = reused(&previous, text).map(|(config, _)| config);
            assert_eq!(got, whole(text), "{text}");
        }
    }

    #[test]
    fn the_split_form_checks_sides_and_reuses_the_shared_blocks() {
        let local = (
            "node.toml",
            "[node]\nname = \"n1\"\ninternal_ip = \"10.0.0.1\"\n",
        );
        let shared = ("/dockline/config", DOCUMENT);
        let want = parse_split(local, shared, Vec::new()).unwrap();
        let (config, blocks) =
            parse_split_reusing(&ServiceBlocks::default(), local, shared, Vec::new()).unwrap();
        assert_eq!((config, blocks.len()), (want, 2));

        let misplaced = format!("[node]\nname = \"x\"\n{DOCUMENT}");
        let got = parse_split_reusing(&blocks, local, ("/dockline/config", &misplaced), []);
        let want = parse_split(local, ("/dockline/config", &misplaced), []);
        assert_eq!(got.map(|(config, _)| config), want);
        assert!(want.is_err());
    }

    #[test]
    fn every_field_of_a_service_survives_its_encoding() {
        let text = r#"[[services]]
name = "all"
namespace = "every-field"
type = "LoadBalancer"
cluster_ip = "10.96.0.9"
load_balancer_ip = "198.51.100.7"
pool = "edge"
sharing_key = "k"
external_traffic_policy = "Local"
allocate_load_balancer_node_ports = false
publish_not_ready_addresses = true
ports = [{ name = "h", port = 80, target_port = 8080, protocol = "UDP", node_port = 30080 }]
health_check = { kind = "http", path = "/ready", interval_ms = 500, timeout_ms = 200, rise = 3, fall = 4 }
load_balancing = "Maglev"
max_connections = 100
proxy_protocol = "v2"
[[services.endpoints]]
ip = "fd00::1"
node = "n1"
hostname = "h1"
ready = false
"#;
        let service = whole(text).unwrap().services.remove(0);
        let mut blocks = ServiceBlocks::default();
        blocks.keep([0; 32], &postcard::to_allocvec(&service).unwrap());
        let decoded: Service = postcard::from_bytes(blocks.encoded(&[0; 32]).unwrap()).unwrap();
        assert_eq!(decoded, service);
        let (config, _) = reused(&blocks, text).unwrap();
        assert_eq!(config.services, [service]);
    }

    #[test]
    fn environment_overrides_apply_to_the_head_as_to_the_whole() {
        let env = || vec![("DOCKLINE__DNS__TTL".to_owned(), "9".to_owned())];
        let (config, blocks) =
            parse_reusing(&ServiceBlocks::default(), "test.toml", DOCUMENT, env()).unwrap();
        assert_eq!(config, parse("test.toml", DOCUMENT, env()).unwrap());
        assert_eq!((config.dns.ttl, blocks.len()), (9, 2));

        let bad = || vec![("DOCKLINE__DNS__TTL".to_owned(), "x".to_owned())];
        let got = parse_reusing(&blocks, "test.toml", DOCUMENT, bad());
        assert_eq!(
            got.map(|(config, _)| config),
            parse("test.toml", DOCUMENT, bad())
        );
    }
}
