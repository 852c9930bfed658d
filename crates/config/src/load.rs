//! Reading a configuration: the file (or the embedded default), `DOCKLINE__` environment
//! overrides merged over it by the `config` crate, then typed deserialization that keeps
//! going after a bad section so one run reports as many problems as it can.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Value, ValueKind};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::{Config, ConfigSource, Problem, Problems, SourceKind, validate};

/// Environment variables `DOCKLINE__SECTION__KEY=value` override the file.
pub const ENV_PREFIX: &str = "DOCKLINE";

/// The configuration `dockline run` uses without `--config`: a lone node, safe on a laptop.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/default.toml");

/// Environment keys that hold lists, written comma-separated.
const LIST_KEYS: &[&str] = &[
    "dns.listen",
    "dns.forward",
    "l2.interfaces",
    "cluster.gossip.seeds",
];

const SECTIONS: &[&str] = &[
    "node", "cluster", "network", "admin", "dns", "proxy", "l2", "bgp", "pools", "services",
    "source",
];

/// Where a configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in [`EMBEDDED_DEFAULT`].
    Embedded,
    /// A TOML file on disk.
    File(PathBuf),
}

impl Source {
    /// How problems name the source.
    pub fn name(&self) -> String {
        match self {
            Source::Embedded => "<embedded default>".into(),
            Source::File(path) => path.display().to_string(),
        }
    }

    /// The file's path; `None` for the embedded default.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Embedded => None,
            Source::File(path) => Some(path),
        }
    }

    /// The raw text of the source.
    pub fn read(&self) -> Result<String, Problems> {
        let path = match self {
            Source::Embedded => return Ok(EMBEDDED_DEFAULT.to_owned()),
            Source::File(path) => path,
        };
        let name = self.name();
        let bytes =
            std::fs::read(path).map_err(|e| one(&name, format!("cannot read the file: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| one(&name, format!("the file is not UTF-8 text: {e}")))?;
        if text.trim().is_empty() {
            return Err(one(
                &name,
                "the file is empty; run without --config for the built-in default",
            ));
        }
        Ok(text)
    }
}

/// Reads, parses and validates `source`, with overrides from the process environment.
pub fn load(source: &Source) -> Result<Config, Problems> {
    load_with_env(source, std::env::vars())
}

/// Reads, parses and validates `source` with the given environment.
pub fn load_with_env(
    source: &Source,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Problems> {
    let text = source.read()?;
    let config = parse(&source.name(), &text, env)?;
    validate(&config)?;
    Ok(config)
}

/// The sections a node's local file holds when `source.kind = "etcd"`; the shared document
/// holds every other one.
pub const LOCAL_SECTIONS: &[&str] = &["node", "source"];

/// Parses TOML text plus environment overrides into a typed [`Config`] (not yet validated).
///
/// The file alone is deserialized first, strictly (a string is not a number, a boolean is
/// not a port); then the merge with the environment, where every value is text and the
/// `config` crate converts it.
pub fn parse(
    name: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Problems> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    if !has_overrides(&env) {
        return from_tree(owned_keys(de_table(name, text)?));
    }
    let file = toml_table(name, text)?;
    parse_table(name, file, |_| Ok(text.to_owned()), env)
}

/// Whether the environment overrides any key.
fn has_overrides(env: &[(String, String)]) -> bool {
    let prefix = format!("{ENV_PREFIX}__");
    env.iter().any(|(var, _)| var.starts_with(&prefix))
}

/// The document's sections, keyed by name.
pub(crate) fn owned_keys(
    table: DeTable<'_>,
) -> impl Iterator<Item = (String, Spanned<DeValue<'_>>)> {
    table
        .into_iter()
        .map(|(key, value)| (key.into_inner().into_owned(), value))
}

/// Parses a node's local file (`[node]` and `[source]`) and the shared document (every
/// other section) into one [`Config`] (not yet validated), with environment overrides as
/// [`parse`] applies them. A section on the wrong side is a problem at its name.
pub fn parse_split(
    local: (&str, &str),
    shared: (&str, &str),
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Problems> {
    let (local_name, local_text) = local;
    let (shared_name, shared_text) = shared;
    let env: Vec<(String, String)> = env.into_iter().collect();
    if !has_overrides(&env) {
        // Straight from the parsed documents to the typed config: no value tree between.
        let local: Vec<_> = owned_keys(de_table(local_name, local_text)?).collect();
        let shared: Vec<_> = owned_keys(de_table(shared_name, shared_text)?).collect();
        let keys: Vec<&str> = shared.iter().map(|(key, _)| key.as_str()).collect();
        split_problems(&keys, &local, (local_name, shared_name))?;
        return from_tree(shared.into_iter().chain(local));
    }
    let local = toml_table(local_name, local_text)?;
    let mut merged = toml_table(shared_name, shared_text)?;
    let keys: Vec<&str> = merged.keys().map(String::as_str).collect();
    let local: Vec<(String, toml::Value)> = local.into_iter().collect();
    split_problems(&keys, &local, (local_name, shared_name))?;
    merged.extend(local);
    let text_of = |table: &toml::Table| {
        toml::to_string(table).map_err(|e| one(shared_name, format!("cannot merge: {e}")))
    };
    parse_table(shared_name, merged, text_of, env)
}

/// A section on the wrong side of a split: a local one in the shared document, or a shared
/// one in the local file.
fn split_problems<V>(
    shared_keys: &[&str],
    local: &[(String, V)],
    (local_name, shared_name): (&str, &str),
) -> Result<(), Problems> {
    let mut problems = Vec::new();
    for key in shared_keys.iter().filter(|k| LOCAL_SECTIONS.contains(k)) {
        problems.push(Problem::new(
            *key,
            format!("belongs in each node's local file, not in the shared document {shared_name}"),
        ));
    }
    for (key, _) in local {
        if !LOCAL_SECTIONS.contains(&key.as_str()) {
            problems.push(Problem::new(
                key,
                format!(
                    "with source.kind = \"etcd\" this section comes from the shared document; \
                     move it there (the local file {local_name} holds only {})",
                    LOCAL_SECTIONS.join(" and ")
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

/// The `[source]` of a file (with its `DOCKLINE__SOURCE__` overrides), without the rest of
/// it: what a start needs to know before it reads the shared sections. An etcd source is
/// checked here; a file source is checked with the whole file.
pub fn parse_source(
    name: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ConfigSource, Problems> {
    let mut file = toml_table(name, text)?;
    file.retain(|key, _| key == "source");
    let text_of =
        |table: &toml::Table| toml::to_string(table).map_err(|e| one(name, e.to_string()));
    let source_env = format!("{ENV_PREFIX}__SOURCE__");
    let env = env
        .into_iter()
        .filter(|(var, _)| var.starts_with(&source_env));
    let config = parse_table(name, file, text_of, env)?;
    // A file source is checked with the rest of the file, so every problem shows at once.
    if config.source.kind == SourceKind::Etcd {
        validate::validate_source(&config)?;
    }
    Ok(config.source)
}

/// The parsed document as a value tree, for the merge with environment overrides.
fn toml_table(name: &str, text: &str) -> Result<toml::Table, Problems> {
    text.parse::<toml::Table>()
        .map_err(|e| syntax_problem(name, text, &e))
}

/// The parsed document as toml's own borrowed tree, which typed sections deserialize from
/// directly (half the work of a value tree with 10,000 services).
fn de_table<'i>(name: &str, text: &'i str) -> Result<DeTable<'i>, Problems> {
    DeTable::parse(text)
        .map(Spanned::into_inner)
        .map_err(|e| syntax_problem(name, text, &e))
}

/// One `file:line:column: message` problem for a TOML syntax error instead of toml's
/// multi-line snippet.
fn syntax_problem(name: &str, text: &str, error: &toml::de::Error) -> Problems {
    let at = error
        .span()
        .map(|span| line_column(text, span.start))
        .map(|(line, col)| format!("{name}:{line}:{col}"))
        .unwrap_or_else(|| name.to_owned());
    one(at, format!("invalid TOML: {}", error.message().trim()))
}

/// Typed sections from a parsed `file`; `text_of` gives its TOML text, which the
/// environment merge needs (asked for only when there are overrides).
fn parse_table(
    name: &str,
    file: toml::Table,
    text_of: impl FnOnce(&toml::Table) -> Result<String, Problems>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Problems> {
    // Values stay text (no `try_parsing`): guessing a type first would turn a name such as
    // "007" or "1e5" into a number and round a TTL of "5.5" instead of rejecting it. The
    // list keys are split here, as the `config` crate only splits when it guesses types.
    let env_prefix = format!("{ENV_PREFIX}__");
    let mut scalars: HashMap<String, String> = HashMap::new();
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(&env_prefix) else {
            continue;
        };
        let key = rest.to_lowercase().replace("__", ".");
        if LIST_KEYS.contains(&key.as_str()) {
            let items = match value.trim() {
                "" => Vec::new(),
                v => v.split(',').map(|item| item.trim().to_owned()).collect(),
            };
            lists.push((key, items));
        } else {
            scalars.insert(var, value);
        }
    }
    // Without overrides the strict result is the answer; skipping the merge halves the work
    // (and the garbage) of a reload.
    if scalars.is_empty() && lists.is_empty() {
        return from_tree(file);
    }
    let text = text_of(&file)?;
    // The file's own type errors are reported as the strict pass finds them.
    from_tree(file)?;
    let environment = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .source(Some(scalars.into_iter().collect()));
    let mut builder = config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .add_source(environment);
    for (key, items) in lists {
        builder = builder
            .set_override(key, items)
            .map_err(|e| one(name, e.to_string()))?;
    }
    let merged = builder
        .build()
        .and_then(|c| c.try_deserialize::<config::Map<String, Value>>())
        .map_err(|e| one(name, e.to_string()))?;
    from_tree(merged)
}

/// A parsed value tree that typed sections are deserialized from: the TOML file alone, or
/// the `config` crate's merge of file and environment.
pub(crate) trait Tree: Sized {
    /// The typed value, or the path inside `self` and the reason it failed.
    fn into_typed<T: DeserializeOwned>(self) -> Result<T, (String, String)>;
    /// The elements if `self` is an array.
    fn into_items(self) -> Option<Vec<Self>>;
}

impl Tree for toml::Value {
    fn into_typed<T: DeserializeOwned>(self) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(self)
            .map_err(|e| (e.path().to_string(), e.inner().message().trim().to_owned()))
    }
    fn into_items(self) -> Option<Vec<Self>> {
        match self {
            toml::Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

impl Tree for Spanned<DeValue<'_>> {
    fn into_typed<T: DeserializeOwned>(self) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(ValueDeserializer::from(self))
            .map_err(|e| (e.path().to_string(), e.inner().message().trim().to_owned()))
    }
    fn into_items(self) -> Option<Vec<Self>> {
        match self.into_inner() {
            DeValue::Array(items) => Some(items.into_iter().collect()),
            _ => None,
        }
    }
}

impl Tree for Value {
    fn into_typed<T: DeserializeOwned>(self) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(self)
            .map_err(|e| (e.path().to_string(), clean_message(&e.inner().to_string())))
    }
    fn into_items(self) -> Option<Vec<Self>> {
        match self.kind {
            ValueKind::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Deserializes each section, and each element of the arrays of tables, on its own, so a
/// problem in one does not hide the problems in the others.
fn from_tree<V: Tree>(root: impl IntoIterator<Item = (String, V)>) -> Result<Config, Problems> {
    let mut config = Config::default();
    let mut problems = Vec::new();
    let mut root: Vec<_> = root.into_iter().collect();
    root.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in root {
        let p = &mut problems;
        match key.as_str() {
            "node" => section(&key, value, &mut config.node, p),
            "source" => section(&key, value, &mut config.source, p),
            "cluster" => section(&key, value, &mut config.cluster, p),
            "network" => section(&key, value, &mut config.network, p),
            "admin" => section(&key, value, &mut config.admin, p),
            "dns" => section(&key, value, &mut config.dns, p),
            "proxy" => section(&key, value, &mut config.proxy, p),
            "l2" => section(&key, value, &mut config.l2, p),
            "bgp" => section(&key, value, &mut config.bgp, p),
            "pools" => list(&key, value, &mut config.pools, p),
            "services" => list(&key, value, &mut config.services, p),
            _ => p.push(Problem::new(
                key,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            )),
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(Problems(problems))
    }
}

fn section<V: Tree, T: DeserializeOwned>(
    path: &str,
    value: V,
    slot: &mut T,
    problems: &mut Vec<Problem>,
) {
    match value.into_typed() {
        Ok(v) => *slot = v,
        Err((inner, message)) => problems.push(Problem::new(join(path, &inner), message)),
    }
}

fn list<V: Tree, T: DeserializeOwned>(
    path: &str,
    value: V,
    slot: &mut Vec<T>,
    problems: &mut Vec<Problem>,
) {
    let Some(items) = value.into_items() else {
        problems.push(Problem::new(
            path,
            format!("expected an array of tables, written [[{path}]]"),
        ));
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        match item.into_typed() {
            Ok(v) => slot.push(v),
            Err((inner, message)) => {
                problems.push(Problem::new(join(&format!("{path}[{i}]"), &inner), message))
            }
        }
    }
}

fn join(outer: &str, inner: &str) -> String {
    match inner {
        "" | "." => outer.to_owned(),
        _ if inner.starts_with('[') => format!("{outer}{inner}"),
        _ => format!("{outer}.{inner}"),
    }
}

/// The `config` crate appends where a value came from; our path already says it.
fn clean_message(message: &str) -> String {
    let message = message.split(" for key `").next().unwrap_or(message);
    message.trim().to_owned()
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn one(path: impl Into<String>, message: impl Into<String>) -> Problems {
    Problems(vec![Problem::new(path, message)])
}
