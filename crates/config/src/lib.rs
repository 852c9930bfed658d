//! dockline's configuration: the TOML file a user writes, loaded with the `config` crate
//! (file plus `DOCKLINE__SECTION__KEY` environment overrides), deserialized into typed structs
//! and validated. Every problem is reported with its path, all at once.
//!
//! Every key, its default and its rules are described in the commented reference
//! `config/dockline.toml`; the Configuration section of README.md shows how to use them.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod load;
mod range;
mod reuse;
mod schema;
mod validate;

use std::fmt;

pub use load::{
    EMBEDDED_DEFAULT, ENV_PREFIX, LOCAL_SECTIONS, Source, load, load_with_env, parse, parse_source,
    parse_split,
};
pub use range::AddressRange;
pub use reuse::{ServiceBlocks, parse_reusing, parse_split_reusing};
pub use schema::*;
pub use validate::{NODE_PORT_RANGE, validate};

/// One thing wrong with a configuration: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, as `services[2].ports[0].node_port`, or the file for file-level problems.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a configuration; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Each problem, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none; a `Problems` returned as an error never is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One line per problem.
impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
