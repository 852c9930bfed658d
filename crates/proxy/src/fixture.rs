//! What the unit tests build their inputs from: a service out of config text.

use dockline_model::Service;

/// The service `default/web` (ClusterIP 10.222.0.10, port 80 to 8080) with `settings`, the
/// rest of its keys (endpoints included), written in the `[[services]]` table.
pub(crate) fn web(settings: &str) -> Service {
    let text = format!(
        "[[services]]\nname = \"web\"\ncluster_ip = \"10.222.0.10\"\n\
         ports = [{{ port = 80, target_port = 8080 }}]\n{settings}\n"
    );
    let mut services = dockline_model::testing::snapshot(&text).services;
    services.pop().expect("the service")
}
