//! What the unit tests build their inputs from: a snapshot out of config text.

use dockline_model::{Service, Snapshot};

/// The snapshot of the config `text`; built but not validated, so a test writes only what
/// it is about.
pub(crate) fn snapshot(text: &str) -> Snapshot {
    let config = dockline_config::parse("test.toml", text, std::iter::empty()).expect("parses");
    dockline_model::build(config).expect("builds")
}

/// The service `default/web` (ClusterIP 10.222.0.10, port 80 to 8080) with `settings`, the
/// rest of its keys (endpoints included), written in the `[[services]]` table.
pub(crate) fn web(settings: &str) -> Service {
    let text = format!(
        "[[services]]\nname = \"web\"\ncluster_ip = \"10.222.0.10\"\n\
         ports = [{{ port = 80, target_port = 8080 }}]\n{settings}\n"
    );
    let mut services = snapshot(&text).services;
    services.pop().expect("the service")
}
