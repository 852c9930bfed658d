//! `[source]`: with `kind = "etcd"` the endpoints, the prefix and the credential files must
//! describe one reachable document; with `kind = "file"` the etcd keys have no meaning.

use super::Collector;
use crate::schema::{Config, ConfigSource, SourceKind};

pub(super) fn check_source(config: &Config, problems: &mut Collector) {
    let source = &config.source;
    match source.kind {
        SourceKind::File => check_file_source(source, problems),
        SourceKind::Etcd => check_etcd_source(source, problems),
    }
}

fn check_file_source(source: &ConfigSource, problems: &mut Collector) {
    let defaults = ConfigSource::default();
    let etcd_keys = [
        ("endpoints", !source.endpoints.is_empty()),
        ("prefix", source.prefix != defaults.prefix),
        ("ca_file", source.ca_file.is_some()),
        ("cert_file", source.cert_file.is_some()),
        ("key_file", source.key_file.is_some()),
        ("username", source.username.is_some()),
        ("password_file", source.password_file.is_some()),
        ("cache_dir", source.cache_dir != defaults.cache_dir),
    ];
    for (key, set) in etcd_keys {
        if set {
            problems.add(
                format!("source.{key}"),
                "only used with kind = \"etcd\"; set source.kind = \"etcd\" or remove it",
            );
        }
    }
}

fn check_etcd_source(source: &ConfigSource, problems: &mut Collector) {
    if source.endpoints.is_empty() {
        problems.add(
            "source.endpoints",
            "required with kind = \"etcd\": the etcd client URLs, as [\"http://10.0.0.1:2379\"]",
        );
    }
    let tls = source.ca_file.is_some() || source.cert_file.is_some();
    for (i, endpoint) in source.endpoints.iter().enumerate() {
        let path = format!("source.endpoints[{i}]");
        let Some((scheme, rest)) = endpoint.split_once("://") else {
            problems.add(
                path,
                format!("{endpoint:?} is not a URL; write http://HOST:PORT"),
            );
            continue;
        };
        match scheme {
            "http" if tls => problems.add(
                path,
                "is http:// while ca_file or cert_file asks for TLS; write https://",
            ),
            "http" | "https" => {}
            _ => problems.add(path, format!("scheme {scheme:?} is not http or https")),
        }
        if rest.is_empty() || rest.contains('/') {
            problems.add(
                format!("source.endpoints[{i}]"),
                format!("{endpoint:?} must be SCHEME://HOST:PORT with no path"),
            );
        }
    }
    if !source.prefix.starts_with('/') || source.prefix.ends_with('/') {
        problems.add(
            "source.prefix",
            format!(
                "{:?} must start with / and not end with one, as \"/dockline\"",
                source.prefix
            ),
        );
    }
    // Keys set together or not at all: the missing one is the problem.
    let pairs = [
        (
            ("cert_file", source.cert_file.is_some()),
            ("key_file", source.key_file.is_some()),
            "cert_file and key_file go together (TLS client authentication)",
        ),
        (
            ("username", source.username.is_some()),
            ("password_file", source.password_file.is_some()),
            "username and password_file go together; the password is read from the file",
        ),
    ];
    for (first, second, message) in pairs {
        match (first, second) {
            ((_, true), (missing, false)) | ((missing, false), (_, true)) => {
                problems.add(format!("source.{missing}"), message)
            }
            _ => {}
        }
    }
    if source.cache_dir.as_os_str().is_empty() {
        problems.add("source.cache_dir", "must not be empty");
    }
}
