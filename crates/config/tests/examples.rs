//! The shipped configuration files are valid: the commented reference and every example.

use std::path::{Path, PathBuf};

use dockline_config::{Source, load_with_env};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn assert_valid(path: &Path) {
    if let Err(problems) = load_with_env(&Source::File(path.to_owned()), std::iter::empty()) {
        panic!("{} is not valid:\n{problems}", path.display());
    }
}

#[test]
fn reference_configuration_is_valid() {
    assert_valid(&config_dir().join("dockline.toml"));
}

#[test]
fn reference_configuration_uses_every_service_type() {
    let path = config_dir().join("dockline.toml");
    let config = load_with_env(&Source::File(path), std::iter::empty()).expect("valid");
    use dockline_config::{ClusterIp, ServiceType};
    let has = |kind: ServiceType| config.services.iter().any(|s| s.kind == kind);
    assert!(has(ServiceType::ClusterIP));
    assert!(has(ServiceType::NodePort));
    assert!(has(ServiceType::LoadBalancer));
    assert!(has(ServiceType::ExternalName));
    assert!(
        config
            .services
            .iter()
            .any(|s| s.cluster_ip == Some(ClusterIp::Headless)
                && s.endpoints.iter().any(|e| e.hostname.is_some()))
    );
    assert!(
        config
            .services
            .iter()
            .any(|s| s.kind == ServiceType::LoadBalancer && s.load_balancer_ip.is_some())
    );
    assert!(
        config
            .services
            .iter()
            .any(|s| s.kind == ServiceType::LoadBalancer && s.load_balancer_ip.is_none())
    );
    let shared = config
        .services
        .iter()
        .filter(|s| s.sharing_key.is_some())
        .count();
    assert!(shared >= 2, "two services share an address");
}

#[test]
fn every_example_is_valid() {
    let dir = config_dir().join("examples");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    examples.sort();
    assert!(
        examples.len() >= 4,
        "expected at least 4 examples in {}, found {examples:?}",
        dir.display()
    );
    let invalid: Vec<String> = examples
        .iter()
        .filter_map(|path| {
            load_with_env(&Source::File(path.clone()), std::iter::empty())
                .err()
                .map(|problems| format!("{}:\n{problems}", path.display()))
        })
        .collect();
    assert!(
        invalid.is_empty(),
        "invalid examples:\n{}",
        invalid.join("\n\n")
    );
}

#[test]
fn the_use_case_examples_exist() {
    let dir = config_dir().join("examples");
    for name in [
        "single-node.toml",
        "l2-three-node.toml",
        "bgp.toml",
        "vxlan.toml",
    ] {
        assert_valid(&dir.join(name));
    }
}

#[test]
fn embedded_default_is_valid() {
    load_with_env(&Source::Embedded, std::iter::empty()).expect("the embedded default is valid");
}

#[test]
fn the_etcd_example_node_and_shared_document_make_a_valid_config() {
    let dir = config_dir().join("examples");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let config = dockline_config::parse_split(
        ("etcd-node.toml", &read("etcd-node.toml")),
        ("/dockline/config", &read("etcd-shared.toml")),
        std::iter::empty(),
    )
    .and_then(|config| dockline_config::validate(&config).map(|()| config))
    .unwrap_or_else(|problems| panic!("{problems}"));
    assert_eq!(config.source.document_key(), "/dockline/config");
    assert_eq!(config.services.len(), 1);
}
