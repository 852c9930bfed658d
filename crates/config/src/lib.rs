//! dockline's configuration: the TOML contract of `DESIGN.md`, loaded with the `config` crate
//! (file plus `DOCKLINE__SECTION__KEY` environment overrides), deserialized into typed structs
//! and validated. Every problem is reported with its path, all at once.

#![forbid(unsafe_code)]

mod load;
mod range;
mod schema;
mod validate;

use std::fmt;

pub use load::{EMBEDDED_DEFAULT, ENV_PREFIX, Source, load, load_with_env, parse};
pub use range::AddressRange;
pub use schema::*;
pub use validate::{NODE_PORT_RANGE, validate};

/// One thing wrong with a configuration: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, as `services[2].ports[0].node_port`, or the file for file-level problems.
    pub path: String,
    pub message: String,
}

impl Problem {
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
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

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
