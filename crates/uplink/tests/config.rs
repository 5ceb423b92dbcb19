//! The `[uplink]` config: defaults, and errors that name what is wrong.

use std::sync::Arc;

use outbox::Outbox;
use uplink::{Uplink, UplinkConfig, UplinkError};

fn parse(json: serde_json::Value) -> UplinkConfig {
    serde_json::from_value(json).unwrap()
}

fn build(config: UplinkConfig) -> Result<Uplink, UplinkError> {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("o.db")).unwrap();
    Uplink::new(config, outbox, Arc::new(tokio::sync::Notify::new()))
}

#[test]
fn defaults_fill_everything_but_host_and_station() {
    let config = parse(serde_json::json!({"host": "hq.example", "station_id": "S42"}));
    assert_eq!(config.port, 1883);
    assert_eq!(config.prefix, "forecourt");
    assert_eq!(config.max_inflight, 100);
    assert_eq!(config.client_id(), "forecourt-S42");
    assert_eq!(config.status_topic(), "forecourt/S42/status");
    assert!(config.tls.is_none() && config.username.is_none());
    assert!(build(config).is_ok());
}

#[test]
fn unknown_keys_are_rejected() {
    let err = serde_json::from_value::<UplinkConfig>(
        serde_json::json!({"host": "h", "station_id": "S", "prot": 1}),
    );
    assert!(err.is_err());
}

#[test]
fn a_missing_tls_file_is_named() {
    let config = parse(serde_json::json!({
        "host": "hq.example", "station_id": "S42",
        "tls": {"ca_file": "/nonexistent/ca.pem"}
    }));
    let err = build(config).err().unwrap();
    assert!(matches!(err, UplinkError::TlsFile { .. }));
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn a_tls_file_without_pem_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let mut config = UplinkConfig::new("hq.example", "S42");
    config.tls = Some(uplink::TlsFiles {
        ca_file: ca.clone(),
        client_cert_file: None,
        client_key_file: None,
    });
    let err = build(config).err().unwrap();
    assert!(
        err.to_string().contains(&ca.display().to_string())
            && err.to_string().contains("CERTIFICATE"),
        "{err}"
    );
}

#[test]
fn pem_files_load_and_client_cert_needs_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        &key,
        "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut config = UplinkConfig::new("hq.example", "S42");
    config.tls = Some(uplink::TlsFiles {
        ca_file: ca.clone(),
        client_cert_file: Some(ca.clone()),
        client_key_file: Some(key),
    });
    assert!(build(config.clone()).is_ok());
    config.tls.as_mut().unwrap().client_key_file = None;
    assert!(matches!(
        build(config).err().unwrap(),
        UplinkError::InvalidConfig(_)
    ));
}

#[test]
fn bad_values_are_refused() {
    let mut config = UplinkConfig::new("hq.example", "S/42");
    assert!(matches!(
        build(config.clone()).err().unwrap(),
        UplinkError::InvalidConfig(_)
    ));
    config.station_id = "S42".into();
    config.max_inflight = 0;
    assert!(build(config.clone()).is_err());
    config.max_inflight = 10;
    config.password = Some("secret".into());
    assert!(build(config).is_err());
}

#[test]
fn credentials_over_plain_tcp_are_flagged() {
    let mut config = UplinkConfig::new("hq.example", "S42");
    assert!(!config.credentials_in_clear(), "no credentials");
    config.username = Some("station".into());
    config.password = Some("secret".into());
    assert!(config.credentials_in_clear());
    config.tls = Some(uplink::TlsFiles {
        ca_file: "ca.pem".into(),
        client_cert_file: None,
        client_key_file: None,
    });
    assert!(!config.credentials_in_clear(), "TLS protects them");
}
