//! One read of a Prometheus `/metrics` page, parsed into samples, and the two ways the
//! scenario tests ask it for a number: the one series that matches, or the sum of all that
//! match.
//!
//! A series matches `(name, labels)` when its name is exactly `name` and its labels include
//! every given pair; labels not given may have any value. So `("dockline_members",
//! [("state", "alive")])` matches `dockline_members{state="alive"}` only, and
//! `("dockline_l2_gratuitous_sent_total", [])` matches that counter for every VIP.

use std::collections::BTreeMap;

/// One line of the exposition format: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with any `_bucket`, `_sum` or `_count` suffix.
    pub name: String,
    /// Label names and their unescaped values.
    pub labels: BTreeMap<String, String>,
    /// The sample's value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// Whether the name is exactly `name` and the labels include every pair of `labels`.
    pub fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && self.has_labels(labels)
    }

    /// Whether the labels include every pair of `labels`, whatever the name.
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(key, value)| self.labels.get(*key).is_some_and(|v| v == value))
    }
}

/// The samples of one `/metrics` page, with the page's text.
#[derive(Debug, Clone)]
pub struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text format (version 0.0.4). Comment and blank lines are skipped.
    ///
    /// Panics on a line that is not a sample, naming it: the exporter writing one is a
    /// bug the scenario test should report, not step over.
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                parse_sample(line)
                    .unwrap_or_else(|why| panic!("not a Prometheus sample ({why}): {line:?}"))
            })
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of the one series that matches `name` and `labels` (see the module
    /// documentation); `None` when none does.
    ///
    /// Panics when several match: the caller meant one series, and which one it got would
    /// depend on the exporter's order. Use [`sum`](Self::sum) to add them up.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.samples.iter().filter(|s| s.matches(name, labels));
        let first = found.next()?;
        if let Some(second) = found.next() {
            panic!(
                "several series match {name} {labels:?}, e.g. {:?} and {:?}; name more labels \
                 or use the sum",
                first.labels, second.labels
            );
        }
        Some(first.value)
    }

    /// The sum of the values of every series that matches `name` and `labels`; 0 when
    /// none does.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.matches(name, labels))
            .map(|s| s.value)
            .sum()
    }

    /// Every sample, in the page's order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The page as the daemon sent it, for `# HELP` lines and for failure messages.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Parses `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = parse_labels(inside, &mut labels)?;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = value
        .parse::<f64>()
        .map_err(|_| "the value is not a number")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `key="value",...}` into `labels`; returns what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, &'static str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (key, after_key) = rest.split_once('=').ok_or("a label without a value")?;
        let mut chars = after_key
            .strip_prefix('"')
            .ok_or("a label value without quotes")?
            .char_indices();
        // Label values escape backslash, double quote and newline.
        let mut value = String::new();
        let close = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (at, '"') => break at,
                (_, '\\') => match chars.next().ok_or("an unterminated label value")?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = &after_key[1 + close + 1..];
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"
# HELP dockline_members Cluster members by SWIM state
# TYPE dockline_members gauge
dockline_members{state="alive"} 2
dockline_members{state="down"} 1
dockline_l2_gratuitous_sent_total{ip="192.0.2.10"} 3
dockline_l2_gratuitous_sent_total{ip="2001:db8:1::a"} 4
dockline_proxy_connect_errors_total 0
dockline_proxy_connections_total{service="default/web",port="80"} 7
dockline_dns_query_duration_seconds_bucket{le="+Inf"} 12
dockline_dns_query_duration_seconds_count 12
odd{path="a\"b\\c\nd",empty=""} 1.5e3 1700000000000
"#;

    #[test]
    fn value_is_the_one_series_whose_labels_include_the_given_pairs() {
        let scrape = Scrape::parse(PAGE);
        assert_eq!(
            scrape.value("dockline_members", &[("state", "alive")]),
            Some(2.0)
        );
        assert_eq!(
            scrape.value("dockline_proxy_connections_total", &[("port", "80")]),
            Some(7.0),
            "a subset of the labels is enough"
        );
        assert_eq!(
            scrape.value("dockline_proxy_connect_errors_total", &[]),
            Some(0.0)
        );
        assert_eq!(
            scrape.value("dockline_members", &[("state", "suspect")]),
            None
        );
        assert_eq!(
            scrape.value("dockline_proxy_connect_errors", &[]),
            None,
            "the name is exact, not a prefix"
        );
        assert_eq!(
            scrape.value(
                "dockline_dns_query_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(12.0)
        );
    }

    #[test]
    #[should_panic(expected = "several series match dockline_members")]
    fn value_refuses_to_pick_one_of_several_series() {
        Scrape::parse(PAGE).value("dockline_members", &[]);
    }

    #[test]
    fn sum_adds_every_matching_series() {
        let scrape = Scrape::parse(PAGE);
        assert_eq!(scrape.sum("dockline_l2_gratuitous_sent_total", &[]), 7.0);
        assert_eq!(
            scrape.sum("dockline_l2_gratuitous_sent_total", &[("ip", "192.0.2.10")]),
            3.0
        );
        assert_eq!(scrape.sum("dockline_nothing_total", &[]), 0.0);
    }

    #[test]
    fn label_values_are_unescaped_and_timestamps_ignored() {
        let scrape = Scrape::parse(PAGE);
        let odd = scrape.samples().last().expect("samples");
        assert_eq!(odd.name, "odd");
        assert_eq!(odd.labels["path"], "a\"b\\c\nd");
        assert_eq!(odd.labels["empty"], "");
        assert_eq!(odd.value, 1500.0);
        assert!(scrape.text().contains("# HELP dockline_members"));
    }

    #[test]
    fn infinities_and_nan_are_values() {
        let scrape = Scrape::parse("a +Inf\nb -Inf\nc NaN\n");
        assert_eq!(scrape.value("a", &[]), Some(f64::INFINITY));
        assert_eq!(scrape.value("b", &[]), Some(f64::NEG_INFINITY));
        assert!(scrape.value("c", &[]).is_some_and(f64::is_nan));
    }

    #[test]
    #[should_panic(expected = "not a Prometheus sample (an unterminated label value)")]
    fn a_broken_line_is_reported() {
        Scrape::parse("a{b=\"c} 1\n");
    }
}
