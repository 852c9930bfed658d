//! Kernel settings dockline changes, recorded so that the host gets them back even after a
//! SIGKILL.
//!
//! Before it writes a setting, dockline writes a record of it (the file, the host's value,
//! dockline's value) to `/run/dockline/<owner>-<network namespace>.sysctl`. A clean stop
//! writes the host's values back and deletes the record. A daemon that was killed leaves
//! the record, and the next start in the same network namespace reads it ([`plan`]):
//!
//! - a setting it wants again and that still has dockline's value is **adopted**: the
//!   recorded host value is the one restored at the next stop (the current value is
//!   dockline's, not the host's);
//! - a setting it no longer wants (an interface left the config) that still has dockline's
//!   value is **restored** to the recorded host value at once;
//! - a setting someone changed since is left as it is and its record dropped (the host's
//!   value is what is there now).
//!
//! Each outcome is logged with the file.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Where the records live: a tmpfs emptied at boot, when the kernel's values are reset too.
pub const RECORD_DIR: &str = "/run/dockline";

/// One recorded setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file under /proc/sys.
    pub path: PathBuf,
    /// The host's value before dockline changed it.
    pub original: String,
    /// The value dockline wrote.
    pub value: String,
}

/// What happened to a recorded setting at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Wanted again with dockline's value still in place: the recorded host value is kept.
    Adopted,
    /// No longer wanted: the recorded host value is written back now.
    Restored,
    /// Changed by someone since: left as it is, the record dropped.
    Superseded,
}

/// What a start does, from the record left behind and the values now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Host values to write back at once.
    pub restore_now: Vec<(PathBuf, String)>,
    /// The record to write before any setting is changed.
    pub record: Vec<Entry>,
    /// Settings to write, in order.
    pub write: Vec<(PathBuf, String)>,
    /// What became of each recorded setting.
    pub outcomes: Vec<(PathBuf, Outcome)>,
}

/// The plan for setting `wanted`, given the `record` an earlier run left (empty if none)
/// and the `current` values of every path in either (a path missing from `current` could
/// not be read).
pub fn plan(
    record: &[Entry],
    wanted: &[(PathBuf, String)],
    current: &BTreeMap<PathBuf, String>,
) -> Plan {
    let mut plan = Plan::default();
    for entry in record {
        let unchanged = current.get(&entry.path) == Some(&entry.value);
        let wanted_again = wanted
            .iter()
            .any(|(path, value)| *path == entry.path && *value == entry.value);
        let outcome = match (unchanged, wanted_again) {
            (true, true) => {
                plan.record.push(entry.clone());
                Outcome::Adopted
            }
            (true, false) => {
                plan.restore_now
                    .push((entry.path.clone(), entry.original.clone()));
                Outcome::Restored
            }
            (false, _) => Outcome::Superseded,
        };
        plan.outcomes.push((entry.path.clone(), outcome));
    }
    for (path, value) in wanted {
        if plan.record.iter().any(|e| e.path == *path) {
            continue;
        }
        match current.get(path) {
            Some(now) if now == value => {}
            Some(now) => {
                plan.record.push(Entry {
                    path: path.clone(),
                    original: now.clone(),
                    value: value.clone(),
                });
                plan.write.push((path.clone(), value.clone()));
            }
            None => plan.write.push((path.clone(), value.clone())),
        }
    }
    plan
}

/// The record's text: one `path original value` line per entry.
fn render(record: &[Entry]) -> String {
    record
        .iter()
        .map(|e| format!("{} {} {}\n", e.path.display(), e.original, e.value))
        .collect()
}

/// The entries of a record's text; lines that do not parse are skipped.
pub fn parse_record(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let entry = Entry {
                path: PathBuf::from(fields.next()?),
                original: fields.next()?.to_owned(),
                value: fields.next()?.to_owned(),
            };
            fields.next().is_none().then_some(entry)
        })
        .collect()
}

/// Settings dockline holds; the host's values come back on drop.
#[derive(Debug)]
pub struct Sysctls {
    record_path: PathBuf,
    record: Vec<Entry>,
}

/// A setting that could not be read or written.
pub type SysctlError = (PathBuf, io::Error);

impl Sysctls {
    /// Sets `wanted` (file under /proc/sys, value) for `owner` ("routes", "l2"), after
    /// dealing with a record an earlier run of `owner` left. On error, what this call
    /// changed is undone.
    pub fn apply(owner: &str, wanted: &[(PathBuf, String)]) -> Result<Self, SysctlError> {
        Self::apply_in(Path::new(RECORD_DIR), owner, wanted)
    }

    fn apply_in(
        dir: &Path,
        owner: &str,
        wanted: &[(PathBuf, String)],
    ) -> Result<Self, SysctlError> {
        let record_path = dir.join(format!("{owner}-{}.sysctl", network_namespace()));
        let left = std::fs::read_to_string(&record_path)
            .map(|text| parse_record(&text))
            .unwrap_or_default();
        let mut current = BTreeMap::new();
        for path in left
            .iter()
            .map(|e| &e.path)
            .chain(wanted.iter().map(|w| &w.0))
        {
            match std::fs::read_to_string(path) {
                Ok(value) => {
                    current.insert(path.clone(), value.trim().to_owned());
                }
                // A wanted setting that cannot be read cannot be restored either.
                Err(error) if wanted.iter().any(|w| w.0 == *path) => {
                    return Err((path.clone(), error));
                }
                Err(_) => {}
            }
        }
        let plan = plan(&left, wanted, &current);
        for (path, outcome) in &plan.outcomes {
            let path = path.display();
            match outcome {
                Outcome::Adopted => tracing::info!(
                    %path, record = %record_path.display(),
                    "sysctl: adopted the host value recorded by a run that did not stop cleanly; \
                     it is restored at stop"
                ),
                Outcome::Restored => tracing::info!(
                    %path, record = %record_path.display(),
                    "sysctl: restored the host value recorded by a run that did not stop cleanly"
                ),
                Outcome::Superseded => tracing::info!(
                    %path, record = %record_path.display(),
                    "sysctl: changed since a run that did not stop cleanly; left as it is"
                ),
            }
        }
        for (path, value) in &plan.restore_now {
            if let Err(error) = std::fs::write(path, value) {
                tracing::warn!(path = %path.display(), %error, "sysctl: cannot restore");
            }
        }
        let held = Sysctls {
            record_path,
            record: plan.record,
        };
        held.save()?;
        for (path, value) in &plan.write {
            std::fs::write(path, value).map_err(|error| (path.clone(), error))?;
        }
        Ok(held)
    }

    /// Writes the record, or removes it when nothing is held.
    fn save(&self) -> Result<(), SysctlError> {
        let fail = |error| (self.record_path.clone(), error);
        if self.record.is_empty() {
            return match std::fs::remove_file(&self.record_path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => Err(fail(error)),
                _ => Ok(()),
            };
        }
        if let Some(dir) = self.record_path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        // Written whole, then renamed: a kill mid-write leaves the old record or the new.
        let partial = self.record_path.with_extension("partial");
        std::fs::write(&partial, render(&self.record)).map_err(fail)?;
        std::fs::rename(&partial, &self.record_path).map_err(fail)
    }

    /// Writes back the host's values and removes the record.
    fn restore(&mut self) {
        for entry in self.record.iter().rev() {
            if let Err(error) = std::fs::write(&entry.path, &entry.original) {
                tracing::warn!(path = %entry.path.display(), %error, "sysctl: cannot restore");
            }
        }
        self.record.clear();
        if let Err((path, error)) = self.save() {
            tracing::warn!(path = %path.display(), %error, "sysctl: record left behind");
        }
    }
}

/// Restored however the owner ends: stopped, failed or aborted after the grace period.
impl Drop for Sysctls {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The inode of this process's network namespace: each namespace has its own settings, so
/// its own record.
/// The records of every owner in this network namespace that a run left behind (a clean
/// stop removes its record): each file with its text.
pub fn records_left() -> Vec<(PathBuf, String)> {
    let suffix = format!("-{}.sysctl", network_namespace());
    let Ok(files) = std::fs::read_dir(RECORD_DIR) else {
        return Vec::new();
    };
    let mut records: Vec<(PathBuf, String)> = files
        .filter_map(Result::ok)
        .map(|file| file.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with(&suffix))
        })
        .filter_map(|path| Some((path.clone(), std::fs::read_to_string(&path).ok()?)))
        .collect();
    records.sort();
    records
}

fn network_namespace() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|link| {
            let text = link.to_string_lossy().into_owned();
            let inode = text.strip_prefix("net:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .unwrap_or_else(|| "net".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/sys/net/ipv4/conf/{name}"))
    }

    fn entry(name: &str, original: &str, value: &str) -> Entry {
        Entry {
            path: path(name),
            original: original.into(),
            value: value.into(),
        }
    }

    fn values(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        list.iter().map(|(n, v)| (path(n), (*v).into())).collect()
    }

    fn wanted(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter().map(|(n, v)| (path(n), (*v).into())).collect()
    }

    #[test]
    fn a_first_start_records_the_host_values_it_changes_and_only_those() {
        let plan = plan(
            &[],
            &wanted(&[("all/arp_ignore", "1"), ("all/arp_announce", "2")]),
            &values(&[("all/arp_ignore", "0"), ("all/arp_announce", "2")]),
        );
        assert_eq!(plan.record, [entry("all/arp_ignore", "0", "1")]);
        assert_eq!(plan.write, wanted(&[("all/arp_ignore", "1")]));
        assert!(plan.restore_now.is_empty() && plan.outcomes.is_empty());
    }

    #[test]
    fn after_a_kill_a_setting_still_at_our_value_is_adopted_with_the_recorded_host_value() {
        let left = [entry("all/arp_ignore", "0", "1")];
        let plan = plan(
            &left,
            &wanted(&[("all/arp_ignore", "1")]),
            &values(&[("all/arp_ignore", "1")]),
        );
        assert_eq!(plan.record, left, "the host's 0 is restored at stop, not 1");
        assert!(plan.write.is_empty());
        assert_eq!(plan.outcomes, [(path("all/arp_ignore"), Outcome::Adopted)]);
    }

    #[test]
    fn after_a_kill_a_setting_no_longer_wanted_is_restored_at_once() {
        let left = [
            entry("eth1/arp_ignore", "0", "1"),
            entry("eth0/arp_ignore", "0", "1"),
        ];
        let plan = plan(
            &left,
            &wanted(&[("eth0/arp_ignore", "1")]),
            &values(&[("eth1/arp_ignore", "1"), ("eth0/arp_ignore", "1")]),
        );
        assert_eq!(plan.restore_now, wanted(&[("eth1/arp_ignore", "0")]));
        assert_eq!(plan.record, [entry("eth0/arp_ignore", "0", "1")]);
        assert_eq!(
            plan.outcomes,
            [
                (path("eth1/arp_ignore"), Outcome::Restored),
                (path("eth0/arp_ignore"), Outcome::Adopted)
            ]
        );
    }

    #[test]
    fn after_a_kill_a_setting_someone_changed_is_left_and_its_value_taken_as_the_host_value() {
        let left = [entry("all/arp_ignore", "0", "1")];
        let plan = plan(
            &left,
            &wanted(&[("all/arp_ignore", "1")]),
            &values(&[("all/arp_ignore", "2")]),
        );
        assert_eq!(
            plan.outcomes,
            [(path("all/arp_ignore"), Outcome::Superseded)]
        );
        assert_eq!(plan.record, [entry("all/arp_ignore", "2", "1")]);
        assert_eq!(plan.write, wanted(&[("all/arp_ignore", "1")]));
        assert!(plan.restore_now.is_empty());
    }

    #[test]
    fn records_read_back_as_written_and_bad_lines_are_skipped() {
        let record = vec![
            entry("all/arp_ignore", "0", "1"),
            entry("eth0/arp_announce", "1", "2"),
        ];
        assert_eq!(parse_record(&render(&record)), record);
        assert_eq!(parse_record("garbage\n/a 1\n/b 1 2 3\n"), []);
    }

    #[test]
    fn held_settings_are_recorded_and_given_back_with_the_record_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("dockline-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A plain file stands in for a sysctl.
        let setting = dir.join("arp_ignore");
        std::fs::write(&setting, "0\n").unwrap();
        let held = Sysctls::apply_in(&dir, "test", &[(setting.clone(), "1".to_owned())]).unwrap();
        assert_eq!(std::fs::read_to_string(&setting).unwrap(), "1");
        let record = std::fs::read_to_string(&held.record_path).unwrap();
        assert_eq!(
            parse_record(&record),
            [Entry {
                path: setting.clone(),
                original: "0".into(),
                value: "1".into()
            }]
        );
        let record_path = held.record_path.clone();

        // A second start as after a SIGKILL (the first never dropped) adopts the record.
        std::mem::forget(held);
        let again = Sysctls::apply_in(&dir, "test", &[(setting.clone(), "1".to_owned())]).unwrap();
        drop(again);
        assert_eq!(std::fs::read_to_string(&setting).unwrap(), "0");
        assert!(!record_path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
