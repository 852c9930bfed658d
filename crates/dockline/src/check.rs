//! `dockline check FILE`: the same steps a start or a reload takes, one line per problem.

use std::path::Path;
use std::process::ExitCode;

use dockline_config::Source;

use crate::reload::load_snapshot;

pub fn check(file: &Path) -> ExitCode {
    let source = Source::File(file.to_owned());
    match load_snapshot(&source) {
        Ok((_, snapshot, _)) => {
            println!(
                "{}: ok ({} services, {} LoadBalancer IPs)",
                source.name(),
                snapshot.services.len(),
                snapshot.vips.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems.iter() {
                println!("{problem}");
            }
            eprintln!("{}: {} problem(s)", source.name(), problems.len());
            ExitCode::FAILURE
        }
    }
}
